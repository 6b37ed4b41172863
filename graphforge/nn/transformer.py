"""Transformer encoder: TransformerEncoderLayer (pre- or post-norm, ReLU or GELU feed-forward
``ffn.fc1``/``ffn.fc2``, dropout) and TransformerEncoder (a ModuleList ``layers`` of copies), so that
parameters come out as ``encoder.layers.0.attn.q_proj.weight``."""
from __future__ import annotations

import copy

from .. import ops
from ..errors import ShapeError
from .attention import MultiHeadAttention
from .layers import GELU, Linear, ReLU
from .module import Module, ModuleList
from .norm import LayerNorm
from .regularization import Dropout

__all__ = ["FeedForward", "TransformerEncoderLayer", "TransformerEncoder"]


class FeedForward(Module):
    """``fc2(dropout(act(fc1(x))))``.

    Args:
        d_model: input and output width.
        dim_feedforward: the hidden width.
        dropout: dropout after the activation, in training mode.
        activation: ``"relu"`` or ``"gelu"``.
        bias: biases on ``fc1`` and ``fc2``.
        dtype: the parameters' dtype.

    Example:
        ```python
        ffn = nn.FeedForward(128, 512, activation="gelu")
        ```
    """

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation: str = "relu",
                 bias: bool = True, dtype: str = "float32"):
        super().__init__()
        acts = {"relu": ReLU, "gelu": GELU}
        if activation not in acts:
            raise ShapeError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.fc1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.act = acts[activation]()
        self.dropout = Dropout(dropout)
        self.fc2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block (PyTorch's defaults: post-norm, ReLU, dropout 0.1).
    Submodules: ``attn``, ``ffn`` (``fc1``, ``fc2``), ``norm1``, ``norm2``, ``dropout1``, ``dropout2``.

    Args:
        d_model: the model width.
        nhead: attention heads.
        dim_feedforward: the feed-forward hidden width.
        dropout: dropout rate (attention, feed-forward, residuals).
        activation: ``"relu"`` or ``"gelu"``.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: inputs are (batch, seq, d_model); False: (seq, batch, d_model).
        norm_first: pre-norm (LayerNorm before each block) instead of post-norm.
        bias: biases in the linear layers and LayerNorms.
        dtype: the parameters' dtype.

    Example:
        ```python
        layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, norm_first=True)
        ```
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        self.d_model, self.norm_first, self.batch_first = d_model, norm_first, batch_first
        self.attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout, activation, bias, dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def _sa(self, x, mask, key_padding_mask, is_causal):
        return self.dropout1(self.attn(x, key_padding_mask=key_padding_mask, attn_mask=mask, is_causal=is_causal))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src if self.batch_first else ops.transpose(src, [1, 0, 2])
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x if self.batch_first else ops.transpose(x, [1, 0, 2])


class TransformerEncoder(Module):
    """``num_layers`` independent copies of ``encoder_layer`` in ``layers``, then an optional ``norm``.

    ``TransformerEncoder(num_layers=2, d_model=64, nhead=4, ...)`` builds the layer from the
    keyword arguments of :class:`TransformerEncoderLayer` instead."""

    def __init__(self, encoder_layer: TransformerEncoderLayer | None = None, num_layers: int = 1,
                 norm: Module | None = None, **layer_kwargs):
        super().__init__()
        if encoder_layer is None:
            encoder_layer = TransformerEncoderLayer(**layer_kwargs)
        elif layer_kwargs:
            raise ShapeError(f"TransformerEncoder: pass either an encoder_layer or its keyword arguments, "
                             f"not both (got {', '.join(layer_kwargs)})")
        if num_layers < 1:
            raise ShapeError(f"TransformerEncoder needs num_layers >= 1, got {num_layers}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return self.norm(x) if self.norm is not None else x

    def prefill(self, src, max_len):
        """Causal pass over a prompt that also returns each layer's key/value cache (KV-cached decoding).

        Args:
            src: the prompt (batch, seq, d_model).
            max_len: the cache length (int or symbolic dim >= seq): prompt plus new tokens.

        Returns:
            ``(output, cache)``: ``forward(src, is_causal=True)`` and a list of ``(k, v)`` per layer,
            each (batch, heads, max_len, head_dim). See ``graphforge.nn.kv_cache``.
        """
        from .kv_cache import stack_prefill

        return stack_prefill(self, src, max_len)

    def step(self, x, cache, pos):
        """One new position through the stack, attending over the cache (KV-cached decoding).

        Args:
            x: the new position (batch, 1, d_model).
            cache: the list of ``(k, v)`` from :meth:`prefill` or the previous step.
            pos: its position, an int64 scalar tensor (< max_len).

        Returns:
            ``(output (batch, 1, d_model), new cache)``.
        """
        from .kv_cache import stack_step

        return stack_step(self, x, cache, pos)
