"""Arithmetic identities: ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1``, ``x**1`` → ``x``.

The constant is a splat (a ``constant`` node or ``const`` parameter whose elements all equal the
unit, compared exactly: ``x * 1.0001`` stays). The rewrite applies only when the result has ``x``'s
type — a unit that broadcasts ``x`` to a larger shape (``x + zeros(3, 4)`` on a ``(4,)`` ``x``) or
lifts its dtype is not an identity."""
from __future__ import annotations

from ..pattern import Const, Op, Rule, Var

__all__ = ["RULES"]

X = Var("x")


def _unit(value: float) -> Const:
    return Const(value, rtol=0.0)  # exactly


def _same_type(m) -> bool:
    return m.root.outputs[0].type == m["x"].type


def _operand(m, rw):
    return m["x"]


def _rule(name: str, op: str, unit: float) -> Rule:
    # add and mul are commutative: the pattern also matches the unit on the left.
    return Rule(name, Op(op, X, _unit(unit)), _operand, check=_same_type, internal_uses_only=False,
                provenance="root", doc=__doc__)


RULES = [
    _rule("add_zero", "add", 0.0),
    _rule("mul_one", "mul", 1.0),
    _rule("sub_zero", "sub", 0.0),
    _rule("div_one", "div", 1.0),
    _rule("pow_one", "pow", 1.0),
]
