"""``fuse``: run the declarative fusion rules of :mod:`graphforge.passes.fusion` with the rewrite
engine (:func:`graphforge.passes.engine.apply_rules`).

Consumers are visited first, so the largest pattern rooted at a node wins; sweeps repeat until no
rule fires, so a rule can build on another's result (``softmax`` → ``attention``, ``linear`` →
``linear`` with an activation). Each rewrite builds its replacement with graphforge ops under the
merged provenance of the nodes it absorbs, in the root's place. Matches per rule go to ``stats``
(the PassManager keeps them in the pass's report record)."""
from __future__ import annotations

from graphforge.ir.graph import Graph

from .engine import MAX_SWEEPS, apply_rules
from .registry import register_pass

__all__ = ["fuse", "MAX_SWEEPS"]


@register_pass("fuse", requires=("typed",), preserves=("typed",), stats=True)
def fuse(graph: Graph, rules=None, *, stats: dict | None = None) -> tuple[Graph, bool]:
    """Fuse spelled-out computations into single ops (``rules``: a RuleSet, default all of fusion/)."""
    from . import fusion

    changed = apply_rules(graph, fusion.RULES if rules is None else rules, stats=stats)
    return graph, changed
