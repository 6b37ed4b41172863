"""Transformer decoder: ``TransformerDecoderLayer`` (causal self-attention, cross-attention over a
memory, feed-forward; post-norm or ``norm_first``) and ``TransformerDecoder`` (a stack of copies).

Parameter names are PyTorch's (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``,
``norm1..3``), so ``load_state_dict`` takes a ``torch.nn.TransformerDecoder``'s state dict as it is
(the packed ``in_proj_weight`` is split by ``nn.state``). Unlike PyTorch, ``batch_first`` defaults
to True, like graphforge's encoder. Masks follow PyTorch: bool, True = not allowed; ``tgt_is_causal``
makes self-attention causal without a mask tensor (works at any symbolic length)."""
from __future__ import annotations

import copy

from .. import ops
from ..errors import ShapeError
from .attention import MultiHeadAttention
from .layers import GELU, Linear, ReLU
from .module import Module, ModuleList
from .norm import LayerNorm
from .regularization import Dropout

__all__ = ["TransformerDecoderLayer", "TransformerDecoder"]

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class TransformerDecoderLayer(Module):
    """``self_attn`` → ``multihead_attn`` (over ``memory``) → ``linear2(dropout(act(linear1(x))))``,
    each with a residual and a LayerNorm (``norm1``, ``norm2``, ``norm3``), after (default) or before
    (``norm_first``) the sublayer. Defaults are PyTorch's except ``batch_first=True``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ShapeError(f"TransformerDecoderLayer: activation must be 'relu' or 'gelu', got {activation!r}")
        self.d_model, self.norm_first, self.batch_first = d_model, norm_first, batch_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                                 dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.activation = _ACTIVATIONS[activation]()
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1, self.dropout2, self.dropout3 = Dropout(dropout), Dropout(dropout), Dropout(dropout)

    def _sa(self, x, mask, key_padding_mask, is_causal):
        return self.dropout1(self.self_attn(x, key_padding_mask=key_padding_mask, attn_mask=mask,
                                            is_causal=is_causal))

    def _mha(self, x, memory, mask, key_padding_mask, is_causal):
        return self.dropout2(self.multihead_attn(x, memory, memory, key_padding_mask=key_padding_mask,
                                                 attn_mask=mask, is_causal=is_causal))

    def _ff(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        for name, t in (("tgt", tgt), ("memory", memory)):
            if t.ndim != 3 or t.shape[-1] != self.d_model:
                raise ShapeError(f"TransformerDecoderLayer(d_model={self.d_model}): {name} must be "
                                 f"{'(batch, seq' if self.batch_first else '(seq, batch'}, {self.d_model}), got {t.type}")
        x, mem = (tgt, memory) if self.batch_first else (ops.transpose(tgt, [1, 0, 2]), ops.transpose(memory, [1, 0, 2]))
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha(self.norm2(x), mem, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff(self.norm3(x))
        else:
            x = self.norm1(x + self._sa(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha(x, mem, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff(x))
        return x if self.batch_first else ops.transpose(x, [1, 0, 2])


class TransformerDecoder(Module):
    """``num_layers`` independent copies of ``decoder_layer`` in ``layers``, then an optional ``norm``.

    ``TransformerDecoder(num_layers=2, d_model=64, nhead=4, ...)`` builds the layer from the keyword
    arguments of :class:`TransformerDecoderLayer` instead."""

    def __init__(self, decoder_layer: TransformerDecoderLayer | None = None, num_layers: int = 1,
                 norm: Module | None = None, **layer_kwargs):
        super().__init__()
        if decoder_layer is None:
            decoder_layer = TransformerDecoderLayer(**layer_kwargs)
        elif layer_kwargs:
            raise ShapeError(f"TransformerDecoder: pass either a decoder_layer or its keyword arguments, "
                             f"not both (got {', '.join(layer_kwargs)})")
        if num_layers < 1:
            raise ShapeError(f"TransformerDecoder needs num_layers >= 1, got {num_layers}")
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                      memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x

    def prefill(self, tgt, memory, max_len, memory_key_padding_mask=None):
        """Causal pass over a target prefix that also returns each layer's self-attention key/value
        cache (KV-cached decoding; cross-attention reads ``memory`` as in ``forward``).

        Args:
            tgt: the prefix (batch, seq, d_model).
            memory: the encoder output (batch, mem_seq, d_model).
            max_len: the cache length (int or symbolic dim >= seq).
            memory_key_padding_mask: optional (batch, mem_seq) bool, True = padding.

        Returns:
            ``(output, cache)``: a list of ``(k, v)`` per layer (batch, heads, max_len, head_dim).
        """
        from .kv_cache import stack_prefill

        return stack_prefill(self, tgt, max_len, memory, memory_key_padding_mask)

    def step(self, x, memory, cache, pos, memory_key_padding_mask=None):
        """One new target position through the stack, attending over the cache and ``memory``.

        Args:
            x: the new position (batch, 1, d_model).
            memory: the encoder output (batch, mem_seq, d_model).
            cache: the list of ``(k, v)`` from :meth:`prefill` or the previous step.
            pos: its position, an int64 scalar tensor (< max_len).
            memory_key_padding_mask: optional (batch, mem_seq) bool, True = padding.

        Returns:
            ``(output (batch, 1, d_model), new cache)``.
        """
        from .kv_cache import stack_step

        return stack_step(self, x, cache, pos, memory, memory_key_padding_mask)
