"""Fusion rules, one per module; :data:`RULES` is the order the ``fuse`` pass tries them in.

Each module defines ``RULE`` (a :class:`graphforge.passes.pattern.Rule`) with its own match
counter (``RULE.matches``). Rules whose ops are not registered yet (``Rule.requires``) are skipped."""
from __future__ import annotations

from importlib import import_module

__all__ = ["RULES", "RULE_MODULES", "match_counts", "reset_counts", "get_rule"]

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
RULES = [import_module(f"{__name__}.{name}").RULE for name in RULE_MODULES]


def get_rule(name: str):
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(name)


def match_counts() -> dict[str, int]:
    """Matches per rule since the last :func:`reset_counts`."""
    return {r.name: r.matches for r in RULES}


def reset_counts() -> None:
    for r in RULES:
        r.matches = 0
