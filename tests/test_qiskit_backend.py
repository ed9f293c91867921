"""`qtq.qiskit.QTQBackend` against the real running service: `run()` as one batch whose results are
Aer's own, shot for shot (counts, hexadecimal memory, headers), its job's states and errors, and
Qiskit's `BackendSamplerV2` and `BackendEstimatorV2` on it. What needs no service (the target, the
state mapping, reading `GET /limits`) is checked in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from qiskit import QuantumCircuit, QuantumRegister, qasm3, transpile
from qiskit.circuit import ClassicalRegister
from qiskit.exceptions import QiskitError
from qiskit.primitives import BackendEstimatorV2, BackendSamplerV2
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qtq import Client
from qtq.qiskit import QTQBackend, QTQJob
from qtq.qiskit.backend import CONTROL_FLOW, NATIVE_GATES
from qtq.qiskit.job import job_status

from tests.qiskit_circuits import bell, loose_bits, turn
from tests.services import wait_for

AER = AerSimulator()


@pytest.fixture(scope="module")
def backend(base_url: str) -> Iterator[QTQBackend]:
    with Client(base_url, timeout=30) as client:
        yield QTQBackend(client)


def limits_client(**limits: int) -> Client:
    answer = {"max_qubits": 1024, "max_shots": 100_000, "default_shots": 1024, "max_batch_tasks": 10_000, **limits}

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/limits")
        return httpx.Response(200, json=answer)

    return Client("http://qtq.test", transport=httpx.MockTransport(handler))


# -- what needs no service ---------------------------------------------------------------------


@pytest.mark.database_independent
def test_the_backend_takes_its_qubits_batch_size_and_shots_from_the_services_limits() -> None:
    with limits_client(max_qubits=20, max_batch_tasks=3, max_shots=500, default_shots=100) as client:
        backend = QTQBackend(client)
    assert backend.num_qubits == backend.target.num_qubits == 20
    assert backend.max_circuits == 3
    assert backend.options.shots == 100
    with pytest.raises(ValueError, match="<=500"):
        backend.set_options(shots=501)
    with pytest.raises(ValueError, match=r"unknown run options \['meas_level'\]"):
        backend.run(bell(), meas_level=1)


@pytest.mark.database_independent
def test_the_target_holds_only_what_aer_runs_natively_and_the_service_parses() -> None:
    standard = {gate.name for gate in qasm3.STDGATES_INC_GATES} | {"u"}  # `u` is OpenQASM 3's built-in U
    native = set(AER.configuration().basis_gates)
    assert set(NATIVE_GATES) <= standard & native
    assert "ch" in standard and "ch" not in native and "ch" not in NATIVE_GATES  # Aer would not run it as it is
    with limits_client() as client:
        target = QTQBackend(client).target
    assert set(target.operation_names) == {*NATIVE_GATES, "measure", "reset", "delay", *CONTROL_FLOW}
    assert set(target.operation_names) <= set(AER.target.operation_names)
    assert "switch_case" not in target.operation_names  # the service's importer refuses `switch`


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("states", "status"),
    [
        ({"submitted": 2}, JobStatus.QUEUED),
        ({"submitted": 1, "pending": 1}, JobStatus.RUNNING),
        ({"submitted": 1, "completed": 1}, JobStatus.RUNNING),
        ({"completed": 2}, JobStatus.DONE),
        ({"completed": 1, "failed": 1}, JobStatus.ERROR),
        ({"failed": 1, "cancelled": 1}, JobStatus.CANCELLED),
        ({"completed": 2, "submitted": 0}, JobStatus.DONE),
    ],
)
def test_task_states_map_to_one_job_status(states: dict[str, int], status: JobStatus) -> None:
    assert job_status(states) is status


# -- run() against the service -----------------------------------------------------------------


def test_run_samples_what_aer_samples_shot_for_shot(backend: QTQBackend) -> None:
    """Bell and a two-point sweep in one batch, seeded: counts, hexadecimal memory and headers as
    AerSimulator.run gives them for the same call."""
    circuit, t = turn()
    options: dict[str, Any] = {"shots": 50, "seed_simulator": 11, "memory": True}
    binds = [{}, {t: [0.5, 2.0]}]
    circuits = [bell(), circuit]
    job = backend.run(circuits, parameter_binds=binds, **options)
    assert isinstance(job, QTQJob) and job.job_id() == job.batch.id and len(job.batch.task_ids or []) == 2
    ours = job.result(timeout=60)
    aers = AER.run(circuits, parameter_binds=binds, **options).result()
    assert ours.success and job.status() is JobStatus.DONE and ours.job_id == job.job_id()
    assert len(ours.results) == len(aers.results) == 3
    for index, (mine, theirs) in enumerate(zip(ours.results, aers.results, strict=True)):
        assert mine.data.counts == theirs.data.counts and mine.data.memory == theirs.data.memory
        assert mine.data.memory[0].startswith("0x")  # BackendSamplerV2 reads memory with int(x, 16)
        for field in ("name", "creg_sizes", "memory_slots", "n_qubits", "qreg_sizes"):
            assert mine.header[field] == theirs.header[field], field
        assert ours.get_counts(index) == aers.get_counts(index)
        assert ours.get_memory(index) == aers.get_memory(index)
    assert set(ours.get_counts(0)) == {"00", "11"} and sum(ours.get_counts(0).values()) == 50


def test_loose_bits_and_registers_out_of_circuit_order_read_back_as_qiskit_numbers_them(
    backend: QTQBackend,
) -> None:
    """The exported text declares a loose bit before the registers, so the service numbers the bits
    otherwise than the circuit: memory still comes back with clbit i as bit i, as Aer's does."""
    circuit = loose_bits()
    text = qasm3.dumps(circuit)
    assert text.index("bit _bit2;") < text.index("bit[2] a;")
    options: dict[str, Any] = {"shots": 40, "seed_simulator": 2, "memory": True}
    (ours,) = backend.run(circuit, **options).result(timeout=60).results
    (aers,) = AER.run(circuit, **options).result().results
    assert set(ours.data.memory) == {"0xa", "0xe"}  # a[1] and b[0] always; the loose bit half the time
    assert ours.data.memory == aers.data.memory and ours.data.counts == aers.data.counts


def test_method_and_noise_reach_the_service(backend: QTQBackend) -> None:
    zero = QuantumCircuit(1, 1)
    zero.measure(0, 0)
    noisy = backend.run(zero, shots=5, method="density_matrix", noise={"readout": {"p01": 1.0}})
    assert noisy.result(timeout=60).get_counts() == {"1": 5}  # every 0 read as 1
    (task,) = noisy.batch.tasks()
    assert task.data["method"] == "density_matrix"


def test_a_failed_task_is_a_failed_experiment_with_its_error(backend: QTQBackend) -> None:
    """A circuit that measures nothing fails on the service; the other experiment still succeeds."""
    job = backend.run([bell(), bell(measure=False)], shots=10)
    result = job.result(timeout=60)
    assert job.status() is JobStatus.ERROR
    assert not result.success and result.status == "PARTIAL COMPLETED"
    done, failed = result.results
    assert done.success and sum(result.get_counts(0).values()) == 10
    assert not failed.success and failed.status.startswith("ERROR: NoMeasurements: ")
    with pytest.raises(QiskitError, match="NoMeasurements"):
        result.get_counts(1)


def test_a_cancelled_job_is_cancelled(backend: QTQBackend) -> None:
    slow = QuantumCircuit(1, 1)
    with slow.for_loop(range(200_000)):  # about 14 s of simulation
        slow.x(0)
    slow.measure(0, 0)
    job = backend.run(slow, shots=1)
    wait_for(lambda: job.status() is JobStatus.RUNNING, 30, "the task to start")
    job.cancel()
    wait_for(lambda: job.status() is JobStatus.CANCELLED, 30, "the task to be cancelled")
    (experiment,) = job.result(timeout=30).results
    assert not experiment.success and experiment.status.startswith("CANCELLED: ")


def test_a_circuit_transpiled_for_the_backend_keeps_its_width_and_runs(backend: QTQBackend) -> None:
    circuit = QuantumCircuit(3, 3)
    circuit.ch(0, 1)  # not native: decomposed
    circuit.rzz(0.4, 1, 2)  # native to Aer, but not in stdgates.inc: decomposed
    circuit.x(0)
    circuit.measure(range(3), range(3))
    compiled = transpile(circuit, backend, optimization_level=0)
    assert compiled.num_qubits == 3 and compiled.layout is None
    assert set(compiled.count_ops()) <= set(backend.target.operation_names)
    assert backend.run(compiled, shots=20, seed_simulator=3).result().get_counts() == (
        AER.run(compiled, shots=20, seed_simulator=3).result().get_counts()
    )


# -- Qiskit's backend primitives on it -----------------------------------------------------------


def test_backend_sampler_v2_gives_bell_in_every_register(backend: QTQBackend) -> None:
    """Two Bell pairs, each measured into a register of its own: each register's BitArray holds only
    00 and 11, and the outcomes are those of BackendSamplerV2 on Aer with the same seed."""
    first, second = ClassicalRegister(2, "first"), ClassicalRegister(2, "second")
    circuit = QuantumCircuit(QuantumRegister(4, "q"), first, second)
    for pair in ((0, 1), (2, 3)):
        circuit.h(pair[0])
        circuit.cx(*pair)
    circuit.measure([0, 1, 2, 3], [*first, *second])
    options = {"seed_simulator": 9}
    (ours,) = BackendSamplerV2(backend=backend, options=options).run([circuit], shots=200).result()
    (aers,) = BackendSamplerV2(backend=AER, options=options).run([circuit], shots=200).result()
    for name in ("first", "second"):
        bits = ours.data[name]
        assert bits.num_shots == 200 and bits.num_bits == 2 and bits.shape == ()
        assert set(bits.get_counts()) == {"00", "11"}
        assert bits.get_bitstrings() == aers.data[name].get_bitstrings()
    # The registers are independent pairs: all four combinations turn up.
    assert len(ours.join_data().get_counts()) == 4


def test_backend_sampler_v2_reads_a_failed_experiment_as_zeros(backend: QTQBackend) -> None:
    """What the README warns of: Qiskit's BackendSamplerV2 never looks at `success`, so a circuit the
    service refused (it measures nothing) comes back as all-zero outcomes."""
    unmeasured = QuantumCircuit(2, 2)
    unmeasured.x(0)
    (result,) = BackendSamplerV2(backend=backend).run([unmeasured], shots=8).result()
    assert result.data.c.get_counts() == {"00": 8}


def test_backend_estimator_v2_estimates_zz_on_bell_within_the_precision(backend: QTQBackend) -> None:
    observables = [SparsePauliOp("ZZ"), SparsePauliOp("XX"), SparsePauliOp("IZ")]
    precision = 0.05
    options = {"seed_simulator": 5}
    (ours,) = (
        BackendEstimatorV2(backend=backend, options=options)
        .run([(bell(False), observables)], precision=precision)
        .result()
    )
    (aers,) = (
        BackendEstimatorV2(backend=AER, options=options).run([(bell(False), observables)], precision=precision).result()
    )
    assert ours.data.evs.shape == (3,)
    assert abs(ours.data.evs[0] - 1) <= precision and abs(ours.data.evs[1] - 1) <= precision
    assert abs(ours.data.evs[2]) <= 4 * precision
    np.testing.assert_array_equal(ours.data.evs, aers.data.evs)  # the same shots as Aer's
    np.testing.assert_array_equal(ours.data.stds, aers.data.stds)
