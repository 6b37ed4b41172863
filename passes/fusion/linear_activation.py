"""An activation applied to a ``linear`` (or to ``matmul(x, w)`` with a 2-D ``w``) → ``linear`` with
that ``activation``: relu, gelu (exact → ``"gelu"``, tanh → ``"gelu_tanh"``), tanh, sigmoid, silu."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Op, Rule, Var

__all__ = ["RULE"]

_ACTS = ("relu", "gelu", "tanh", "sigmoid", "silu")
_PATTERNS = [
    Op(_ACTS, Op("linear", Var("x"), Var("w"), Var("b"), name="lin", attrs={"activation": "none"})),
    Op(_ACTS, Op("linear", Var("x"), Var("w"), name="lin", attrs={"activation": "none"})),
    Op(_ACTS, Op("matmul", Var("x"), Var("w", rank=2), name="mm")),
]


def _activation(node) -> str:
    if node.op == "gelu":
        return "gelu_tanh" if node.attrs.get("approximate", "none") == "tanh" else "gelu"
    return node.op


def _build(m, rw):
    act = _activation(m.root)
    if "mm" in m:
        return ops.linear(rw.t(m["x"]), rw.t(m["w"]), transpose_b=False, activation=act)
    args = [rw.t(m["x"]), rw.t(m["w"])] + ([rw.t(m["b"])] if "b" in m else [])
    return ops.linear(*args, transpose_b=m["lin"].attrs.get("transpose_b", True), activation=act)


RULE = Rule("linear_activation", _PATTERNS, _build, requires=("linear",), doc=__doc__)
