"""Fusion rules, one per module; :data:`RULES` (a :class:`~graphforge.passes.engine.RuleSet`) is
the order the ``fuse`` pass tries them in.

Each module defines ``RULE`` (a :class:`graphforge.passes.pattern.Rule`). Rules whose ops are not
registered yet (``Rule.requires``) are skipped. Matches are counted per run, in the ``stats`` of
``fuse`` (and the PassManager's report), not on the rules."""
from __future__ import annotations

from importlib import import_module

from ..engine import RuleSet

__all__ = ["RULES", "RULE_MODULES", "get_rule"]

# Order matters only between rules rooted at the same op: bigger patterns first.
RULE_MODULES = [
    "attention",
    "layer_norm",
    "gelu",
    "silu",
    "sigmoid",
    "relu",
    "softmax",
    "log_softmax",
    "matmul_bias",
    "matmul_transpose",
    "linear_activation",
    "conv_bn",
]
RULES = RuleSet("fusion", [import_module(f"{__name__}.{name}").RULE for name in RULE_MODULES])


def get_rule(name: str):
    return RULES.get(name)
