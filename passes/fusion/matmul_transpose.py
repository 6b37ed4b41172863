"""``matmul(x, transpose(W))`` with a 2-D weight ``W`` (a parameter or constant) → ``linear(x, W)``
(``transpose_b=True``): what ``x @ W.T`` in a hand-written bias-free layer means, spelled as
``nn.Linear(bias=False)`` emits it, without the transpose."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Op, Rule, Var
from ._common import is_weight

__all__ = ["RULE"]

_PATTERN = Op("matmul", Var("x"), Op("transpose", Var("W", rank=2, where=is_weight), name="t",
                                    attrs={"perm": lambda p: p is None or [q % 2 for q in p] == [1, 0]}))


def _build(m, rw):
    return ops.linear(rw.t(m["x"]), rw.t(m["W"]), transpose_b=True)


# The transpose may feed other nodes too: it is not absorbed, only bypassed (and erased if unused).
RULE = Rule("matmul_transpose", _PATTERN, _build, requires=("linear",), internal_uses_only=False, doc=__doc__)
