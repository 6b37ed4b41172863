"""The logistic function spelled out → ``sigmoid``: ``1 / (1 + exp(-x))`` (the sum in either
order) and ``reciprocal(1 + exp(-x))``, on a float ``x`` the result does not broadcast. Fusing it
lets ``silu`` see ``x * (1 / (1 + exp(-x)))`` and ``linear_activation`` fold it into a ``linear``.
The op is at least as accurate as the spelling (``exp(-x)`` overflowing to inf gives 0 in both)."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Const, Op, Rule, Var

__all__ = ["RULE"]

X = Var("x", where=lambda v: v.type.dtype.startswith(("float", "bfloat")))
_DENOM = Op("add", Const(1.0), Op("exp", Op("neg", X)))
_PATTERNS = [
    Op("div", Const(1.0), _DENOM),
    Op("reciprocal", _DENOM),
]


def _build(m, rw):
    return ops.sigmoid(rw.t(m["x"]))


RULE = Rule("sigmoid", _PATTERNS, _build, check=lambda m: m.root.outputs[0].type == m["x"].type,
            requires=("sigmoid",), doc=__doc__)
