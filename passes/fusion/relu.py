"""ReLU spelled out → ``relu``: ``maximum(x, 0)`` (either operand order) and ``clip(x, min=0)``
with no upper bound (``x.clamp(min=0)``), on a float ``x`` the result does not broadcast. Fusing it
lets ``linear_activation`` fold a hand-written ReLU into the ``linear`` before it."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Const, Op, Rule, Var

__all__ = ["RULE"]

X = Var("x", where=lambda v: v.type.dtype.startswith(("float", "bfloat")))
_PATTERNS = [
    Op("maximum", X, Const(0.0)),
    Op("clip", X, attrs={"min": lambda lo: lo is not None and lo == 0, "max": lambda hi: hi is None}),
]


def _build(m, rw):
    return ops.relu(rw.t(m["x"]))


RULE = Rule("relu", _PATTERNS, _build, check=lambda m: m.root.outputs[0].type == m["x"].type,
            requires=("relu",), doc=__doc__)
