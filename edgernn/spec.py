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
from edgernn.transforms import ForecastTransform

CELLS = ("lstm", "gru")
HEADS = ("regression", "forecast", "classification")
HEAD_INPUTS = ("last_step", "final_state", "every_step")  # what the head reads; see ModelSpec
SPEC_VERSION = 1
MAX_SIZE = 1 << 24  # no size of an edge model comes near this; a spec beyond it is damaged or hostile
# Fields only a model exported from the user's own module uses; left out of the JSON at their defaults.
MODULE_FIELDS = {"proj_size": 0, "head_input": "last_step", "vocab_size": 0, "module": None}
# What the training data looked like, for readers that must read inputs the same way; left out at defaults.
DATA_FIELDS = {"data_layout": None, "variable_length": False, "forecast_transform": None}


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
    """An LSTM/GRU backbone with a head on the last step.

    A model exported from the user's own ``nn.Module`` (``module`` names its class) may also have an
    Embedding in front (``vocab_size`` > 0: the input is token ids), an LSTM projection
    (``proj_size``), and a head that reads the final states of both directions or every step
    (``head_input``). What cannot be known about such a module is left out: ``cell``,
    ``input_size``, ``hidden_size``, ``num_layers`` and ``head`` may then be None (``head`` None: the
    runtime returns the module's outputs as they are), and None fields are not written to the JSON.
    For a module written by ``torch.onnx.export`` (the manifest's ``module.path``), ``cell``,
    ``hidden_size`` and ``num_layers`` describe its one LSTM/GRU when it has one, not the whole model.
    """

    cell: str | None = None
    input_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = 1
    bidirectional: bool = False
    dropout: float = 0.0
    head: str | None = "regression"
    output_size: int = 1
    labels: tuple[str, ...] = ()
    window: int | None = None
    task: str | None = None
    normalization: Normalization | None = None
    spec_version: int = field(default=SPEC_VERSION)
    proj_size: int = 0  # LSTM projection: h has proj_size units (0: none)
    head_input: str = "last_step"  # last_step | final_state (both directions' final h) | every_step (y[B, T, O])
    vocab_size: int = 0  # > 0: an Embedding of this many tokens in front; the input is int64 ids (B, T)
    module: str | None = None  # the user's module class, for a model exported from a module
    data_layout: str | None = None  # how the training file was laid out (edgernn.data.readers.LAYOUTS)
    variable_length: bool = False  # trained on sequences of their own true lengths (padded batches + lengths)
    forecast_transform: ForecastTransform | None = None  # applied to raw windows before normalisation

    def __post_init__(self) -> None:
        may_omit = self.module is not None  # a module's spec leaves out what cannot be known
        if self.cell not in CELLS and not (may_omit and self.cell is None):
            raise BadInputError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.head not in HEADS and not (may_omit and self.head is None):
            raise BadInputError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            value = getattr(self, name)
            if value is None and may_omit:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
                raise BadInputError(f"{name} must be a positive integer up to {MAX_SIZE}, got {value!r}")
        if self.head_input not in HEAD_INPUTS:
            raise BadInputError(f"head_input must be one of {', '.join(HEAD_INPUTS)}, got {self.head_input!r}")
        for name in ("proj_size", "vocab_size"):
            if not isinstance(getattr(self, name), int) or not 0 <= getattr(self, name) <= MAX_SIZE:
                raise BadInputError(f"{name} must be a non-negative integer up to {MAX_SIZE}, got {getattr(self, name)!r}")
        if self.window is not None and (not isinstance(self.window, int) or not 1 <= self.window <= MAX_SIZE):
            raise BadInputError(f"window must be a positive integer up to {MAX_SIZE}, got {self.window!r}")
        if self.proj_size and (self.cell != "lstm" or (self.hidden_size or 0) <= self.proj_size):
            raise BadInputError(f"proj_size needs an LSTM with hidden_size > proj_size, got cell {self.cell!r}, "
                                f"hidden_size {self.hidden_size}, proj_size {self.proj_size}")
        if self.forecast_transform is not None and self.forecast_transform.active and self.head != "forecast":
            raise BadInputError(f"forecast transforms apply to --head forecast only, got head {self.head!r}")
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
    def state_size(self) -> int | None:
        """Units of the hidden state h (and of each step's output): proj_size when projected."""
        return self.proj_size or self.hidden_size

    @property
    def plain(self) -> bool:
        """True for the model edgernn trains itself (rnn + head on the last step): what
        ``edgernn.export``'s checkpoint writers and ``edgernn.reference.model_forward`` describe."""
        known = None not in (self.cell, self.input_size, self.hidden_size, self.num_layers)
        return known and not self.proj_size and not self.vocab_size and self.head_input == "last_step"

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
        if self.forecast_transform is not None:
            d["forecast_transform"] = self.forecast_transform.to_dict()
        for name, default in {**MODULE_FIELDS, **DATA_FIELDS}.items():
            if d[name] == default:
                del d[name]
        if self.module is not None:  # left out, not invented
            d = {k: v for k, v in d.items() if v is not None}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadInputError(f"unknown model spec fields: {', '.join(unknown)}")
        d = dict(d)
        version = d.get("spec_version", SPEC_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > SPEC_VERSION:
            raise BadInputError(f"model spec version {version!r} is not one this edgernn reads (version "
                                f"{SPEC_VERSION} and older): install a newer edgernn")
        if d.get("module") is not None:  # a module's spec: a field left out was not known
            for name in ("num_layers", "head"):
                d.setdefault(name, None)
        d["labels"] = tuple(str(v) for v in d.get("labels", ()))
        if d.get("normalization") is not None:
            d["normalization"] = Normalization.from_dict(d["normalization"])
        if d.get("forecast_transform") is not None:
            d["forecast_transform"] = ForecastTransform.from_dict(d["forecast_transform"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise BadInputError(f"model spec is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadInputError(f"model spec must be a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, AttributeError) as e:  # a field of the wrong type
            raise BadInputError(f"model spec is damaged ({type(e).__name__}: {e})") from None
