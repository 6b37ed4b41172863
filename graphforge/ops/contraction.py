"""Tensor contraction — ``einsum``: Einstein summation over any number of operands, as one registry op.

The op's ``equation`` attribute is always the canonical explicit form (``"bij,bjk->bik"``: one
lower/upper-case letter per axis, an explicit ``->``, no ellipsis); :func:`canonical_equation`
turns NumPy/ONNX spellings (implicit output, ``...``) into it from the operand ranks, so every pass
and back end sees one spelling. Letters of equal name must have equal sizes (no broadcasting of
size-1 axes, the ONNX rule for explicit letters).

Contraction order: for more than two operands :func:`contraction_path` picks the pairwise order
greedily (the pair whose result is smallest first, symbolic dims counted as 64); the back ends
contract pair by pair along it — JAX with ``lax.dot_general``, ONNX with ``MatMul`` where a pair is
a plain (batched) matrix product and ``Einsum`` otherwise — so no step builds the full outer
product. The VJP of operand ``i`` is again an einsum: the cotangent with the other operands
(repeated letters of operand ``i``, a diagonal, get an identity factor; letters only operand ``i``
sums get a ones factor).
"""
from __future__ import annotations

import string

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError, UnsupportedOpError
from ..ir.dims import is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from .common import compute_dtype, numel
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, shape_ops as _shape_ops

__all__ = ["einsum", "canonical_equation", "split_equation", "contraction_path"]

_LETTERS = string.ascii_letters


def split_equation(equation: str) -> tuple[list[str], str]:
    """``"ab,bc->ac"`` -> ``(["ab", "bc"], "ac")`` (canonical equations only)."""
    lhs, out = equation.split("->")
    return lhs.split(","), out


def canonical_equation(equation: str, ranks) -> str:
    """The explicit, ellipsis-free form of a NumPy/ONNX einsum ``equation`` for operands of ``ranks``."""
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->")
        explicit = True
    else:
        lhs, out, explicit = eq, "", False
    subs = lhs.split(",")
    if len(subs) != len(ranks):
        raise ShapeError(f"einsum: the equation {equation!r} names {len(subs)} operands, got {len(ranks)}")
    bad = sorted(set(c for c in lhs + out if c not in _LETTERS + ".,"))
    if bad:
        raise ShapeError(f"einsum: the equation {equation!r} has characters {bad} that are not axis letters")
    free = [c for c in _LETTERS if c not in eq]
    ell_rank = 0
    for s, r in zip(subs, ranks):
        if "..." in s:
            ell_rank = max(ell_rank, r - (len(s) - 3))
    ell = "".join(free[:ell_rank])
    out_subs = []
    for s, r in zip(subs, ranks):
        if "..." in s:
            k = r - (len(s) - 3)
            if k < 0:
                raise ShapeError(f"einsum: operand subscripts {s!r} name more axes than its rank {r}")
            s = s.replace("...", ell[ell_rank - k:])  # ellipsis axes align from the right
        if len(s) != r:
            raise ShapeError(f"einsum: operand subscripts {s!r} of {equation!r} do not match its rank {r}")
        out_subs.append(s)
    if explicit:
        out = out.replace("...", ell)
    else:
        letters = "".join(out_subs)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    return ",".join(out_subs) + "->" + out


def _sizes(subs, types, equation):
    sizes: dict[str, object] = {}
    for s, t in zip(subs, types):
        for c, d in zip(s, t.shape):
            if c in sizes and sizes[c] != d:
                raise ShapeError(f"einsum {equation!r}: axis {c!r} has size {sizes[c]} in one operand and {d} in "
                                 f"another", hint="letters of the same name must have equal sizes")
            sizes.setdefault(c, d)
    return sizes


def _einsum_rule(ts, attrs):
    eq = attrs["equation"]
    if "->" not in eq or "." in eq:
        raise ShapeError(f"einsum: the equation attribute must be canonical (explicit '->', no '...'), got {eq!r}",
                         hint="build it with gf.einsum, which canonicalises NumPy spellings")
    subs, out = split_equation(eq)
    if len(subs) != len(ts):
        raise ShapeError(f"einsum {eq!r} names {len(subs)} operands, got {len(ts)}")
    for s, t in zip(subs, ts):
        if len(s) != t.rank:
            raise ShapeError(f"einsum {eq!r}: subscripts {s!r} do not match operand {t}")
    dtype = ts[0].dtype
    if any(t.dtype != dtype for t in ts) or dtype == "bool":
        raise DTypeError(f"einsum {eq!r}: operands must share one numeric dtype, got {', '.join(str(t) for t in ts)}")
    sizes = _sizes(subs, ts, eq)
    if len(set(out)) != len(out) or any(c not in sizes for c in out):
        raise ShapeError(f"einsum {eq!r}: every output letter must appear once, and in an operand")
    return [TensorType(tuple(sizes[c] for c in out), dtype)]


def _einsum_ref(xs, attrs, env=None):
    cd = compute_dtype(xs[0])
    y = np.einsum(attrs["equation"], *[x.astype(cd) for x in xs], optimize=len(xs) > 2)
    return [np.asarray(y).astype(xs[0].dtype)]


def contraction_path(subs, out, shapes, unknown=64) -> list[tuple[int, int, str]]:
    """Greedy pairwise order: ``[(i, j, result_subscripts)]`` over a list where each step removes
    operands ``i < j`` and appends their contraction (letters still needed later or in ``out``)."""
    size = {}
    for s, shp in zip(subs, shapes):
        for c, d in zip(s, shp):
            size[c] = d if is_static(d) else unknown
    work = list(subs)
    steps = []
    while len(work) > 1:
        best = None
        for i in range(len(work)):
            for j in range(i + 1, len(work)):
                rest = "".join(work[k] for k in range(len(work)) if k not in (i, j)) + out
                keep = "".join(dict.fromkeys(c for c in work[i] + work[j] if c in rest))
                cost = int(np.prod([size[c] for c in keep], dtype=np.float64))
                if best is None or cost < best[0]:
                    best = (cost, i, j, keep)
        _, i, j, keep = best
        steps.append((i, j, keep))
        work = [w for k, w in enumerate(work) if k not in (i, j)] + [keep]
    return steps


def _eye(n, dtype):
    if not is_static(n):
        raise UnsupportedOpError(f"einsum's gradient through a repeated letter (a diagonal) needs a static size, "
                                 f"got {n}", ops=["einsum"])
    return _creation.constant(np.eye(int(n)), dtype)


def _einsum_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    subs, out = split_equation(attrs["equation"])
    sizes = {}
    for s, x in zip(subs, inputs):
        for c, d in zip(s, x.shape):
            sizes.setdefault(c, d)
    used = set("".join(subs) + out)
    fresh = iter(c for c in _LETTERS if c not in used)
    grads = []
    for i, x in enumerate(inputs):
        ops_, ins = [out], [g]
        for j, y in enumerate(inputs):
            if j != i:
                ops_.append(subs[j])
                ins.append(y)
        have = set("".join(ops_))
        target, seen = "", set()
        for c in subs[i]:
            if c in seen:  # a repeated letter: the gradient lives on the diagonal
                d = next(fresh)
                ops_.append(c + d)
                ins.append(_eye(sizes[c], x.dtype))
                target += d
            else:
                seen.add(c)
                target += c
        missing = "".join(c for c in dict.fromkeys(subs[i]) if c not in have)
        if missing:  # axes only operand i sums over: its gradient is constant along them
            ones = _shape_ops.broadcast_to(_creation.constant(np.ones(()), x.dtype), [sizes[c] for c in missing])
            ops_.append(missing)
            ins.append(ones)
        grads.append(apply("einsum", *ins, equation=",".join(ops_) + "->" + target))
    return grads


def _einsum_flops(ins, outs, attrs):
    """2 * the index space of every pairwise step along the contraction path (a single operand: its size)."""
    subs, out = split_equation(attrs["equation"])
    sizes = {c: int(d) for s, t in zip(subs, ins) for c, d in zip(s, t.shape)}
    work, total = list(subs), 0
    for i, j, keep in contraction_path(subs, out, [t.shape for t in ins]):
        total += 2 * int(np.prod([sizes[c] for c in set(work[i] + work[j])], dtype=np.int64))
        work = [w for k, w in enumerate(work) if k not in (i, j)] + [keep]
    return max(total, numel(ins[0]) if len(ins) == 1 else 0, numel(outs[0]))


F32, F64 = "float32", "float64"

register_op(OpDef(
    name="einsum", family="linalg", num_inputs=(1, None), attrs={"equation": Attr("str")},
    type_rule=_einsum_rule, reference=_einsum_ref, flops=_einsum_flops, vjp=_einsum_vjp,
    doc="Einstein summation; equation canonical (explicit '->', no ellipsis; gf.einsum canonicalises). "
        "Pairwise contraction in a greedy order on the back ends.",
    samples=[
        Sample([TensorType(("batch", 3, 4), F32), TensorType(("batch", 4, 5), F32)],
               attrs={"equation": "bij,bjk->bik"}, bind={"batch": 2}, note="batched matmul, symbolic batch"),
        Sample([TensorType((3, 4), F64), TensorType((4, 5), F64), TensorType((5, 2), F64)],
               attrs={"equation": "ij,jk,kl->il"}, note="a chain of three: greedy contraction order"),
        Sample([TensorType((2, 3, 3), F64)], attrs={"equation": "bii->bi"}, note="batch diagonal"),
        Sample([TensorType((3, 4), F32)], attrs={"equation": "ij->ji"}, note="transpose"),
        Sample([TensorType((4,), F64), TensorType((4,), F64)], attrs={"equation": "i,i->"}, note="inner product"),
        Sample([TensorType((2, 3), F32), TensorType((3, 4, 2), F32)], attrs={"equation": "ab,bcd->acd"},
               note="contraction with a free trailing axis"),
        Sample([TensorType((3, 2), F64), TensorType((2, 4), F64)], attrs={"equation": "ij,jk->i"},
               note="a letter summed by one operand alone"),
        Sample([TensorType((2, 3), "int64"), TensorType((3,), "int64")], attrs={"equation": "ij,j->i"},
               domain=["int:-5:5", "int:-5:5"], grad=False, note="integers"),
    ],
))


def einsum(equation: str, *operands):
    """NumPy's ``einsum(equation, *operands)`` (implicit output and ``...`` allowed); also
    ``einsum(equation, [a, b])``."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ranks = [len(getattr(o, "shape", np.shape(o))) for o in operands]
    return apply("einsum", *operands, equation=canonical_equation(equation, ranks))
