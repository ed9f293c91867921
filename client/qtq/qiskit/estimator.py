"""`QTQEstimator`: a native Estimator V2, one task per PUB (its parameter values are one sweep, its
observables' Pauli terms the task's observables), with the service's exact expectation values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers import DataBin, EstimatorPubLike, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub

from qtq.client import Client
from qtq.qiskit.layout import pauli_label, qubit_order
from qtq.qiskit.primitive_job import QTQPrimitiveJob
from qtq.qiskit.tasks import circuit_task, swept
from qtq.task import Task

_PAULI = re.compile(r"[IXYZ]*")


class QTQEstimator(BaseEstimatorV2):
    """Estimates each PUB in one task: the service computes every Pauli term of the PUB's
    observables exactly, at every point of its parameter values, on the state before the final
    measurements; the terms are summed here with their coefficients, broadcast as Qiskit does.

    As Aer's `EstimatorV2` (and Qiskit's `StatevectorEstimator`), the values are exact and `stds`
    is 0 when the precision is 0 (the default); a precision above 0 adds normal noise of that
    standard deviation (drawn with `seed`) and `stds` is the precision.
    """

    def __init__(
        self, client: Client | None = None, *, default_precision: float = 0.0, seed: int | None = None
    ) -> None:
        self.client = client if client is not None else Client()
        self.default_precision = default_precision
        self.seed = seed

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> QTQPrimitiveJob[PrimitiveResult[PubResult]]:
        """Submit the PUBs as one batch at once; the job's `result()` waits for them."""
        coerced = [EstimatorPub.coerce(pub, self.default_precision if precision is None else precision) for pub in pubs]
        for index, pub in enumerate(coerced):
            if pub.precision < 0:
                raise ValueError(f"PUB {index}: the precision is {pub.precision}; it must be 0 or more")
        terms = [_terms(pub) for pub in coerced]
        batch = self.client.submit_batch([_task(pub, paulis) for pub, paulis in zip(coerced, terms, strict=True)])
        return QTQPrimitiveJob(
            batch,
            lambda done: PrimitiveResult(
                [self._pub_result(*found) for found in zip(coerced, terms, done, strict=True)], metadata={"version": 2}
            ),
        )

    def _pub_result(self, pub: EstimatorPub, paulis: list[str], task: Task) -> PubResult:
        points = task.points
        rows = [p.expectation_values or [] for p in points] if points is not None else [task.expectation_values or []]
        table = np.asarray(rows, dtype=float)  # (points, terms)
        column = {pauli: i for i, pauli in enumerate(paulis)}
        parameters = pub.parameter_values
        point = np.arange(parameters.size).reshape(parameters.shape) if len(rows) > 1 else np.zeros((), dtype=int)
        point = np.broadcast_to(point, pub.shape)
        observable = np.broadcast_to(np.arange(pub.observables.size).reshape(pub.observables.shape), pub.shape)
        observables = pub.observables.ravel()
        evs = np.zeros(pub.shape, dtype=float)
        for index in np.ndindex(*pub.shape):
            values = table[point[index]]
            evs[index] = sum(coeff * values[column[p]] for p, coeff in observables[observable[index]].items())
        if pub.precision > 0:
            evs = np.random.default_rng(self.seed).normal(evs, pub.precision, evs.shape)
        return PubResult(
            DataBin(evs=evs, stds=np.full(pub.shape, pub.precision), shape=pub.shape),
            metadata={"target_precision": pub.precision, "circuit_metadata": pub.circuit.metadata, "task_id": task.id},
        )


def _terms(pub: EstimatorPub) -> list[str]:
    """The distinct Pauli strings of the PUB's observables (qubit 0 rightmost)."""
    paulis = sorted({pauli for observable in pub.observables.ravel() for pauli in observable})
    for pauli in paulis:
        if not _PAULI.fullmatch(pauli):
            raise ValueError(f"observable term {pauli!r}: the service takes Pauli terms (I, X, Y, Z) only")
    return paulis


def _task(pub: EstimatorPub, paulis: Sequence[str]) -> dict[str, object]:
    circuit = pub.circuit
    values = swept(circuit, pub.parameter_values.as_array(circuit.parameters)) if circuit.parameters else None
    order = qubit_order(circuit)
    # One shot: the values are exact, and a circuit that measures runs its shots as well.
    return circuit_task(circuit, values, observables=[pauli_label(p, order) for p in paulis], shots=1).body
