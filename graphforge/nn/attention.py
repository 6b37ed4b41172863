"""Multi-head attention (batch first), built on the ``attention`` op.

Projections are ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` (nn.Linear), initialised like
PyTorch's ``nn.MultiheadAttention`` (xavier-uniform in-projections with its packed-matrix bound,
zero biases). Masks follow PyTorch's meaning in this layer: a bool ``key_padding_mask`` (B, Sk) or
``attn_mask`` (Sq, Sk) / (B*H, Sq, Sk) is True where attention is NOT allowed."""
from __future__ import annotations

import math


from .. import ops
from ..errors import DTypeError, ShapeError
from ..trace.builder import current_builder
from ..trace.tensor import Tensor
from . import init as _init
from .layers import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiHeadAttention", "MultiheadAttention"]


class MultiHeadAttention(Module):
    """``out_proj(attention(q_proj(query), k_proj(key), v_proj(value)))`` over ``num_heads`` heads.

    Inputs are (batch, seq, embed_dim) (``batch_first=True``; False takes (seq, batch, embed_dim)).
    ``forward`` returns the output tensor only (no attention weights).

    Args:
        embed_dim: the model width (divisible by ``num_heads``).
        num_heads: the number of heads.
        dropout: dropout on the attention weights in training mode.
        bias: biases on the projections.
        kdim: the key's width (default ``embed_dim``).
        vdim: the value's width (default ``embed_dim``).
        batch_first: see above.
        dtype: the parameters' dtype.

    Example:
        ```python
        attn = nn.MultiHeadAttention(128, 4)
        out = attn(x, x, x)     # self-attention on (batch, seq, 128)
        ```
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = True, dtype: str = "float32"):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ShapeError(f"MultiHeadAttention: embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        # PyTorch draws one packed (3E, E) in-projection when kdim == vdim == E: bound sqrt(6 / 4E).
        packed = self.kdim == embed_dim and self.vdim == embed_dim
        gain = math.sqrt(0.5) if packed else 1.0
        self.q_proj = self._proj(embed_dim, embed_dim, bias, dtype, gain)
        self.k_proj = self._proj(self.kdim, embed_dim, bias, dtype, gain)
        self.v_proj = self._proj(self.vdim, embed_dim, bias, dtype, gain)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            self.out_proj.bias = Parameter((embed_dim,), dtype, init=_init.zeros)

    @staticmethod
    def _proj(d_in, d_out, bias, dtype, gain):
        layer = Linear(d_in, d_out, bias=bias, dtype=dtype)
        layer.weight = Parameter((d_out, d_in), dtype, init=_init.xavier_uniform(gain))
        if bias:
            layer.bias = Parameter((d_out,), dtype, init=_init.zeros)
        return layer

    def _heads(self, t):
        b, s = t.shape[0], t.shape[1]
        return ops.transpose(ops.reshape(t, [b, s, self.num_heads, self.head_dim]), [0, 2, 1, 3])

    def _mask(self, key_padding_mask, attn_mask, batch, sq, sk):
        """The op's bool mask (True = attend) from PyTorch-style masks (True = masked out)."""
        allowed = None
        for name, m in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
            if m is not None and (not isinstance(m, Tensor) or m.dtype != "bool"):
                raise DTypeError(f"MultiHeadAttention: {name} must be a bool tensor (True = not allowed), got "
                                 f"{getattr(m, 'type', type(m).__name__)}",
                                 hint="build it with a comparison, e.g. tokens == pad_id")
        if key_padding_mask is not None:
            if key_padding_mask.ndim != 2:
                raise ShapeError(f"key_padding_mask must be (batch, key_seq), got {key_padding_mask.type}")
            allowed = ops.unsqueeze(ops.logical_not(key_padding_mask), [1, 2])
        if attn_mask is not None:
            am = ops.logical_not(attn_mask)
            if am.ndim == 3:
                am = ops.reshape(am, [batch, self.num_heads, am.shape[1], am.shape[2]])
            elif am.ndim != 2:
                raise ShapeError(f"attn_mask must be (Sq, Sk) or (batch*heads, Sq, Sk), got {attn_mask.type}")
            allowed = am if allowed is None else ops.logical_and(allowed, am)
        return allowed

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None, is_causal: bool = False):
        key = query if key is None else key
        value = key if value is None else value
        if not self.batch_first:
            query, key, value = (ops.transpose(t, [1, 0, 2]) for t in (query, key, value))
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise ShapeError(f"MultiHeadAttention(embed_dim={self.embed_dim}) expects (batch, seq, {self.embed_dim}) "
                             f"input, got {query.type}")
        b = query.shape[0]
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        mask = self._mask(key_padding_mask, attn_mask, b, q.shape[2], k.shape[2])
        if self.training and self.dropout > 0:
            out = self._explicit(q, k, v, mask, is_causal)
        else:
            out = ops.attention(q, k, v, mask, causal=is_causal)
        out = ops.reshape(ops.transpose(out, [0, 2, 1, 3]), [b, out.shape[2], self.embed_dim])
        out = self.out_proj(out)
        return out if self.batch_first else ops.transpose(out, [1, 0, 2])

    def _explicit(self, q, k, v, mask, causal):
        """Attention spelled out, so dropout can act on the attention weights (training mode)."""
        s = ops.matmul(q, ops.transpose(k, [0, 1, 3, 2])) * (1.0 / math.sqrt(self.head_dim))
        if causal:
            # the op's top-left-aligned causal mask; tril works on symbolic lengths too
            s = ops.where(ops.tril(ops.ones((q.shape[2], k.shape[2]))) > 0, s, -math.inf)
        if mask is not None:
            s = ops.where(mask, s, -math.inf)
        builder = current_builder()
        p = ops.dropout(ops.softmax(s, -1), self.dropout, Tensor(builder.rng_key(), builder))
        return ops.matmul(p, v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


MultiheadAttention = MultiHeadAttention  # PyTorch's spelling

