"""Involutions applied twice cancel: ``neg(neg(x))`` and ``logical_not(logical_not(x))`` → ``x``.

A chain of four collapses over the engine's sweeps (outermost pair first)."""
from __future__ import annotations

from ..pattern import Op, Rule, Var

__all__ = ["RULES"]

X = Var("x")


def _operand(m, rw):
    return m["x"]


RULES = [
    Rule(f"double_{op}", Op(op, Op(op, X)), _operand, internal_uses_only=False, provenance="root", doc=__doc__)
    for op in ("neg", "logical_not")
]
