"""attention: scaled dot-product attention on (B, H, S, D) tensors, a composite op with a
decomposition into matmul / softmax / where; its public functions ``attention`` and
``scaled_dot_product_attention`` (PyTorch's spelling)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, ShapeError, UnsupportedOpError
from ..ir.dims import is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._nn_common import F32, F64, _fmt
from ._shapes import broadcast_shapes, require_float, same_dtype
from .common import compute_dtype
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import (creation as _creation, elementwise as _elementwise, linalg as _linalg,
               reduction as _reduction, shape_ops as _shape_ops)

__all__ = ["attention", "scaled_dot_product_attention"]


# ---- attention ------------------------------------------------------------------------------

def _attention_rule(ts, attrs):
    q, k, v = ts[:3]
    require_float(q, "attention's q")
    same_dtype(ts[:3], "attention's q, k and v")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.rank != 4:
            raise ShapeError(f"attention: {name} must be (batch, heads, seq, dim), got {_fmt(t)}",
                             hint="split heads with x.reshape(B, S, H, D).transpose(0, 2, 1, 3)")
    if q.shape[:2] != k.shape[:2] or q.shape[:2] != v.shape[:2]:
        raise ShapeError(f"attention: q, k, v must share (batch, heads), got {_fmt(q)}, {_fmt(k)}, {_fmt(v)}")
    if q.shape[3] != k.shape[3]:
        raise ShapeError(f"attention: q and k head dims differ: {_fmt(q)} vs {_fmt(k)}")
    if k.shape[2] != v.shape[2]:
        raise ShapeError(f"attention: k and v sequence lengths differ: {_fmt(k)} vs {_fmt(v)}")
    scores = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if len(ts) == 4:
        mask = ts[3]
        if mask.dtype != "bool":
            raise DTypeError(f"attention: the mask must be bool (True = attend), got {_fmt(mask)}",
                             hint="compare first, e.g. mask = lengths_mask > 0")
        if mask.rank > 4:
            raise ShapeError(f"attention: the mask {_fmt(mask)} has rank > 4")
        try:
            ok = broadcast_shapes(mask.shape, scores) == scores
        except ShapeError:
            ok = False
        if not ok:
            raise ShapeError(f"attention: the mask {_fmt(mask)} does not broadcast to the scores "
                             f"({', '.join(map(str, scores))})")
    return [TensorType(q.shape[:3] + (v.shape[3],), q.dtype)]


def _attention_ref(xs, attrs, env=None):
    q = xs[0]
    cd = compute_dtype(q)
    qc, kc, vc = (a.astype(cd) for a in xs[:3])
    scale = attrs["scale"] if attrs["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    s = np.matmul(qc, np.swapaxes(kc, -1, -2)) * cd.type(scale)
    if attrs["causal"]:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    if len(xs) > 3:
        s = np.where(xs[3], s, -np.inf)
    with np.errstate(all="ignore"):
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
    return [np.matmul(p, vc).astype(q.dtype)]


def _causal_mask(sq, sk):
    """True where key ``j <= query i`` (top-left aligned, like ``np.tril``): a constant for static
    sizes, else computed from ``arange`` over the symbolic lengths (so the decomposition and the
    VJP of a causal attention work at any sequence length, e.g. in a trained decoder-only LM)."""
    if is_static(sq) and is_static(sk):
        return _creation.constant(np.tril(np.ones((sq, sk), dtype=bool)))
    i = _shape_ops.unsqueeze(_creation.arange(sq), 1)
    j = _shape_ops.unsqueeze(_creation.arange(sk), 0)
    return _elementwise.greater_equal(i, j)


def _scaled(t, q, attrs):
    """``t`` times the attention scale: ``attrs["scale"]``, else 1/√(head dim) (at run time when
    the head dim is symbolic)."""
    if attrs["scale"] is not None:
        return t * attrs["scale"]
    if is_static(q.shape[3]):
        return t * (1.0 / math.sqrt(q.shape[3]))
    return t * _elementwise.rsqrt(_shape_ops.dim_size(q, [3], q.dtype))


def _attention_probs(q, k, attrs, mask):
    s = _scaled(_linalg.matmul(q, _shape_ops.transpose(k, [0, 1, 3, 2])), q, attrs)
    if attrs["causal"]:
        s = _elementwise.where(_causal_mask(q.shape[2], k.shape[2]), s, -math.inf)
    if mask is not None:
        s = _elementwise.where(mask, s, -math.inf)
    return _reduction.softmax(s, -1)


def _attention_decompose(inputs, attrs):
    q, k, v = inputs[:3]
    p = _attention_probs(q, k, attrs, inputs[3] if len(inputs) > 3 else None)
    return [_linalg.matmul(p, v)]


def _attention_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    q, k, v = inputs[:3]
    p = _attention_probs(q, k, attrs, inputs[3] if len(inputs) > 3 else None)
    swap = [0, 1, 3, 2]
    gv = _linalg.matmul(_shape_ops.transpose(p, swap), g)
    gp = _linalg.matmul(g, _shape_ops.transpose(v, swap))
    gs = _scaled(p * (gp - _reduction.sum(gp * p, -1, keepdims=True)), q, attrs)
    gq = _linalg.matmul(gs, k)
    gk = _linalg.matmul(_shape_ops.transpose(gs, swap), q)
    return [gq, gk, gv] + ([None] if len(inputs) > 3 else [])


def _attention_flops(ins, outs, attrs):
    q, k, v = ins[:3]
    b, h, sq, d = (int(s) for s in q.shape)
    sk, dv = int(k.shape[2]), int(v.shape[3])
    return b * h * (2 * sq * sk * d + 5 * sq * sk + 2 * sq * sk * dv)


def _qkv(b, h, sq, sk, d, dv, dt):
    return [TensorType((b, h, sq, d), dt), TensorType((b, h, sk, d), dt), TensorType((b, h, sk, dv), dt)]


_PAD_MASK = np.array([[True, True, True, False], [True, True, False, False]]).reshape(2, 1, 1, 4)

register_op(OpDef(
    name="attention", family="nn", num_inputs=(3, 4),
    attrs={"scale": Attr("float", None, optional=True), "causal": Attr("bool", False)},
    type_rule=_attention_rule, reference=_attention_ref, flops=_attention_flops, vjp=_attention_vjp,
    decompose=_attention_decompose, nondiff_inputs=(3,),
    doc="softmax(q @ k^T * scale, masked with -inf where mask is False / above the diagonal if causal) @ v; "
        "q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv); scale None = 1/sqrt(D).",
    samples=[
        Sample(_qkv(2, 2, 3, 4, 4, 5, F32)),
        Sample(_qkv("batch", 2, 3, 3, 4, 4, F32), attrs={"causal": True}, bind={"batch": 2},
               note="causal, symbolic batch"),
        Sample(_qkv(2, 1, 3, 4, 2, 3, F64) + [TensorType((2, 1, 1, 4), "bool")], attrs={"scale": 0.7},
               domain=["any", "any", "any", _PAD_MASK], note="key padding mask, explicit scale"),
        Sample(_qkv("batch", 2, "seq", "seq", 4, 4, F64) + [TensorType(("seq", "seq"), "bool")],
               bind={"batch": 1, "seq": 3}, domain=["any", "any", "any", np.eye(3, dtype=bool)],
               note="symbolic seq, rank-2 mask"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def attention(q, k, v, mask=None, scale: float | None = None, causal: bool = False):
    """Scaled dot-product attention on (B, H, S, D) tensors (rank-3 (B, S, D) means one head);
    ``mask`` is bool, True = attend, broadcastable to (B, H, Sq, Sk).

    Args:
        q: the queries.
        k: the keys.
        v: the values.
        mask: see above.
        scale: None: ``1/sqrt(D)``.
        causal: mask out future positions.
    """

    if q.ndim == 3 and k.ndim == 3 and v.ndim == 3:
        if mask is not None and mask.ndim == 3:
            mask = _shape_ops.unsqueeze(mask, 1)
        out = attention(_shape_ops.unsqueeze(q, 1), _shape_ops.unsqueeze(k, 1), _shape_ops.unsqueeze(v, 1), mask, scale, causal)
        return _shape_ops.squeeze(out, 1)
    args = (q, k, v) if mask is None else (q, k, v, mask)
    return apply("attention", *args, scale=None if scale is None else float(scale), causal=causal)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None):
    """PyTorch's spelling of :func:`attention` (a bool ``attn_mask``, True = attend).

    Args:
        query: the queries.
        key: the keys.
        value: the values.
        attn_mask: see above.
        dropout_p: attention dropout (0 outside training).
        is_causal: mask out future positions.
        scale: None: ``1/sqrt(D)``.
    """
    if dropout_p:
        raise UnsupportedOpError("scaled_dot_product_attention: dropout_p > 0 is not supported by the fused op",
                                 ops=["attention"], hint="apply gf.dropout to the attention weights computed "
                                 "explicitly, or use nn.MultiheadAttention(dropout=p) in training mode")
    return attention(query, key, value, attn_mask, scale, is_causal)
