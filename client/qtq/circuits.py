"""A circuit as the service takes it: OpenQASM text, or a `qiskit.QuantumCircuit` exported to it.

Qiskit is imported only when a circuit is not text, so the client runs without it
(`pip install 'qtq[qiskit]'` adds it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from qiskit.circuit import Parameter, QuantumCircuit

    Circuit: TypeAlias = str | QuantumCircuit
else:
    Circuit: TypeAlias = Any

# How qiskit.qasm3.dumps declares a circuit's parameters, one line each, in `circuit.parameters` order.
_INPUT = re.compile(r"^input float\[64\] ([A-Za-z_][A-Za-z0-9_]*);$", re.MULTILINE)


@dataclass(frozen=True)
class ExportedCircuit:
    """OpenQASM 3 text and, for each of the circuit's parameters, the name its `input` has there."""

    qasm: str
    names: Mapping[Parameter, str]


def export(circuit: QuantumCircuit) -> ExportedCircuit:
    """Export a Qiskit circuit with `qiskit.qasm3.dumps`.

    The exporter renames a parameter whose name clashes with a gate or keyword (`t` becomes `t_0`,
    `x` becomes `x_1`, `v[0]` becomes `_v_0_`), so `names` says which input each parameter became.
    """
    from qiskit import qasm3

    text = qasm3.dumps(circuit)
    declared = _INPUT.findall(text)
    parameters = list(circuit.parameters)
    if len(declared) != len(parameters):
        raise ValueError(
            f"qiskit.qasm3.dumps declared {len(declared)} inputs for {len(parameters)} parameters; "
            "bind the circuit's parameters before submitting it"
        )
    return ExportedCircuit(text, dict(zip(parameters, declared, strict=True)))


def to_qasm(circuit: Circuit, parameters: Mapping[Any, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    """The circuit's text and the parameters keyed by the names in that text.

    A key that is a Qiskit `Parameter` becomes its exported input's name; a string key is sent as
    it is, so it must be the exported name (`t_0` for a parameter named `t`).
    """
    if isinstance(circuit, str):
        return circuit, _names(parameters, {})
    try:
        from qiskit.circuit import QuantumCircuit
    except ImportError:  # the [qiskit] extra is not installed
        raise TypeError(
            f"circuit must be OpenQASM text, not {type(circuit).__name__} "
            "(for a qiskit.QuantumCircuit, install Qiskit: pip install 'qtq[qiskit]')"
        ) from None
    if not isinstance(circuit, QuantumCircuit):
        raise TypeError(f"circuit must be OpenQASM text or a qiskit.QuantumCircuit, not {type(circuit).__name__}")
    exported = export(circuit)
    return exported.qasm, _names(parameters, exported.names)


def _names(parameters: Mapping[Any, Any] | None, names: Mapping[Any, str]) -> dict[str, Any] | None:
    if parameters is None:
        return None
    named: dict[str, Any] = {}
    for key, value in parameters.items():
        if hasattr(value, "tolist"):  # a NumPy array or number: JSON takes its plain Python form
            value = value.tolist()
        if isinstance(key, str):
            named[key] = value
        elif key in names:
            named[names[key]] = value
        else:
            raise ValueError(f"parameters: {key!r} is not a parameter of the circuit")
    return named
