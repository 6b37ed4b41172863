"""SiLU spelled out → ``silu``: ``x * sigmoid(x)`` (either order) and ``x / (1 + exp(-x))``."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Const, Op, Rule, Var

__all__ = ["RULE"]

X = Var("x", where=lambda v: v.type.dtype.startswith(("float", "bfloat")))
_PATTERNS = [
    Op("mul", X, Op("sigmoid", X)),
    Op("div", X, Op("add", Const(1.0), Op("exp", Op("neg", X)))),
]


def _build(m, rw):
    return ops.silu(rw.t(m["x"]))


RULE = Rule("silu", _PATTERNS, _build, check=lambda m: m.root.outputs[0].type == m["x"].type,
            requires=("silu",), doc=__doc__)
