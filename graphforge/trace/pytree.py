"""Pytrees for the control-flow API: nested tuples, lists and dicts (and None) of leaves.

``gf.cond``/``gf.scan``/``gf.while_loop`` carry pytrees of Tensors, like ``jax.lax``; these helpers
flatten one into its leaves and a structure, and rebuild a pytree from a structure and leaves. Dict
keys are kept in sorted order (as JAX does), so two dicts with the same keys have one structure.
"""
from __future__ import annotations

from typing import Any

__all__ = ["tree_flatten", "tree_unflatten", "tree_paths", "Leaf"]


class _LeafDef:
    def __repr__(self):
        return "*"

    def __eq__(self, other):
        return isinstance(other, _LeafDef)

    def __hash__(self):
        return 0


Leaf = _LeafDef()


def tree_flatten(tree: Any) -> tuple[list, Any]:
    """(leaves, structure): tuples, lists and dicts are nodes, None is an empty node, the rest leaves."""
    leaves: list = []

    def walk(t):
        if t is None:
            return None
        if isinstance(t, tuple) and not hasattr(t, "_fields"):
            return ("tuple", tuple(walk(x) for x in t))
        if isinstance(t, tuple):  # a namedtuple: rebuilt with its own type
            return ("namedtuple", type(t), tuple(walk(x) for x in t))
        if isinstance(t, list):
            return ("list", tuple(walk(x) for x in t))
        if isinstance(t, dict):
            keys = sorted(t)
            return ("dict", tuple(keys), tuple(walk(t[k]) for k in keys))
        leaves.append(t)
        return Leaf

    return leaves, walk(tree)


def tree_unflatten(structure: Any, leaves: list) -> Any:
    """The pytree of ``structure`` (from :func:`tree_flatten`) holding ``leaves`` in order."""
    it = iter(leaves)

    def build(s):
        if s is None:
            return None
        if s == Leaf:
            return next(it)
        kind = s[0]
        if kind == "tuple":
            return tuple(build(x) for x in s[1])
        if kind == "namedtuple":
            return s[1](*(build(x) for x in s[2]))
        if kind == "list":
            return [build(x) for x in s[1]]
        return {k: build(x) for k, x in zip(s[1], s[2])}

    return build(structure)


def tree_paths(structure: Any, prefix: str = "") -> list[str]:
    """A readable path per leaf (``carry[0]['h']``), for error messages."""
    out: list[str] = []

    def walk(s, path):
        if s is None:
            return
        if s == Leaf:
            out.append(path)
            return
        kind = s[0]
        if kind == "dict":
            for k, x in zip(s[1], s[2]):
                walk(x, f"{path}[{k!r}]")
        else:
            for i, x in enumerate(s[-1]):
                walk(x, f"{path}[{i}]")

    walk(structure, prefix)
    return out
