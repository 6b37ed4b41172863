"""``simplify``: local algebraic and shape simplifications, as declarative rules
(:mod:`graphforge.passes.simplify_rules`, one family per module) run by the rewrite engine:

* ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1``, ``x**1`` → ``x`` (only when the constant does
  not broadcast ``x`` to a larger shape or another dtype);
* ``neg(neg(x))``, ``logical_not(logical_not(x))`` → ``x``;
* the ``axis`` of ``softmax``/``log_softmax``/``layer_norm`` in its negative spelling;
* ``transpose(transpose(x))`` → one transpose, or ``x`` when the permutations cancel;
* ``reshape`` of a ``reshape``/``flatten``/``squeeze``/``unsqueeze`` → one ``reshape``;
* no-op ``reshape``/``flatten``/``squeeze``/``unsqueeze``/``broadcast_to``/``cast``/``transpose``
  → their input;
* ``dim_size`` over static dims → a ``constant``.

Rewritten nodes keep their scope, location and result names; a node that becomes unused is erased
with the producers only it used. Matches per rule go to ``stats``."""
from __future__ import annotations

from graphforge.ir.graph import Graph

from .engine import apply_rules
from .registry import register_pass

__all__ = ["simplify"]


@register_pass("simplify", preserves=("typed",), stats=True)
def simplify(graph: Graph, rules=None, *, stats: dict | None = None) -> tuple[Graph, bool]:
    """Simplify with ``rules`` (a RuleSet; default all of simplify_rules/)."""
    from . import simplify_rules

    changed = apply_rules(graph, simplify_rules.RULES if rules is None else rules, stats=stats)
    return graph, changed
