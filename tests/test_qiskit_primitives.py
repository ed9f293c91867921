"""`QTQSampler` and `QTQEstimator` against the real running service, compared with Aer's own
`SamplerV2` and `EstimatorV2` on the same PUBs: each PUB is one task (a parameter sweep, its
observables), and the results have Aer's shapes, Aer's seeded outcomes and its exact values."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector, Qubit
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.primitives import PrimitiveResult, StatevectorEstimator
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2, SamplerV2
from qtq import Client, TaskFailed, ValidationError
from qtq.qiskit import QTQEstimator, QTQPrimitiveJob, QTQSampler
from qtq.qiskit.backend import NATIVE_GATES

from tests.qiskit_circuits import bell, loose_bits, turn


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[Client]:
    with Client(base_url, timeout=30) as client:
        yield client


def swept() -> QuantumCircuit:
    """Three parameters: one clashes with a gate name (`t`), two are a ParameterVector."""
    t, v = Parameter("t"), ParameterVector("v", 2)
    circuit = QuantumCircuit(3)
    circuit.rx(t, 0)
    circuit.ry(v[0], 1)
    circuit.cx(0, 2)
    circuit.rz(v[1], 2)
    circuit.h(2)
    circuit.crx(v[0] + v[1], 2, 1)
    return circuit


def same_pub_results(ours: PrimitiveResult, aers: PrimitiveResult) -> None:
    """Sampler results alike: the same registers, shapes, shots and every shot's outcome."""
    assert len(ours) == len(aers)
    for mine, theirs in zip(ours, aers, strict=True):
        assert list(mine.data) == list(theirs.data) and mine.data.shape == theirs.data.shape
        for name in theirs.data:
            assert mine.data[name].shape == theirs.data[name].shape
            assert mine.data[name].num_shots == theirs.data[name].num_shots
            assert mine.data[name].num_bits == theirs.data[name].num_bits
            np.testing.assert_array_equal(mine.data[name].array, theirs.data[name].array)


# -- QTQSampler ----------------------------------------------------------------------------------


def test_sampler_gives_aers_outcomes_for_the_same_pubs_and_seed(client: Client) -> None:
    """A plain PUB, a sweep of shape (3, 2) with its own shots, one point, two registers, a loose
    bit: one task each, and per register the BitArrays Aer's SamplerV2 gives with the same seed."""
    circuit = swept()
    circuit.measure_all()
    first, second = ClassicalRegister(1, "first"), ClassicalRegister(2, "second")
    two = QuantumCircuit(QuantumRegister(2, "q"), first, second)
    two.h(0)
    two.cx(0, 1)
    two.measure(0, first[0])
    two.measure([1, 0], [second[0], second[1]])
    values = np.linspace(0, np.pi, 18).reshape(3, 2, 3)
    pubs = [(bell(),), (circuit, values, 30), (circuit, values[1, 1]), (two,), (loose_bits(),)]
    job = QTQSampler(client, default_shots=20, seed=5).run(pubs)
    assert isinstance(job, QTQPrimitiveJob) and job.job_id() == job.batch.id
    assert len(job.batch.task_ids or []) == len(pubs)  # one task per PUB, the sweep included
    ours = job.result(timeout=60)
    assert job.status() is JobStatus.DONE and job.done() and not job.running()
    aers = SamplerV2(default_shots=20, seed=5).run(pubs).result()
    same_pub_results(ours, aers)
    assert ours[1].data.meas.shape == (3, 2) and ours[1].data.meas.num_shots == 30
    assert set(ours[3].data.second.get_counts()) == {"00", "11"}
    assert ours[4].data.a.get_counts() == {"10": 20} and ours[4].data.b.get_counts() == {"1": 20}
    assert ours[0].metadata["shots"] == 20 and ours[1].metadata["shots"] == 30


def test_sampler_sends_a_pub_as_one_sweep_keyed_by_the_exported_names(client: Client) -> None:
    circuit, t = turn()
    job = QTQSampler(client, default_shots=10).run([(circuit, [[0.0], [2 * np.pi]])])
    (task,) = job.batch.tasks()
    assert task.data["parameters"] == {"t_0": [0.0, 2 * np.pi]}  # `t` exported as `t_0`
    (result,) = job.result(timeout=60)
    assert result.data.c.shape == (2,)
    assert result.data.c[0].get_counts() == {"00": 10}  # nothing turns
    assert result.data.c[1].get_counts() == {"10": 10}  # rx(2 pi) = -I on q0, ry(pi) flips q1


def test_sampler_without_a_seed_samples_bell_and_a_deterministic_circuit(client: Client) -> None:
    one = QuantumCircuit(2, 2)
    one.x(1)
    one.measure([0, 1], [0, 1])
    bell_counts, one_counts = (r.data.c.get_counts() for r in QTQSampler(client).run([bell(), one]).result())
    assert set(bell_counts) == {"00", "11"} and sum(bell_counts.values()) == 1024
    assert one_counts == {"10": 1024}


def test_a_failed_pub_raises_task_failed_naming_it(client: Client) -> None:
    job = QTQSampler(client, default_shots=5).run([bell(), bell(measure=False)])
    with pytest.raises(TaskFailed, match=r"^PUB 1: NoMeasurements: "):
        job.result(timeout=60)
    assert job.status() is JobStatus.ERROR and job.in_final_state()


def test_a_pub_past_the_services_limits_is_refused_at_run(client: Client) -> None:
    circuit, _ = turn()
    points = client.limits()["max_sweep_points"] + 1
    with pytest.raises(ValidationError, match=f"a sweep of {points} points is more than MAX_SWEEP_POINTS"):
        QTQSampler(client, default_shots=1).run([(circuit, np.zeros((points, 1)))])


# -- QTQEstimator --------------------------------------------------------------------------------


def test_estimator_gives_aers_exact_values_for_the_same_pubs(client: Client) -> None:
    """Observables of shape (2, 1) broadcast against parameter values of shape (4,), weighted sums
    of Pauli terms, a plain PUB: Aer's shapes and its exact values to 1e-9, stds 0."""
    circuit = swept()
    observables = [[SparsePauliOp(["ZZI", "XIX"], [1.0, -0.5])], [SparsePauliOp(["YYI", "IIZ", "III"], [0.3, 2, 1])]]
    values = np.linspace(-1, 2, 12).reshape(4, 3)
    pubs = [
        (bell(measure=False), ["ZZ", "XX", "IZ", "YY"]),
        (circuit, observables, values),
        (circuit, "ZXY", values[0]),
    ]
    job = QTQEstimator(client).run(pubs)
    assert len(job.batch.task_ids or []) == len(pubs)
    ours = job.result(timeout=60)
    aers = EstimatorV2().run(pubs).result()
    assert len(ours) == len(aers)
    for mine, theirs in zip(ours, aers, strict=True):
        assert mine.data.evs.shape == theirs.data.evs.shape == mine.data.stds.shape
        np.testing.assert_allclose(mine.data.evs, theirs.data.evs, rtol=0, atol=1e-9)
        assert not mine.data.stds.any()
    assert ours[1].data.evs.shape == (2, 4)
    np.testing.assert_allclose(ours[0].data.evs, [1, 1, 0, -1], atol=1e-9)


def test_estimator_sends_each_pauli_term_once(client: Client) -> None:
    observables = [SparsePauliOp(["ZZ", "XX"]), SparsePauliOp(["XX", "YY"], [2, 1]), SparsePauliOp("ZZ")]
    job = QTQEstimator(client).run([(bell(measure=False), observables)])
    (task,) = job.batch.tasks()
    assert task.data["observables"] == ["XX", "YY", "ZZ"]
    np.testing.assert_allclose(job.result(timeout=60)[0].data.evs, [2, 1, 1], atol=1e-9)


def test_estimator_with_a_precision_adds_aers_noise(client: Client) -> None:
    """As Aer's EstimatorV2: a precision above 0 draws each value from N(exact, precision) with the
    seed, and stds is the precision."""
    pubs = [(bell(measure=False), ["ZZ", "XX", "IZ"])]
    ours = QTQEstimator(client, seed=3).run(pubs, precision=0.1).result(timeout=60)
    aers = EstimatorV2(options={"run_options": {"seed_simulator": 3}}).run(pubs, precision=0.1).result()
    np.testing.assert_allclose(ours[0].data.evs, aers[0].data.evs, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours[0].data.stds, [0.1, 0.1, 0.1])
    assert ours[0].metadata["target_precision"] == 0.1


def test_estimator_reads_qubits_as_the_circuit_numbers_them(client: Client) -> None:
    """A loose qubit is declared before the registers in the exported text: the service numbers it
    first, and the Pauli letters are moved to match."""
    loose = Qubit()
    circuit = QuantumCircuit(QuantumRegister(2, "a"), [loose])  # qubits: a[0], a[1], loose
    circuit.x(0)
    circuit.h(2)
    circuit.ry(0.7, 1)
    observables = ["IIZ", "IZI", "XII", "ZII", "XZZ"]
    (ours,) = QTQEstimator(client).run([(circuit, observables)]).result(timeout=60)
    (exact,) = StatevectorEstimator().run([(circuit, observables)]).result()
    np.testing.assert_allclose(ours.data.evs, exact.data.evs, rtol=0, atol=1e-9)


def test_every_native_gate_of_the_target_runs_exactly_on_the_service(client: Client) -> None:
    """What the backend's target promises: each native gate, on a state that is not a basis state,
    gives Statevector's exact expectation values (one PUB per gate, one batch)."""
    standard = get_standard_gate_name_mapping()
    pubs = []
    for name in NATIVE_GATES:
        unbound = standard[name]
        gate = unbound.base_class(*(0.4 + 0.3 * i for i in range(len(unbound.params))))
        circuit = QuantumCircuit(3)
        for qubit, angle in enumerate((0.3, 1.1, 2.0)):
            circuit.ry(angle, qubit)
            circuit.rz(angle / 3, qubit)
        circuit.append(gate, range(gate.num_qubits))
        pubs.append((circuit, ["ZII", "IZI", "IIZ", "XXI", "IYX", "ZXY"]))
    ours = QTQEstimator(client).run(pubs).result(timeout=60)
    exact = StatevectorEstimator().run(pubs).result()
    for name, mine, theirs in zip(NATIVE_GATES, ours, exact, strict=True):
        np.testing.assert_allclose(mine.data.evs, theirs.data.evs, rtol=0, atol=1e-9, err_msg=name)
