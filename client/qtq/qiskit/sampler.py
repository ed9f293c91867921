"""`QTQSampler`: a native Sampler V2, one task per PUB (its parameter values are one sweep)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from qiskit.primitives import BaseSamplerV2
from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubLike, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qtq.client import Client
from qtq.qiskit.layout import OutcomeReader
from qtq.qiskit.primitive_job import QTQPrimitiveJob
from qtq.qiskit.tasks import CircuitTask, circuit_task, seeded, swept
from qtq.task import Task


class QTQSampler(BaseSamplerV2):
    """Samples each PUB in one task: its circuit with `input` parameters, its parameter values as
    one sweep, every shot's outcome read back into one `BitArray` per classical register.

    `client` defaults to `Client()`. With `seed`, the results are those of Aer's
    `SamplerV2(seed=seed)` on the same PUBs, shot for shot.
    """

    def __init__(self, client: Client | None = None, *, default_shots: int = 1024, seed: int | None = None) -> None:
        self.client = client if client is not None else Client()
        self.default_shots = default_shots
        self.seed = seed

    def run(
        self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None
    ) -> QTQPrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        """Submit the PUBs as one batch at once; the job's `result()` waits for them."""
        coerced = [SamplerPub.coerce(pub, self.default_shots if shots is None else shots) for pub in pubs]
        tasks = [_task(pub) for pub in coerced]
        # Aer's SamplerV2 makes one run() per number of shots: seeded alike, the outcomes are Aer's.
        batch = self.client.submit_batch(seeded(tasks, self.seed, [pub.shots for pub in coerced]))
        return QTQPrimitiveJob(batch, lambda done: _result(coerced, done))


def _task(pub: SamplerPub) -> CircuitTask:
    circuit = pub.circuit
    values = swept(circuit, pub.parameter_values.as_array(circuit.parameters)) if circuit.parameters else None
    task = circuit_task(circuit, values, shots=pub.shots, memory=True)
    if task.points != pub.parameter_values.size:
        raise ValueError(f"a PUB of shape {pub.shape} needs parameters to sweep; circuit {circuit.name!r} has none")
    return task


def _result(pubs: Sequence[SamplerPub], tasks: Sequence[Task]) -> PrimitiveResult[SamplerPubResult]:
    return PrimitiveResult(
        [_pub_result(pub, task) for pub, task in zip(pubs, tasks, strict=True)], metadata={"version": 2}
    )


def _pub_result(pub: SamplerPub, task: Task) -> SamplerPubResult:
    circuit = pub.circuit
    points = task.points
    memory = [key for point in points for key in point.memory or []] if points is not None else task.memory or []
    reader = OutcomeReader(circuit)
    if circuit.num_clbits:
        bits = reader.bits(memory, pub.shape)
    else:
        bits = np.zeros((*pub.shape, pub.shots, 0), dtype=bool)
    registers = {}
    for register in circuit.cregs:
        # Big-endian: the register's last bit first; clbit i is column num_clbits - 1 - i.
        columns = [circuit.num_clbits - 1 - circuit.find_bit(bit).index for bit in reversed(register)]
        registers[register.name] = BitArray.from_bool_array(bits[..., columns], order="big")
    return SamplerPubResult(
        DataBin(**registers, shape=pub.shape),
        metadata={"shots": pub.shots, "circuit_metadata": circuit.metadata, "task_id": task.id},
    )
