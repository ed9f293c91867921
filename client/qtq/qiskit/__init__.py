"""Qiskit on Quantum Task Queue (`pip install 'qtq[qiskit]'`): `QTQBackend`, a `BackendV2` whose
`run()` sends circuits as one batch (so `BackendSamplerV2` and `BackendEstimatorV2` work on it), and
the native primitives `QTQSampler` and `QTQEstimator`, which send each PUB as one task.

    from qtq.qiskit import QTQBackend

    backend = QTQBackend()  # QTQ_URL, else http://127.0.0.1:8000
    counts = backend.run(bell, shots=1000, seed_simulator=7).result().get_counts()
"""

from qtq.qiskit.backend import QTQBackend
from qtq.qiskit.estimator import QTQEstimator
from qtq.qiskit.job import QTQJob
from qtq.qiskit.primitive_job import QTQPrimitiveJob
from qtq.qiskit.sampler import QTQSampler

__all__ = ["QTQBackend", "QTQEstimator", "QTQJob", "QTQPrimitiveJob", "QTQSampler"]
