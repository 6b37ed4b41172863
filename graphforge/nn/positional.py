"""Position information for sequence models, sized by the (symbolic) sequence length of the input.

* :class:`PositionalEncoding` — the fixed sinusoidal table of "Attention Is All You Need"
  (``pe[p, 2i] = sin(p / base^(2i/d))``, ``pe[p, 2i+1] = cos(...)``), computed in the graph from
  ``gf.arange(seq)``: no ``max_len`` table, one graph serves every length;
* :class:`LearnedPositionalEmbedding` — a trained ``(max_len, d)`` table whose first ``seq`` rows are
  added (a guard ``seq <= max_len`` is recorded, checked when inputs are bound);
* :class:`RotaryEmbedding` — rotary position embedding (RoPE) applied to queries/keys, either in the
  "half" layout (GPT-NeoX / Hugging Face ``rotate_half``) or interleaved pairs (the original paper / Meta
  LLaMA), with an optional position ``offset`` for decoding after a prompt.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..trace.tensor import Tensor
from .module import Module
from .parameter import Parameter
from .regularization import Dropout

__all__ = ["PositionalEncoding", "LearnedPositionalEmbedding", "RotaryEmbedding", "sinusoidal_table"]


def sinusoidal_table(length: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The sinusoidal table as a NumPy float64 array (length, d_model) — the formula the layer computes."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    inv = base ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(pos * inv)
    table[:, 1::2] = np.cos(pos * inv)[:, : d_model // 2]
    return table


def _angles(n, dim: int, base: float, dtype: str, offset=0):
    """``positions[:, None] * inv_freq[None, :]`` as a (n, dim/2) tensor of ``dtype`` (positions start at ``offset``)."""
    pos = ops.cast(ops.arange(n), dtype)
    if not (isinstance(offset, int) and offset == 0):
        pos = pos + (ops.cast(offset, dtype) if isinstance(offset, Tensor) else float(offset))
    inv = ops.constant((base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)), dtype)
    return ops.unsqueeze(pos, [1]) * ops.unsqueeze(inv, [0])


def _seq_axis(x, axis: int, who: str) -> int:
    if x.ndim < 2:
        raise ShapeError(f"{who} expects a (…, seq, features) tensor, got {x.type}")
    return axis % x.ndim


class PositionalEncoding(Module):
    """``dropout(x + pe[:seq])`` with the sinusoidal table ``pe`` (no parameters).

    ``x`` is (batch, seq, d_model) with ``batch_first=True`` (default), else (seq, batch, d_model).
    The table is computed in the graph for the input's length, so there is no length limit; ``scale``
    multiplies ``x`` first (``sqrt(d_model)`` in the original Transformer)."""

    def __init__(self, d_model: int, dropout: float = 0.0, base: float = 10000.0, batch_first: bool = True,
                 scale: float = 1.0):
        super().__init__()
        if d_model < 1:
            raise ShapeError(f"PositionalEncoding needs d_model >= 1, got {d_model}")
        self.d_model, self.base, self.batch_first, self.scale = d_model, float(base), batch_first, float(scale)
        self.dropout = Dropout(dropout)

    def table(self, n, dtype: str = "float32", offset=0):
        """The (n, d_model) table for ``n`` positions (an int or a symbolic dim) from ``offset``
        (an int or an int64 scalar tensor: the position of a decoding step)."""
        ang = _angles(n, self.d_model, self.base, dtype, offset)            # (n, ceil(d/2))
        pe = ops.reshape(ops.stack([ops.sin(ang), ops.cos(ang)], -1), [n, 2 * ang.shape[-1]])  # interleave sin, cos
        if self.d_model % 2:
            pe = ops.slice(pe, [0], [self.d_model], [1])
        return pe

    def forward(self, x, offset=0):
        """``x`` plus the table from position ``offset`` (int or int64 scalar tensor; a KV-cached
        decoding step passes its position)."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"PositionalEncoding(d_model={self.d_model}) expects "
                             f"{'(batch, seq' if self.batch_first else '(seq, batch'}, {self.d_model}), got {x.type}")
        n = x.shape[1] if self.batch_first else x.shape[0]
        pe = self.table(n, x.dtype, offset)
        pe = ops.unsqueeze(pe, [0] if self.batch_first else [1])
        return self.dropout((x * self.scale if self.scale != 1.0 else x) + pe)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, base={self.base:g}"


class LearnedPositionalEmbedding(Module):
    """``dropout(x + weight[offset : offset + seq])`` with a trained table ``weight`` (max_len, d_model),
    initialised N(0, 0.02). ``x`` is (batch, seq, d_model) (``batch_first``) or (seq, batch, d_model)."""

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0, batch_first: bool = True,
                 dtype: str = "float32"):
        super().__init__()
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.weight = Parameter((max_len, d_model), dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x, offset: int = 0):
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"LearnedPositionalEmbedding(d_model={self.d_model}) expects a rank-3 input with "
                             f"{self.d_model} features, got {x.type}")
        n = x.shape[1] if self.batch_first else x.shape[0]
        pos = ops.slice(self.weight, [offset], [n + offset], [0])          # guard: offset + seq <= max_len
        pos = ops.unsqueeze(pos, [0] if self.batch_first else [1])
        return self.dropout(x + ops.cast(pos, x.dtype))

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


class RotaryEmbedding(Module):
    """Rotary position embedding over the last ``dim`` features of ``x`` (no parameters).

    ``x`` has the sequence on ``seq_axis`` (default -2: (batch, heads, seq, head_dim), the layout of
    ``MultiHeadAttention``'s heads) and features last; the first ``dim`` features (default all) are
    rotated, the rest pass through. ``interleaved=False`` rotates the halves ``(x1, x2)`` of the
    features (``x * cos + rotate_half(x) * sin``, GPT-NeoX / Hugging Face); ``True`` rotates
    adjacent pairs ``(x[2i], x[2i+1])``. ``offset`` (int, dim or int64 scalar tensor) is the position
    of the first row, for decoding after a prompt."""

    def __init__(self, dim: int, base: float = 10000.0, interleaved: bool = False, seq_axis: int = -2):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ShapeError(f"RotaryEmbedding needs an even dim >= 2, got {dim}")
        self.dim, self.base, self.interleaved, self.seq_axis = dim, float(base), interleaved, seq_axis

    def cos_sin(self, n, dtype: str = "float32", offset=0):
        """The (n, dim/2) cosine and sine tables for ``n`` positions starting at ``offset``."""
        ang = _angles(n, self.dim, self.base, dtype, offset)
        return ops.cos(ang), ops.sin(ang)

    def forward(self, x, offset=0):
        axis = _seq_axis(x, self.seq_axis, "RotaryEmbedding")
        if axis == x.ndim - 1:
            raise ShapeError(f"RotaryEmbedding: seq_axis {self.seq_axis} is the feature axis of {x.type}")
        d = x.shape[-1]
        if not isinstance(d, int) or d < self.dim:
            raise ShapeError(f"RotaryEmbedding(dim={self.dim}) needs at least {self.dim} static features, got {x.type}")
        n, half = x.shape[axis], self.dim // 2
        cos, sin = self.cos_sin(n, x.dtype, offset)                        # (n, half)
        # broadcast (n, half) against x: the seq axis lines up, every axis between it and the features is 1
        shape = [n] + [1] * (x.ndim - 2 - axis) + [half]
        cos, sin = ops.reshape(cos, shape), ops.reshape(sin, shape)
        rot, rest = (x, None) if d == self.dim else ops.split(x, [self.dim, d - self.dim], -1)
        if self.interleaved:
            pairs = ops.reshape(rot, list(rot.shape[:-1]) + [half, 2])
            x1, x2 = (ops.squeeze(t, [-1]) for t in ops.split(pairs, 2, -1))
            out = ops.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
            out = ops.reshape(out, list(rot.shape[:-1]) + [self.dim])
        else:
            x1, x2 = ops.split(rot, 2, -1)
            out = ops.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
        return out if rest is None else ops.concat([out, rest], -1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base:g}, interleaved={self.interleaved}"
