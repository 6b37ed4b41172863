"""Softmax spelled out → ``softmax``: ``exp(x - max(x)) / sum(exp(x - max(x)))`` (max and sum
over the same single axis, with kept dims), also as ``e * (1 / sum(e))`` or ``e * reciprocal(sum(e))``,
and the unguarded ``exp(x) / sum(exp(x))``.

The unguarded form is fused on purpose: it overflows to inf/NaN once ``x`` exceeds ~88 (float32),
where ``softmax`` (max-subtracted in every back end) gives the exact answer, and equals it wherever
it is finite. Fusing it is a numerical improvement and what the author meant (PyTorch users write it
for ``softmax``); a graph that relied on the overflow to produce NaN is not a use worth keeping.
The fused op's axis is the negative spelling (``simplify`` writes ``softmax(x, 1)`` the same way)."""
from __future__ import annotations

from graphforge import ops

from ..pattern import AnyOf, Const, Op, Rule, Var
from ._common import neg_axis

__all__ = ["RULE"]

X = Var("x")
_KEEP = {"keepdims": True, "axes": lambda a: a is not None and len(a) == 1}
_EXP = Op("exp", AnyOf(Op("sub", X, Op("max", X, attrs=_KEEP, name="max")), X), name="exp")
_SUM = Op("sum", _EXP, attrs=_KEEP, name="sum")
_PATTERN = [
    Op("div", _EXP, _SUM),
    Op("mul", _EXP, AnyOf(Op("reciprocal", _SUM), Op("div", Const(1.0), _SUM))),
]


def _axis(node, rank) -> int:
    return node.attrs["axes"][0] % rank


def _check(m) -> bool:
    rank = m["x"].type.rank
    if rank == 0 or m.root.outputs[0].type != m["x"].type:
        return False
    axis = _axis(m["sum"], rank)
    return "max" not in m or _axis(m["max"], rank) == axis


def _build(m, rw):
    rank = m["x"].type.rank
    return ops.softmax(rw.t(m["x"]), neg_axis(_axis(m["sum"], rank), rank))


RULE = Rule("softmax", _PATTERN, _build, check=_check, requires=("softmax",), doc=__doc__)
