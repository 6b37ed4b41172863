"""Transposes: an identity permutation → its input; ``transpose(transpose(x))`` → one transpose with
the composed permutation, or ``x`` when the two cancel. The inner transpose stays while something
else reads it."""
from __future__ import annotations

from ..pattern import Op, Rule, Var

__all__ = ["RULES"]

X = Var("x")


def _perm(node) -> list[int]:
    rank = node.inputs[0].type.rank
    perm = node.attrs.get("perm")
    return list(range(rank))[::-1] if perm is None else [p % rank for p in perm]


def _is_identity(perm: list[int]) -> bool:
    return perm == list(range(len(perm)))


def _operand(m, rw):
    return m["x"]


def _compose(m, rw):
    outer, inner = m.root, m["inner"]
    inner_perm = _perm(inner)
    composed = [inner_perm[p] for p in _perm(outer)]
    if _is_identity(composed):
        return m["x"]
    return rw.clone(outer, inputs=[m["x"]], attrs=dict(outer.attrs, perm=composed))


RULES = [
    Rule("identity_transpose", Op("transpose", X, where=lambda node, m: _is_identity(_perm(node))), _operand,
         internal_uses_only=False, provenance="root", doc=__doc__),
    Rule("transpose_chain", Op("transpose", Op("transpose", X, name="inner")), _compose,
         internal_uses_only=False, provenance="root", doc=__doc__),
]
