"""Guards: the facts about symbolic dims that a graph's types rely on, checked when inputs are bound.

A type rule that cannot prove what it needs records a requirement (``ir.dims.require_le`` /
``require_divisible``): slicing a 64-row position table with ``[:seq]`` needs ``seq <= 64``; a
reshape that splits ``seq`` into rows of 4 needs ``seq % 4 == 0``. The guards of a graph are those
requirements, each with the node that made it (op, module scope and the user's ``file:line``).

They are derived from the graph's nodes rather than stored beside them, so every graph has them —
traced, parsed from text, copied or rewritten by passes — and they are exactly the ones of the
nodes that are still there. Deriving re-runs the type rules of the nodes that touch a symbolic dim,
once per graph (cached until its nodes change).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Mapping

from .errors import GraphforgeError, InputError
from .ir.dims import Requirement, collect_requirements, dim_symbols, has_symbolic_attr, resolve_dim
from .ir.graph import Graph
from .ops import registry

__all__ = ["Guard", "guards", "check_guards"]


@dataclass(frozen=True)
class Guard:
    """One requirement and where it comes from."""
    requirement: Requirement
    op: str
    scope: str
    loc: str

    def __str__(self) -> str:
        where = " ".join(p for p in (f"in {self.scope}" if self.scope else "", f"at {self.loc}" if self.loc else "") if p)
        return f"{self.requirement} (needed by {self.op}: {self.requirement.reason}{', ' + where if where else ''})"


_CACHE: "weakref.WeakKeyDictionary[Graph, tuple]" = weakref.WeakKeyDictionary()


def _symbolic(node) -> bool:
    for v in node.inputs:
        for d in v.type.shape:
            if type(d) is not int:
                return True
    attrs = node.attrs
    # (a str attribute may be a symbolic dim, e.g. arange's stop="seq", or a mode name: either way
    # re-running the rule is what decides)
    return bool(attrs) and (has_symbolic_attr(attrs) or any(type(v) is str for v in attrs.values()))


def guards(graph: Graph) -> list[Guard]:
    """The guards of ``graph`` in node order, without repeats."""
    nodes = list(graph.walk())  # loop bodies and branches too
    key = (len(nodes), tuple(map(id, nodes)))
    cached = _CACHE.get(graph)
    if cached is not None and cached[0] == key:
        return cached[1]
    out: list[Guard] = []
    seen = set()
    for node in nodes:
        if not _symbolic(node):
            continue
        opdef = registry.lookup_op(node.op)
        if opdef is None:
            continue
        try:
            with collect_requirements() as reqs:
                registry.infer_types(opdef, [v.type for v in node.inputs], node.attrs,
                                     regions=node.regions if opdef.regions else None)
        except GraphforgeError:  # verify() reports broken nodes; guards are about well-typed ones
            continue
        for req in reqs:
            if (req.kind, req.lhs, req.rhs) in seen:
                continue
            seen.add((req.kind, req.lhs, req.rhs))
            out.append(Guard(req, node.op, node.scope, node.loc))
    _CACHE[graph] = (key, out)
    return out


def check_guards(graph: Graph, env: Mapping[str, int], bound_by: Mapping[str, str] | None = None) -> None:
    """Raise InputError for the first guard the binding ``env`` breaks (naming the guard, the values
    of its symbols, the inputs that bound them and the line of the model that needs it)."""
    for guard in guards(graph):
        req = guard.requirement
        try:
            ok = req.holds(env)
        except GraphforgeError:  # a symbol no input binds: nothing to check against
            continue
        if ok:
            continue
        syms = sorted(dim_symbols(req.lhs) | dim_symbols(req.rhs))
        values = ", ".join(f"{s} = {env[s]}" + (f" (from {bound_by[s]})" if bound_by and s in bound_by else "")
                           for s in syms if s in env)
        lhs, rhs = resolve_dim(req.lhs, env), resolve_dim(req.rhs, env)
        if req.kind == "broadcast":
            got = f"{lhs} vs {rhs}"
        else:
            got = f"{lhs} > {rhs}" if req.kind == "le" else f"{lhs} % {rhs} = {lhs % rhs if rhs else lhs}"
        hint = ("the model was traced for sizes that satisfy this; pass inputs that do, or change the model "
                + ("(or give the two dims one name in the specs when they are the same size)" if req.kind == "broadcast"
                   else "(e.g. a larger position table)"))
        raise InputError(f"graph {graph.name!r}: the inputs break the constraint {req} ({values}: {got}); "
                         f"it is needed by {guard.op}: {req.reason}", scope=guard.scope or None,
                         loc=guard.loc or None, hint=hint)
