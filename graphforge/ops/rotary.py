"""Rotary position embedding as one op: ``rotary_embedding`` (ONNX RotaryEmbedding, opset 23).

``rotary_embedding(x, cos_cache, sin_cache, position_ids?)``: ``x`` is ``(B, H, S, D)`` or ``(B, S, H * D)``
(then ``num_heads`` says ``H``); with ``position_ids`` ``(B, S)`` the caches are tables ``(P, R / 2)``
indexed by position, without it they are ``(B, S, R / 2)`` already. The first ``R`` =
``rotary_embedding_dim`` (0: all ``D``) features of each head are rotated pairwise — halves
``(x[:R/2], x[R/2:R])`` or, ``interleaved``, neighbours ``(x[0::2], x[1::2])`` — by the angle whose
cos/sin the caches hold; the rest pass through. ``B`` and ``S`` may be symbolic; ``D`` is static.

A composite (slices, gathers, products, a concat), so it runs everywhere and its VJP is the
decomposition's; the ONNX export emits one RotaryEmbedding node at opset 23+ (float32).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._decomp_vjp import vjp_from_decomposition
from ._shapes import require_float
from .common import compute_dtype
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _ew
from . import shape_ops as _shape_ops

__all__ = ["rotary_embedding"]


def _dims(x: TensorType, attrs) -> tuple[int, int, int]:
    """(heads, head size, rotated size R) of ``x``; ShapeError when they do not fit."""
    if x.rank == 4:
        heads, head = x.shape[1], x.shape[3]
    elif x.rank == 3:
        heads = int(attrs["num_heads"])
        if heads < 1 or not is_static(x.shape[2]) or int(x.shape[2]) % heads:
            raise ShapeError(f"rotary_embedding: a 3-D input (B, S, hidden) needs num_heads >= 1 dividing a static "
                             f"hidden size, got {x} with num_heads={heads}")
        head = int(x.shape[2]) // heads
    else:
        raise ShapeError(f"rotary_embedding: the input must be (B, H, S, D) or (B, S, H*D), got {x}")
    if not is_static(head):
        raise ShapeError(f"rotary_embedding: the head size must be static, got {x}")
    rot = int(attrs["rotary_embedding_dim"]) or int(head)
    if rot % 2 or rot > int(head):
        raise ShapeError(f"rotary_embedding: rotary_embedding_dim {rot} must be even and <= the head size {head}")
    return heads, int(head), rot


def _rotary_rule(ts, attrs):
    x, cos, sin = ts[:3]
    for t, what in ((x, "input"), (cos, "cos_cache"), (sin, "sin_cache")):
        require_float(t, f"rotary_embedding's {what}")
    _, _, rot = _dims(x, attrs)
    batch, seq = x.shape[0], (x.shape[2] if x.rank == 4 else x.shape[1])
    if cos.shape != sin.shape:
        raise ShapeError(f"rotary_embedding: cos_cache {cos} and sin_cache {sin} differ")
    if len(ts) > 3:
        pos = ts[3]
        if pos.dtype not in ("int64", "int32") or pos.rank != 2 or tuple(pos.shape) != (batch, seq):
            raise ShapeError(f"rotary_embedding: position_ids must be int64 ({batch}, {seq}), got {pos}")
        if cos.rank != 2 or cos.shape[1] != rot // 2:
            raise ShapeError(f"rotary_embedding: with position_ids the caches are (max_position, {rot // 2}), got {cos}")
    elif cos.rank != 3 or tuple(cos.shape) != (batch, seq, rot // 2):
        raise ShapeError(f"rotary_embedding: without position_ids the caches are ({batch}, {seq}, {rot // 2}), got {cos}")
    return [TensorType(x.shape, x.dtype)]


def _rotary_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    xv, cos, sin = (a.astype(cd) for a in xs[:3])
    if len(xs) > 3:
        cos, sin = cos[xs[3]], sin[xs[3]]  # (B, S, R/2)
    heads, head, rot = _dims(TensorType(x.shape, "float32"), attrs)
    h = np.transpose(xv, (0, 2, 1, 3)) if x.ndim == 4 else xv.reshape(x.shape[0], x.shape[1], heads, head)
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    part, rest = h[..., :rot], h[..., rot:]
    if attrs["interleaved"]:
        x1, x2 = part[..., 0::2], part[..., 1::2]
        rotated = np.stack([c * x1 - s * x2, s * x1 + c * x2], axis=-1).reshape(part.shape)
    else:
        x1, x2 = part[..., :rot // 2], part[..., rot // 2:]
        rotated = np.concatenate([c * x1 - s * x2, s * x1 + c * x2], axis=-1)
    out = np.concatenate([rotated, rest], axis=-1)
    out = np.transpose(out, (0, 2, 1, 3)) if x.ndim == 4 else out.reshape(x.shape)
    return [out.astype(x.dtype)]


def _last(t, lo, hi, step=1):
    return _shape_ops.slice(t, [lo], [hi], [t.ndim - 1], [step])


def _rotary_decompose(inputs, attrs):
    x, cos, sin = inputs[:3]
    half = x.dtype in ("float16", "bfloat16")
    if half:
        x, cos, sin = (_ew.cast(t, "float32") for t in (x, cos, sin))
    if len(inputs) > 3:
        cos = _shape_ops.gather(cos, inputs[3], axis=0)
        sin = _shape_ops.gather(sin, inputs[3], axis=0)
    heads, head, rot = _dims(inputs[0].type, attrs)
    if x.ndim == 4:  # (B, H, S, D): the caches broadcast over heads
        h, c, s = x, _shape_ops.unsqueeze(cos, [1]), _shape_ops.unsqueeze(sin, [1])
    else:  # (B, S, H*D) -> (B, S, H, D)
        shape = list(x.type.shape)
        h = _shape_ops.reshape(x, [shape[0], shape[1], heads, head])
        c, s = _shape_ops.unsqueeze(cos, [2]), _shape_ops.unsqueeze(sin, [2])
    part = _last(h, 0, rot) if rot < head else h
    if attrs["interleaved"]:
        x1, x2 = _last(part, 0, rot, 2), _last(part, 1, rot, 2)
        pair = _shape_ops.stack([c * x1 - s * x2, s * x1 + c * x2], axis=-1)
        rotated = _shape_ops.reshape(pair, list(part.type.shape))
    else:
        x1, x2 = _last(part, 0, rot // 2), _last(part, rot // 2, rot)
        rotated = _shape_ops.concat([c * x1 - s * x2, s * x1 + c * x2], axis=-1)
    out = _shape_ops.concat([rotated, _last(h, rot, head)], axis=-1) if rot < head else rotated
    if x.ndim == 3:
        out = _shape_ops.reshape(out, list(x.type.shape))
    return [_ew.cast(out, inputs[0].dtype) if half else out]


_ANGLES = np.linspace(0.0, 3.0, 16 * 2).reshape(16, 2)
_COS, _SIN = np.cos(_ANGLES).astype(np.float32), np.sin(_ANGLES).astype(np.float32)


def _t(shape, dt="float32"):
    return TensorType(shape, dt)


register_op(OpDef(
    name="rotary_embedding", family="nn", num_inputs=(3, 4),
    attrs={"interleaved": Attr("bool", False), "rotary_embedding_dim": Attr("int", 0), "num_heads": Attr("int", 0)},
    type_rule=_rotary_rule, reference=_rotary_ref, decompose=_rotary_decompose, nondiff_inputs=(3,),
    flops=lambda i, o, a: 6 * int(np.prod([int(d) for d in o[0].shape])),
    vjp=vjp_from_decomposition(_rotary_decompose),
    doc="Rotate feature pairs of x (B, H, S, D) or (B, S, H*D) by the angles whose cos/sin the caches hold, "
        "indexed by position_ids (ONNX RotaryEmbedding).",
    samples=[
        Sample([_t((2, 2, 3, 4)), _t((16, 2)), _t((16, 2)), _t((2, 3), "int64")],
               domain=["any", _COS, _SIN, np.array([[0, 1, 2], [5, 6, 7]])]),
        Sample([_t(("batch", "seq", 8)), _t(("batch", "seq", 1)), _t(("batch", "seq", 1))],
               attrs={"num_heads": 2, "interleaved": True, "rotary_embedding_dim": 2},
               bind={"batch": 2, "seq": 3}, note="3-D input, symbolic batch/seq, interleaved, partial rotation"),
        Sample([_t((1, 2, 2, 6), "float64"), _t((16, 2), "float64"), _t((16, 2), "float64"), _t((1, 2), "int64")],
               attrs={"rotary_embedding_dim": 4}, domain=["any", _COS.astype(np.float64), _SIN.astype(np.float64),
                                                          np.array([[3, 9]])], note="partial rotation, float64"),
    ],
))


def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, interleaved: bool = False,
                     rotary_embedding_dim: int = 0, num_heads: int = 0):
    """Rotary position embedding (ONNX RotaryEmbedding).

    Args:
        x: ``(B, H, S, D)``, or ``(B, S, H * D)`` with ``num_heads``.
        cos_cache: ``(max_position, R / 2)`` with ``position_ids``, else ``(B, S, R / 2)``.
        sin_cache: like ``cos_cache``.
        position_ids: optional ``(B, S)`` int64 positions.
        interleaved: rotate neighbouring features (x0, x1), (x2, x3)... instead of the two halves.
        rotary_embedding_dim: ``R``, the rotated features per head (0 = all).
        num_heads: ``H`` for a 3-D ``x``.

    Returns:
        A tensor shaped like ``x``.
    """
    ins = [x, cos_cache, sin_cache] + ([position_ids] if position_ids is not None else [])
    return apply("rotary_embedding", *ins, interleaved=bool(interleaved),
                 rotary_embedding_dim=int(rotary_embedding_dim), num_heads=int(num_heads))
