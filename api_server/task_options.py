"""The optional parts of a submission: sweep parameters, observables, memory, method and noise.

Shapes are checked here (a `422` naming the field); limits that are settings (MAX_SWEEP_POINTS,
MAX_OBSERVABLES, MAX_MEMORY_SHOTS) are checked by the route against the app's own settings, and
whatever needs the circuit (which inputs it declares, how many qubits it has) by the worker.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator

METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
)
Method = Literal[
    "automatic", "statevector", "density_matrix", "stabilizer", "matrix_product_state", "extended_stabilizer"
]
PARAMETER_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

Number = StrictInt | StrictFloat
PauliString = Annotated[
    StrictStr,
    Field(pattern=r"^[IXYZ]+$", description="Pauli letters, qubit 0 rightmost (Qiskit's order), e.g. `XIZ`."),
]
Term = tuple[PauliString, Number]
Observable = PauliString | Annotated[list[Term], Field(min_length=1)]
Probability = Annotated[float, Field(ge=0, le=1, strict=True)]  # strict: 1 and 0.5, never "0.5" or true
Parameters = dict[Annotated[str, Field(pattern=PARAMETER_NAME)], Number | Annotated[list[Number], Field(min_length=1)]]


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number")
    return float(value)


class ReadoutNoise(BaseModel):
    """A readout error on every measurement."""

    model_config = ConfigDict(extra="forbid")

    p01: Probability | None = Field(None, description="Probability of reading 1 when the qubit is 0.")
    p10: Probability | None = Field(None, description="Probability of reading 0 when the qubit is 1.")


class NoiseSpec(BaseModel):
    """A simple noise model: depolarizing errors after every gate, and readout errors."""

    model_config = ConfigDict(extra="forbid")

    depolarizing_1q: Probability | None = Field(
        None, description="Depolarizing error after every 1-qubit gate: ρ → (1-p)ρ + p·I/2."
    )
    depolarizing_2q: Probability | None = Field(
        None, description="Depolarizing error after every 2-qubit gate: ρ → (1-p)ρ + p·I/4."
    )
    readout: ReadoutNoise | None = None


class TaskOptions(BaseModel):
    """The fields a submission may add to circuit, shots and seed (all optional)."""

    # Not nullable: left out means "none"; an explicit null is refused like any wrong type.
    parameters: Parameters = Field(
        None,  # type: ignore[arg-type]
        description="Values for the circuit's `input float`/`input angle` declarations. An array makes the "
        "task a sweep over its values (all arrays of one length, 1 to MAX_SWEEP_POINTS); a number is used "
        "at every point.",
        examples=[{"theta": [0.0, 1.5707963267948966, 3.141592653589793]}],
        json_schema_extra={"additionalProperties": False},
    )
    observables: Annotated[list[Observable], Field(min_length=1)] = Field(
        None,  # type: ignore[arg-type]
        description="Pauli observables whose exact expectation values to compute: a Pauli string (`ZZ`) or "
        "`[[pauli, coefficient], ...]`; each as long as the circuit has qubits; at most MAX_OBSERVABLES.",
        examples=[["ZZ", "XX", [["ZI", 0.5], ["IZ", 0.5]]]],
    )
    memory: StrictBool = Field(
        False, description="Also return every shot's outcome, in shot order (shots × points ≤ MAX_MEMORY_SHOTS)."
    )
    method: Method = Field("automatic", description="Aer's simulation method.")
    noise: NoiseSpec = None  # type: ignore[assignment]

    @field_validator("parameters")
    @classmethod
    def _one_sweep_length(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return value
        lengths = {}
        for name, given in value.items():
            if isinstance(given, list):
                if not given:
                    raise ValueError(f"{name}: an array needs at least one value")
                value[name] = [_finite(v, name) for v in given]
                lengths[name] = len(given)
            else:
                value[name] = _finite(given, name)
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
            raise ValueError(f"every array must have the same length ({shown})")
        return value

    @field_validator("observables")
    @classmethod
    def _terms_of_one_length(cls, value: list[Any] | None) -> list[Any] | None:
        for index, observable in enumerate(value or []):
            if isinstance(observable, list):
                sizes = {len(pauli) for pauli, _ in observable}
                if len(sizes) > 1:
                    raise ValueError(f"observable {index}: every term must have the same number of letters")
                for pauli, coefficient in observable:
                    _finite(coefficient, f"observable {index}, term {pauli}")
        return value


MAX_TAGS = 16
TAG_KEY = r"[A-Za-z0-9_.:-]{1,64}"
# A tag written as one `key:value` string (a query parameter): split at the first colon, so the key has none.
TAG_PAIR_PATTERN = r"^[A-Za-z0-9_.-]{1,64}:[^\x00]{0,256}$"
Tags = Annotated[
    # No NUL in a value: PostgreSQL's text cannot hold one.
    dict[
        Annotated[str, Field(pattern=f"^{TAG_KEY}$")],
        Annotated[StrictStr, Field(max_length=256, pattern=r"^[^\x00]*$")],
    ],
    Field(max_length=MAX_TAGS),
]
