"""An activation applied to a ``linear`` (or to ``matmul(x, w)`` with a 2-D ``w``) → ``linear`` with
that ``activation``: every op of the registry's one fused-activation table (``ops.linalg.ACTIVATION_OPS``:
relu, gelu exact and tanh, tanh, sigmoid, silu)."""
from __future__ import annotations

from graphforge import ops
from graphforge.ops.linalg import ACTIVATION_OPS, activation_name

from ..pattern import Op, Rule, Var
from ..rewrite import RewriteRefused

__all__ = ["RULE"]

_ACTS = tuple(sorted({op for op, _ in ACTIVATION_OPS.values()}))
_PATTERNS = [
    Op(_ACTS, Op("linear", Var("x"), Var("w"), Var("b"), name="lin", attrs={"activation": "none"})),
    Op(_ACTS, Op("linear", Var("x"), Var("w"), name="lin", attrs={"activation": "none"})),
    Op(_ACTS, Op("matmul", Var("x"), Var("w", rank=2), name="mm")),
]


def _build(m, rw):
    act = activation_name(m.root.op, m.root.attrs)
    if act is None:  # an attribute the table has no fused form for
        raise RewriteRefused(f"{m.root.op} {m.root.attrs} has no fused linear activation")
    if "mm" in m:
        return ops.linear(rw.t(m["x"]), rw.t(m["w"]), transpose_b=False, activation=act)
    args = [rw.t(m["x"]), rw.t(m["w"])] + ([rw.t(m["b"])] if "b" in m else [])
    return ops.linear(*args, transpose_b=m["lin"].attrs.get("transpose_b", True), activation=act)


RULE = Rule("linear_activation", _PATTERNS, _build, requires=("linear",), doc=__doc__)
