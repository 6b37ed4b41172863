"""Key/value caches: decoding a Transformer one token per step inside ``nn.generate``.

Without a cache every decoding step re-runs the model over the whole prefix (O(n²) work per token
at length n). With one, the prompt is run once (``prefill``), each layer's self-attention keys and
values are kept in buffers of the final length ``max_len`` (batch, heads, max_len, head_dim), and a
step runs only the new token: it projects its query/key/value, writes the key and value at position
``pos`` and attends over positions ``<= pos`` (a mask; the unfilled tail is never read). The cache is
a plain pytree — a list with one ``(k, v)`` pair per layer — so it rides in ``nn.generate``'s
``while_loop`` carry and exports to ONNX as loop-carried tensors.

``TransformerEncoder`` (causal, decoder-only language models) and ``TransformerDecoder`` (with
cross-attention over a ``memory``; its projections of ``memory`` are loop-invariant, which the
``hoist`` pass lifts out of the loop) get ``prefill`` and ``step`` methods built on the functions
here. Only batch-first layers step; dropout is the layers' own (identity in eval mode)."""
from __future__ import annotations

from .. import ops
from ..errors import ShapeError, TraceError
from ..trace.builder import active_builder
from .module import _adopt

__all__ = ["attention_prefill", "attention_step", "layer_prefill", "layer_step", "stack_prefill", "stack_step",
           "entered"]


def entered(module, fn):
    """``fn()`` inside ``module``'s scope, as if ``module`` had been called (its parameters get
    their names even when the module has not run in this trace yet)."""
    builder = active_builder()
    if builder is None:
        raise TraceError(f"{type(module).__name__}: prefill/step were called outside gf.trace")
    if module._gf_path is None:
        _adopt(builder, module)
    with builder.scope(module._gf_path):
        return fn()


def _merge(mha, out, b, s):
    out = ops.reshape(ops.transpose(out, [0, 2, 1, 3]), [b, s, mha.embed_dim])
    return mha.out_proj(out)


def attention_prefill(mha, x, max_len):
    """Causal self-attention of ``mha`` over the prompt ``x`` (batch, seq, E), and the cache ``(k, v)``
    holding its keys and values followed by zeros up to ``max_len`` (int or symbolic dim >= seq)."""
    b, s = x.shape[0], x.shape[1]
    q, k, v = mha._heads(mha.q_proj(x)), mha._heads(mha.k_proj(x)), mha._heads(mha.v_proj(x))
    out = _merge(mha, ops.attention(q, k, v, None, causal=True), b, s)
    pad = ops.zeros((b, mha.num_heads, max_len - s, mha.head_dim), x.dtype)
    return out, (ops.concat([k, pad], 2), ops.concat([v, pad], 2))


def attention_step(mha, x, cache, pos):
    """Self-attention of one new position ``x`` (batch, 1, E) at ``pos`` (int64 scalar) over the cached
    positions ``<= pos``; returns the output (batch, 1, E) and the cache with this position's key and
    value written in."""
    k_cache, v_cache = cache
    if x.ndim != 3 or x.shape[1] != 1:
        raise ShapeError(f"{type(mha).__name__} step: the input must be one position (batch, 1, "
                         f"{mha.embed_dim}), got {x.type}")
    length = k_cache.shape[2]
    b = x.shape[0]
    q, k, v = mha._heads(mha.q_proj(x)), mha._heads(mha.k_proj(x)), mha._heads(mha.v_proj(x))
    slots = ops.arange(length)
    here = ops.reshape(ops.equal(slots, pos), [1, 1, length, 1])
    k_cache, v_cache = ops.where(here, k, k_cache), ops.where(here, v, v_cache)
    seen = ops.reshape(ops.less_equal(slots, pos), [1, 1, 1, length])
    out = _merge(mha, ops.attention(q, k_cache, v_cache, seen), b, 1)
    return out, (k_cache, v_cache)


def _check(layer, x):
    if not layer.batch_first:
        raise ShapeError(f"{type(layer).__name__}: prefill/step need batch_first=True layers")
    if x.ndim != 3 or x.shape[-1] != layer.d_model:
        raise ShapeError(f"{type(layer).__name__}(d_model={layer.d_model}): expects (batch, seq, {layer.d_model}), "
                         f"got {x.type}")


def _layer(layer, x, attend, memory, memory_key_padding_mask):
    """One encoder or decoder layer with its self-attention replaced by ``attend(h) -> (out, cache)``."""
    _check(layer, x)
    sa_mod = getattr(layer, "self_attn", None) or layer.attn
    is_decoder = hasattr(layer, "multihead_attn")
    if is_decoder and memory is None:
        raise ShapeError("TransformerDecoderLayer prefill/step need the memory")

    def sa(h):
        out, cache = entered(sa_mod, lambda: attend(h))
        return layer.dropout1(out), cache

    def cross(h):
        return layer._mha(h, memory, None, memory_key_padding_mask, False)

    ff = layer._ff if is_decoder else (lambda h: layer.dropout2(layer.ffn(h)))
    if layer.norm_first:
        a, cache = sa(layer.norm1(x))
        x = x + a
        if is_decoder:
            x = x + cross(layer.norm2(x))
        x = x + ff((layer.norm3 if is_decoder else layer.norm2)(x))
    else:
        a, cache = sa(x)
        x = layer.norm1(x + a)
        if is_decoder:
            x = layer.norm2(x + cross(x))
        x = (layer.norm3 if is_decoder else layer.norm2)(x + ff(x))
    return x, cache


def layer_prefill(layer, x, max_len, memory=None, memory_key_padding_mask=None):
    """An encoder/decoder layer over the prompt with causal self-attention; returns (y, cache)."""
    mha = getattr(layer, "self_attn", None) or layer.attn
    return entered(layer, lambda: _layer(layer, x, lambda h: attention_prefill(mha, h, max_len), memory,
                                         memory_key_padding_mask))


def layer_step(layer, x, cache, pos, memory=None, memory_key_padding_mask=None):
    """An encoder/decoder layer over one new position at ``pos``; returns (y, new cache)."""
    mha = getattr(layer, "self_attn", None) or layer.attn
    return entered(layer, lambda: _layer(layer, x, lambda h: attention_step(mha, h, cache, pos), memory,
                                         memory_key_padding_mask))


def stack_prefill(stack, x, max_len, memory=None, memory_key_padding_mask=None):
    """Every layer of ``stack`` (TransformerEncoder/Decoder), then its ``norm``: (y, [cache per layer])."""
    def run():
        h, caches = x, []
        for layer in stack.layers:
            h, c = layer_prefill(layer, h, max_len, memory, memory_key_padding_mask)
            caches.append(c)
        return (stack.norm(h) if stack.norm is not None else h), caches
    return entered(stack, run)


def stack_step(stack, x, caches, pos, memory=None, memory_key_padding_mask=None):
    """One new position through every layer of ``stack``: (y, new caches)."""
    if not isinstance(caches, (list, tuple)) or len(caches) != len(stack.layers):
        raise ShapeError(f"{type(stack).__name__}.step: the cache must hold one (k, v) pair per layer "
                         f"({len(stack.layers)}), got {type(caches).__name__} of {len(caches) if hasattr(caches, '__len__') else '?'}")

    def run():
        h, new = x, []
        for layer, c in zip(stack.layers, caches):
            h, c = layer_step(layer, h, c, pos, memory, memory_key_padding_mask)
            new.append(c)
        return (stack.norm(h) if stack.norm is not None else h), new
    return entered(stack, run)
