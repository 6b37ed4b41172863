"""``log(softmax(x))`` → ``log_softmax(x)``; also the spelled-out
``(x - max(x)) - log(sum(exp(x - max(x))))``, its log-sum-exp grouping
``x - (max(x) + log(sum(exp(x - max(x)))))``, and the unguarded ``x - log(sum(exp(x)))`` (fused for
the reason ``softmax`` fuses ``exp(x) / sum(exp(x))``: the op is max-subtracted, so it is exact where
the spelling overflows, and equal elsewhere). Max and sum must be over the same axis."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Op, Rule, Var
from ._common import neg_axis

__all__ = ["RULE"]

X = Var("x")
_KEEP = {"keepdims": True, "axes": lambda a: a is not None and len(a) == 1}
_SHIFTED = Op("sub", X, Op("max", X, attrs=_KEEP, name="max"), name="shifted")
_MAX = Op("max", X, attrs=_KEEP, name="max")
_LSE_SHIFTED = Op("log", Op("sum", Op("exp", _SHIFTED), attrs=_KEEP, name="sum"))
_PATTERNS = [
    Op("log", Op("softmax", X, name="softmax")),
    Op("sub", _SHIFTED, _LSE_SHIFTED),
    Op("sub", X, Op("add", _MAX, _LSE_SHIFTED)),
    Op("sub", X, Op("log", Op("sum", Op("exp", X), attrs=_KEEP, name="sum"))),
]


def _check(m) -> bool:
    rank = m["x"].type.rank
    if rank == 0 or m.root.outputs[0].type != m["x"].type:
        return False
    if "max" in m:
        return m["sum"].attrs["axes"][0] % rank == m["max"].attrs["axes"][0] % rank
    return True


def _build(m, rw):
    rank = m["x"].type.rank
    axis = m["softmax"].attrs.get("axis", -1) if "softmax" in m else m["sum"].attrs["axes"][0]
    return ops.log_softmax(rw.t(m["x"]), neg_axis(axis, rank))


RULE = Rule("log_softmax", _PATTERNS, _build, check=_check, requires=("log_softmax",), doc=__doc__)
