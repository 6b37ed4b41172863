"""Algebraic and shape simplification rules, one family per module; :data:`RULES` (a
:class:`~graphforge.passes.engine.RuleSet`) is what the ``simplify`` pass runs.

Every rule here edits one node (``provenance="root"``: results keep the node's scope, location and
result names) and never duplicates work, so matched interior nodes may have other users
(``internal_uses_only=False``); they stay while anything reads them. Each module defines ``RULES``."""
from __future__ import annotations

from importlib import import_module

from ..engine import RuleSet

__all__ = ["RULES", "RULE_MODULES", "get_rule"]

# Order matters only between rules rooted at the same op (within a module, as listed there).
RULE_MODULES = [
    "arithmetic",
    "involution",
    "axes",
    "transpose",
    "shapes",
    "dim_size",
    "gather_linear",
]
RULES = RuleSet("simplify", [rule for name in RULE_MODULES for rule in import_module(f"{__name__}.{name}").RULES])


def get_rule(name: str):
    return RULES.get(name)
