"""The PyTorch model a ``ModelSpec`` describes: an nn.LSTM/nn.GRU backbone and a Linear head."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from edgernn.spec import ModelSpec


class RnnModel(nn.Module):
    """``x[B, T, F] → head(rnn(x)[:, -1])``; names match the state_dict keys edgernn exports."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        rnn_class = nn.LSTM if spec.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            input_size=spec.input_size,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            batch_first=True,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            bidirectional=spec.bidirectional,
        )
        self.head = nn.Linear(spec.hidden_size * spec.num_directions, spec.output_size)

    def forward_with_state(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        """Return ``(y, h_n, c_n)``; ``c_n`` is None for GRU.

        ``lengths`` (B,): true lengths of right-padded sequences. They are packed, so each sequence is
        run at its own length (the padding never reaches the cell) and the head reads its last real step:
        the same result as that sequence alone, unpadded.
        """
        if lengths is None:
            out, state = self.rnn(x)  # out: (B, T, D·H)
            last = out[:, -1]
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out_packed, state = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True)  # (B, max len, D·H)
            index = (lengths.to(out.device) - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])  # (B, 1, D·H)
            last = out.gather(1, index).squeeze(1)  # (B, D·H)
        h_n, c_n = state if isinstance(state, tuple) else (state, None)
        return self.head(last), h_n, c_n

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_state(x, lengths)[0]


def build_model(spec: ModelSpec, seed: int | None = None) -> RnnModel:
    if seed is not None:
        torch.manual_seed(seed)
    return RnnModel(spec)


def load_torch_model(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> RnnModel:
    """An eval-mode model with the given numpy weights (as from ``load_checkpoint``)."""
    model = RnnModel(spec)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in weights.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
