"""Modules written the way users write them, for the bring-your-own-model tests (tests/test_byom.py).

Each is an ordinary ``nn.Module`` with its own names and forward; nothing here knows about edgernn.
The ``build_*`` factories are what ``edgernn export --module tests/byom_modules.py:build_…`` loads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

FEATURES = 5


class LSTMRegressor(nn.Module):
    """The tutorial model: stacked LSTM with dropout, Linear on the last step."""

    def __init__(self, n_features=FEATURES, hidden=12, layers=2, outputs=2):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True, dropout=0.2)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(hidden, outputs)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(self.dropout(out[:, -1, :]))


class TimeMajorGRU(nn.Module):
    """batch_first=False, no biases, three layers; reads out[-1]."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 9, num_layers=3, bias=False)
        self.out = nn.Linear(9, 3)

    def forward(self, x):  # x: (seq_len, batch, features)
        y, h = self.gru(x)
        return self.out(y[-1])


class ZeroStateLSTM(nn.Module):
    """Builds its zero initial state inside forward, from the batch it gets."""

    def __init__(self):
        super().__init__()
        self.hidden_size, self.num_layers = 10, 2
        self.rnn = nn.LSTM(FEATURES, 10, 2, batch_first=True)
        self.head = nn.Linear(10, 1)

    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        out, (hn, cn) = self.rnn(x, (h0, c0))
        return self.head(hn[-1])


class BakedBatchGRU(nn.Module):
    """Its initial state has the batch size it was written for: it runs only on batches of 4."""

    def __init__(self, batch_size=4):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)
        self.batch_size = batch_size

    def forward(self, x):
        h0 = torch.zeros(1, self.batch_size, 8)
        out, _ = self.gru(x, h0)
        return self.fc(out[:, -1])


class Seq2SeqGRU(nn.Module):
    """Returns a prediction at every step (sequence to sequence)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(FEATURES, 11, num_layers=2, batch_first=True)
        self.proj = nn.Linear(11, 4)

    def forward(self, x):
        out, _ = self.encoder(x)
        return self.proj(out)  # (batch, time, 4)


class StackedWithNorm(nn.Module):
    """Two separate RNNs with LayerNorm and an activation between: not one RNN."""

    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTM(FEATURES, 16, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.drop = nn.Dropout(0.1)
        self.gru2 = nn.GRU(16, 8, batch_first=True)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.lstm1(x)
        y = self.drop(torch.relu(self.norm(y)))
        y, _ = self.gru2(y)
        return self.classifier(y[:, -1])


class SentimentClassifier(nn.Module):
    """Token ids in, padded batches with lengths, pack_padded_sequence: the classic text classifier."""

    def __init__(self, vocab_size=120, embed_dim=6, hidden=10, classes=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, text, lengths):
        embedded = self.embedding(text)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        return self.fc(hidden[-1])


class TokenGRU(nn.Module):
    """Token ids in, no lengths: a next-token style classifier on the last step."""

    def __init__(self, vocab_size=50):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 7)
        self.rnn = nn.GRU(7, 9, batch_first=True)
        self.decoder = nn.Linear(9, vocab_size)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.decoder(out[:, -1])


class BiLSTMClassifier(nn.Module):
    """Bidirectional; the head reads both directions' final hidden states."""

    def __init__(self):
        super().__init__()
        self.bilstm = nn.LSTM(FEATURES, 7, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(14, 3)

    def forward(self, x):
        _, (h_n, _) = self.bilstm(x)
        return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1))


class PackedBiGRU(nn.Module):
    """Bidirectional GRU over padded batches, tagging every step (pad_packed_sequence back)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 6, batch_first=True, bidirectional=True)
        self.tagger = nn.Linear(12, 4)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.tagger(out)


class ProjectedLSTM(nn.Module):
    """LSTM with proj_size (what speech models use), which torch.onnx.export rejects."""

    def __init__(self, proj=4):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 16, num_layers=2, batch_first=True, proj_size=proj)
        self.fc = nn.Linear(proj, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class PackedProjectedLSTM(nn.Module):
    """proj_size and padded batches together."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 12, batch_first=True, proj_size=5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x, lengths):
        _, (h, _) = self.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.fc(h[-1])


class MLPHeadGRU(nn.Module):
    """A GRU and a small MLP head: not a single Linear, so torch.onnx.export writes it."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 10, batch_first=True)
        self.head = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


class BesselFeatures(nn.Module):
    """A feature transform no ONNX exporter converts."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 8, batch_first=True)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.gru(torch.special.bessel_j0(x))
        return self.fc(out[:, -1])


class FFTFeatures(nn.Module):
    """Spectral features: TorchScript's exporter has no rfft, torch.export (dynamo) has."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES + FEATURES // 2 + 1, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        spectrum = torch.fft.rfft(x, dim=-1).abs()  # (batch, time, FEATURES // 2 + 1)
        out, _ = self.gru(torch.cat([x, spectrum], dim=-1))
        return self.fc(out[:, -1])


def build_model():
    """A factory, as `--module tests/byom_modules.py:build_model` loads it."""
    torch.manual_seed(0)
    return LSTMRegressor()


def build_sentiment():
    torch.manual_seed(0)
    return SentimentClassifier()


def build_bessel():
    return BesselFeatures()


class SoftmaxClassifier(nn.Module):
    """A classifier that returns probabilities: softmax in forward."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.softmax(self.fc(out[:, -1]), dim=-1)


class StatefulLSTM(nn.Module):
    """The tutorial pattern: forward(x, hidden) with an init_hidden(batch) helper."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def init_hidden(self, batch):
        return torch.zeros(1, batch, 8), torch.zeros(1, batch, 8)

    def forward(self, x, hidden):
        out, hidden = self.lstm(x, hidden)
        return self.fc(out[:, -1]), hidden


class OptionalStateGRU(nn.Module):
    """forward(x, hidden=None): the state is optional."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x, hidden=None):
        out, _ = self.gru(x, hidden)
        return self.fc(out[:, -1])


class EncoderDecoderGRU(nn.Module):
    """A GRU encoder, then a GRUCell decoder that predicts a fixed 5-step horizon."""

    def __init__(self, horizon=5):
        super().__init__()
        self.encoder = nn.GRU(FEATURES, 10, batch_first=True)
        self.decoder = nn.GRUCell(1, 10)
        self.out = nn.Linear(10, 1)
        self.horizon = horizon

    def forward(self, x):
        _, h = self.encoder(x)
        h = h[-1]
        y = self.out(h)
        ys = []
        for _ in range(self.horizon):
            h = self.decoder(y, h)
            y = self.out(h)
            ys.append(y)
        return torch.cat(ys, dim=1)  # (batch, horizon)


class CellLoopLSTM(nn.Module):
    """An LSTMCell stepped over the input by hand: one call per input step."""

    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(FEATURES, 8)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        h = c = torch.zeros(x.shape[0], 8)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.fc(h)
