"""The model contract shared by training, export and the runtime.

A ``ModelSpec`` says everything needed to rebuild a model and to use its outputs: the recurrent
cell and its sizes, the head on top, the labels, and the normalisation learned on training data.
It is a frozen dataclass that round-trips through JSON, and the only thing the three stages agree on.
Standard library only: the device runtime imports this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgernn.errors import BadInputError

CELLS = ("lstm", "gru")
HEADS = ("regression", "forecast", "classification")
SPEC_VERSION = 1


@dataclass(frozen=True)
class Normalization:
    """Per-feature affine normalisation, fitted on the training split only.

    The model sees ``(x - x_mean) / x_std``; for regression and forecasting it predicts
    ``(y - y_mean) / y_std``, which the runtime maps back to the data's units.
    """

    x_mean: tuple[float, ...]
    x_std: tuple[float, ...]
    y_mean: tuple[float, ...] = ()
    y_std: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalization":
        return cls(**{f.name: tuple(float(v) for v in d.get(f.name, ())) for f in fields(cls)})


@dataclass(frozen=True)
class ModelSpec:
    """An LSTM/GRU backbone with a head on the last step."""

    cell: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    head: str = "regression"
    output_size: int = 1
    labels: tuple[str, ...] = ()
    window: int | None = None
    task: str | None = None
    normalization: Normalization | None = None
    spec_version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise BadInputError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.head not in HEADS:
            raise BadInputError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise BadInputError(f"{name} must be a positive integer, got {value!r}")
        if self.head == "classification" and self.labels and len(self.labels) != self.output_size:
            raise BadInputError(
                f"a classifier with output_size {self.output_size} needs {self.output_size} labels, "
                f"got {len(self.labels)}"
            )

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def has_cell_state(self) -> bool:
        return self.cell == "lstm"

    @property
    def gates(self) -> int:
        """Gate blocks stacked in each weight matrix: 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n)."""
        return 4 if self.cell == "lstm" else 3

    def parameter_count(self) -> int:
        g, h = self.gates, self.hidden_size
        total = 0
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else h * self.num_directions
            total += self.num_directions * (g * h * in_size + g * h * h + 2 * g * h)
        total += (h * self.num_directions + 1) * self.output_size
        return total

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        if self.normalization is not None:
            d["normalization"] = {k: list(v) for k, v in asdict(self.normalization).items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadInputError(f"unknown model spec fields: {', '.join(unknown)}")
        d = dict(d)
        d["labels"] = tuple(str(v) for v in d.get("labels", ()))
        if d.get("normalization") is not None:
            d["normalization"] = Normalization.from_dict(d["normalization"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInputError(f"model spec is not valid JSON: {e}") from None
        return cls.from_dict(data)
