"""Scaled-dot-product attention spelled out → ``attention(q, k, v, mask?)``.

Matches ``softmax(mask(scale(q @ kt))) @ v`` with rank-4 ``q``/``kt``/``v`` (B, H, S, D); ``k`` is
``kt`` with its last two axes swapped (a transpose producing ``kt`` is undone, composed with any
permutation before it, so ``heads(k).transpose(-2, -1)`` gives ``k = heads(k)``); the scale a
constant multiplier or divisor (or applied to ``q`` as ``q * c`` or ``q / c``, or absent: scale 1),
and the optional mask either ``where(mask, s, -inf)`` (a fill of -inf or below -1e4;
``where(mask, -inf, s)`` inverts it, and ``simplify`` then cancels the ``~~mask`` that
``where(~mask, -inf, s)`` leaves) or ``s + m`` with a constant ``m`` of zeros and -inf/large negatives. A constant
lower-triangular square mask becomes ``causal=True``. A scale equal to 1/sqrt(D) is written
``scale=None`` (the op's default)."""
from __future__ import annotations

import math

import numpy as np

from graphforge import ops
from graphforge.trace.tensor import apply

from ..pattern import AnyOf, Const, Op, Rule, Var, constant_of

__all__ = ["RULE"]

Q, V = Var("q", rank=4), Var("v", rank=4)
# k^T, produced by a transpose; k is recovered from it (see _key)
_KT = Var("kt", rank=4, where=lambda v: v.producer is not None and v.producer.op == "transpose")
_QK = AnyOf(Op("matmul", Op("mul", Q, Const(name="qscale")), _KT),
            Op("matmul", Op("div", Q, Const(name="qdiv")), _KT),
            Op("matmul", Q, _KT))
_SCALED = AnyOf(Op("mul", _QK, Const(name="scale")), Op("div", _QK, Const(name="inv_scale")), _QK)
_FILL = Const(name="fill", where=lambda c: c <= -1e4)
_MASKED = AnyOf(
    Op("where", Var("mask", dtype="bool"), _SCALED, _FILL),
    Op("where", Var("nmask", dtype="bool"), _FILL, _SCALED),
    Op("add", _SCALED, Var("amask", where=lambda v: v.type.dtype.startswith("float"))),
    _SCALED,
)
_PATTERN = Op("matmul", Op("softmax", _MASKED, attrs={"axis": lambda a: a % 4 == 3}, name="sm"), V)


def _inverse(c: float) -> float:
    return 1.0 / c if c else float("inf")


def _scale(m) -> float:
    """The product of every factor the match found: on ``q`` (``q * c``, ``q / c``) and on the
    scores (``s * c``, ``s / c``); 1 when there is none. A division by 0 gives inf (refused)."""
    s = 1.0
    if "qscale" in m:
        s *= m["qscale"]
    if "qdiv" in m:
        s *= _inverse(m["qdiv"])
    if "scale" in m:
        s *= m["scale"]
    if "inv_scale" in m:
        s *= _inverse(m["inv_scale"])
    return s


def _additive_mask(m):
    """The bool mask (True = attend) of a constant additive mask, or None."""
    array = constant_of(m, m["amask"])
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float64)
    attend = array == 0
    if not np.all(attend | (array <= -1e4)):
        return None
    return attend


def _check(m) -> bool:
    if "amask" in m and _additive_mask(m) is None:
        return False
    s = _scale(m)
    return math.isfinite(s) and s != 0


def _causal(mask: np.ndarray, sq, sk) -> bool:
    if not (isinstance(sq, int) and sq == sk) or mask.ndim < 2 or any(d != 1 for d in mask.shape[:-2]):
        return False
    if mask.shape[-2:] != (sq, sk):
        return False
    return bool(np.array_equal(mask.reshape(sq, sk), np.tril(np.ones((sq, sk), dtype=bool))))


def _key(m, rw):
    """``k`` from ``k^T``: undo the transpose that produced it (composing with any permutation
    before it — simplify may have merged ``heads(k).transpose(-2, -1)`` into one transpose)."""
    kt = m["kt"]
    node = kt.producer
    perm = node.attrs.get("perm")
    perm = [3, 2, 1, 0] if perm is None else [p % 4 for p in perm]
    perm = perm[:2] + [perm[3], perm[2]]
    src = node.inputs[0]
    return rw.t(src) if perm == [0, 1, 2, 3] else ops.transpose(rw.t(src), perm)


def _build(m, rw):
    q, v = m["q"], m["v"]
    k = _key(m, rw).value
    scale = _scale(m)
    depth = q.type.shape[-1]
    attrs = {"scale": scale, "causal": False}
    if isinstance(depth, int) and math.isclose(scale, 1 / math.sqrt(depth), rel_tol=1e-6):
        attrs["scale"] = None
    args = [rw.t(q), rw.t(k), rw.t(v)]
    mask = None
    sq, sk = q.type.shape[-2], k.type.shape[-2]
    if "amask" in m:
        mask = _additive_mask(m)
    elif "mask" in m or "nmask" in m:
        mv = m.get("mask") or m.get("nmask")
        const = constant_of(m, mv)
        if const is not None:
            mask = np.asarray(const, dtype=bool) if "mask" in m else ~np.asarray(const, dtype=bool)
        else:
            t = rw.t(mv)
            args.append(t if "mask" in m else ops.logical_not(t))
    if mask is not None:
        if _causal(mask, sq, sk):
            attrs["causal"] = True
        elif not mask.all():
            args.append(ops.constant(mask))
    return apply("attention", *args, **attrs)


RULE = Rule("attention", _PATTERN, _build, check=_check, requires=("attention",), doc=__doc__)
