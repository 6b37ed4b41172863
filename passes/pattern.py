"""A small declarative pattern language for local rewrites (simplification and fusion rules).

Patterns describe the computation that produces a value, from the value upwards::

    x, w, b = Var("x"), Var("w", rank=2), Var("b")
    pattern = Op("add", Op("matmul", x, w, name="mm"), b)          # add is commutative: b + x@w matches too

* :class:`Var` matches any value and captures it; a name used twice must match the same value.
* :class:`Const` matches a constant whose elements all equal one number (a ``constant`` node or a
  ``const`` parameter), optionally close to a given value, and captures the number.
* :class:`Op` matches a node by op name(s), with attribute values or predicates (``attrs=``), an
  extra predicate (``where=``), ``one_use=True`` (the value has exactly one use), and tries both
  operand orders of commutative ops (``OpDef.commutative``).
* :class:`Assoc` matches a tree of one associative, commutative op (``mul``, ``add``) whose leaves
  match the operand patterns in any order: ``Assoc("mul", Const(0.5), x, y)`` matches
  ``0.5*x*y``, ``x*(y*0.5)``, ``(x*0.5)*y``, …
* :class:`AnyOf` tries alternatives in order.

A :class:`Rule` couples patterns with a replacement built by the ordinary functional API on
``Tensor``s (see :class:`passes.rewrite.Rewriter`); :mod:`passes.engine` runs sets of rules. By
default every matched node other than the root must be used only inside the match (so the rewrite
removes it instead of duplicating work).
"""
from __future__ import annotations

import abc
import math

import numpy as np
from typing import Any, Callable, Iterator, Sequence

from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.ops import registry

from .rewrite import Rewriter, constant_array, scalar_value, splat_number

__all__ = ["Pattern", "Var", "Const", "Op", "Assoc", "AnyOf", "Match", "Rule", "attr_of", "compile_prefilter"]


def attr_of(node: Node, key: str):
    """A node's attribute, falling back to the op's schema default."""
    if key in node.attrs:
        return node.attrs[key]
    try:
        spec = registry.get_op(node.op).attrs.get(key)
    except GraphforgeError:
        return None
    if spec is None or spec.default is registry.REQUIRED:
        return None
    return spec.default


class Match:
    """Captured values/numbers/nodes by name, and the nodes the pattern covered."""

    __slots__ = ("graph", "captures", "nodes", "root")

    def __init__(self, graph: Graph, captures: dict | None = None, nodes: tuple = (), root: Node | None = None):
        self.graph = graph
        self.captures = captures or {}
        self.nodes = nodes
        self.root = root

    def bind(self, name: str | None, item) -> "Match | None":
        if name is None:
            return self
        if name in self.captures:
            return self if self.captures[name] is item else None
        return Match(self.graph, {**self.captures, name: item}, self.nodes, self.root)

    def add_node(self, node: Node) -> "Match":
        if any(n is node for n in self.nodes):
            return self
        return Match(self.graph, self.captures, self.nodes + (node,), self.root)

    def __getitem__(self, name: str):
        return self.captures[name]

    def get(self, name: str, default=None):
        return self.captures.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.captures


class Pattern(abc.ABC):
    """A pattern over Values; subclasses say how they match (instantiating one that does not is a
    TypeError, not a failure in the middle of a pass)."""

    @abc.abstractmethod
    def match(self, value: Value, m: Match) -> Iterator[Match]:
        """Every way ``value`` matches this pattern, extending ``m``."""

    def root_ops(self) -> set[str]:
        return set()

    def match_node(self, node: Node, graph: Graph) -> Iterator[Match]:
        """Matches rooted at ``node``'s first result."""
        m = Match(graph, root=node)
        yield from self.match(node.outputs[0], m)


class Var(Pattern):
    """Any value; ``rank``/``dtype``/``where`` restrict it; ``kind`` restricts Value.kind."""

    def __init__(self, name: str | None = None, *, rank: int | None = None, dtype: str | None = None,
                 where: Callable[[Value], bool] | None = None, kind: str | Sequence[str] | None = None):
        self.name, self.rank, self.dtype, self.where = name, rank, dtype, where
        self.kinds = (kind,) if isinstance(kind, str) else (tuple(kind) if kind else None)

    def match(self, value, m):
        if self.rank is not None and value.type.rank != self.rank:
            return
        if self.dtype is not None and value.type.dtype != self.dtype:
            return
        if self.kinds is not None and value.kind not in self.kinds:
            return
        if self.where is not None and not self.where(value):
            return
        bound = m.bind(self.name, value)
        if bound is not None:
            yield bound


class Const(Pattern):
    """A constant whose elements all equal one number; ``value`` (with relative tolerance ``rtol``)
    or ``where(number)`` restrict it. Captures the number under ``name`` and the value under
    ``name + "_value"``."""

    def __init__(self, value: float | None = None, *, name: str | None = None, rtol: float = 1e-4,
                 where: Callable[[float], bool] | None = None):
        self.value, self.name, self.rtol, self.where = value, name, rtol, where

    def accepts(self, number: float | None) -> bool:
        """Whether a constant's splat value satisfies ``value``/``where``."""
        if number is None or math.isnan(number):
            return False
        if self.value is not None and not math.isclose(number, self.value, rel_tol=self.rtol,
                                                       abs_tol=self.rtol if self.value == 0 else 0.0):
            return False
        return self.where is None or bool(self.where(number))

    def match(self, value, m):
        number = scalar_value(m.graph, value)
        if not self.accepts(number):
            return
        if self.name is None:
            yield m
            return
        if self.name in m.captures:
            if m.captures[self.name] == number:
                yield m
            return
        out = Match(m.graph, {**m.captures, self.name: number, self.name + "_value": value}, m.nodes, m.root)
        yield out


class Op(Pattern):
    """A node with op ``op`` (a name or a tuple of names) whose inputs match ``inputs``."""

    def __init__(self, op: str | Sequence[str], *inputs: Pattern, attrs: dict[str, Any] | None = None,
                 where: Callable[[Node, Match], bool] | None = None, name: str | None = None,
                 one_use: bool = False, commutative: bool | None = None):
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.inputs = inputs
        self.attrs = attrs or {}
        self.where = where
        self.name = name
        self.one_use = one_use
        self.commutative = commutative

    def root_ops(self):
        return set(self.ops)

    def _attrs_ok(self, node: Node) -> bool:
        for key, want in self.attrs.items():
            have = attr_of(node, key)
            if callable(want):
                if not want(have):
                    return False
            elif have != want:
                return False
        return True

    def match(self, value, m):
        node = value.producer
        if node is None or node.op not in self.ops or len(node.inputs) != len(self.inputs):
            return
        if self.one_use and len(value.uses) != 1:
            return
        if not self._attrs_ok(node):
            return
        m = m.bind(self.name, node)
        if m is None:
            return
        m = m.add_node(node)
        orders = [node.inputs]
        commutative = self.commutative
        if commutative is None:
            commutative = _commutative(node)
        if commutative and len(node.inputs) == 2 and node.inputs[0] is not node.inputs[1]:
            orders.append(node.inputs[::-1])
        for order in orders:
            for done in _match_all(self.inputs, order, m):
                if self.where is None or self.where(node, done):
                    yield done


def _match_all(patterns: Sequence[Pattern], values: Sequence[Value], m: Match) -> Iterator[Match]:
    if not patterns:
        yield m
        return
    for m1 in patterns[0].match(values[0], m):
        yield from _match_all(patterns[1:], values[1:], m1)


class AnyOf(Pattern):
    """The first alternatives that match (all of them, in order, for backtracking)."""

    def __init__(self, *alternatives: Pattern):
        self.alternatives = alternatives

    def root_ops(self):
        out: set[str] = set()
        for a in self.alternatives:
            out |= a.root_ops()
        return out

    def match(self, value, m):
        for alt in self.alternatives:
            yield from alt.match(value, m)


class Assoc(Pattern):
    """A tree of the associative, commutative ``op`` whose leaves match ``operands`` in any order.

    Interior nodes of the tree (below its root) must have exactly one use; the tree's root must be
    an ``op`` node. Leaves may themselves be ``op`` nodes (the tree can stop at any depth)."""

    def __init__(self, op: str, *operands: Pattern, name: str | None = None):
        if len(operands) < 2:
            raise ValueError("Assoc needs at least two operands")
        self.op, self.operands, self.name = op, operands, name

    def root_ops(self):
        return {self.op}

    def _splits(self, value: Value, limit: int, is_root: bool) -> Iterator[tuple[list[Value], list[Node]]]:
        node = value.producer
        expandable = node is not None and node.op == self.op and len(node.inputs) == 2 and (
            is_root or (len(value.uses) == 1 and len(node.outputs) == 1))
        if not is_root:
            yield [value], []
        if not expandable:
            return
        a, b = node.inputs
        for left, ln in self._splits(a, limit - 1, False):
            if len(left) >= limit:
                continue
            for right, rn in self._splits(b, limit - len(left), False):
                if len(left) + len(right) <= limit:
                    yield left + right, [node] + ln + rn

    def match(self, value, m):
        node = value.producer
        if node is None or node.op != self.op:
            return
        n = len(self.operands)
        for leaves, nodes in self._splits(value, n, True):
            if len(leaves) != n:
                continue
            # Result types must not depend on how the tree is split: require the tree's leaves to
            # combine to the root's type (broadcasting at the leaves is allowed).
            base = m.bind(self.name, node)
            if base is None:
                continue
            for extra in nodes:
                base = base.add_node(extra)
            yield from _match_perm(self.operands, leaves, base)


def _match_perm(patterns: Sequence[Pattern], leaves: list[Value], m: Match) -> Iterator[Match]:
    if not patterns:
        yield m
        return
    first, rest = patterns[0], patterns[1:]
    for i, leaf in enumerate(leaves):
        if any(leaf is other for other in leaves[:i]):
            continue  # the same value twice: trying it once is enough
        for m1 in first.match(leaf, m):
            yield from _match_perm(rest, leaves[:i] + leaves[i + 1:], m1)


class Rule:
    """A declarative rewrite: ``patterns`` (tried in order) rooted at one node, an optional
    ``check(match)``, and ``build(match, rw)`` returning the replacement value(s) for the root's
    results, built with graphforge ops on ``rw.t(value)`` tensors (or existing values: ``x * 1`` →
    ``x``). ``requires`` names ops that must be registered for the rule to run.
    ``internal_uses_only=False`` lets matched interior nodes have other users (they stay; the rule
    must not duplicate work). ``provenance``: ``"merged"`` stamps new nodes with the scopes and
    locations of every node the match covers (fusion), ``"root"`` with the root's alone (a
    simplification that edits one node). Match counts are per run (``passes.engine.apply_rules``)."""

    def __init__(self, name: str, patterns: Pattern | Sequence[Pattern],
                 build: Callable[[Match, Rewriter], Any], *, check: Callable[[Match], bool] | None = None,
                 requires: Sequence[str] = (), internal_uses_only: bool = True, doc: str = "",
                 provenance: str = "merged"):
        if provenance not in ("merged", "root"):
            raise ValueError(f"Rule {name!r}: provenance must be 'merged' or 'root', not {provenance!r}")
        self.provenance = provenance
        self.name = name
        self.patterns = [patterns] if isinstance(patterns, Pattern) else list(patterns)
        self.build = build
        self.check = check
        self.requires = tuple(requires)
        self.internal_uses_only = internal_uses_only
        self.doc = doc
        self._prefilters = None  # compiled on first use (compile_prefilter)

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"

    @property
    def available(self) -> bool:
        return all(registry.has_op(op) for op in self.requires)

    def root_ops(self) -> set[str]:
        out: set[str] = set()
        for p in self.patterns:
            out |= p.root_ops()
        return out

    def prefilters(self) -> list:
        """One compiled pre-check per pattern (:func:`compile_prefilter`; None: none)."""
        if self._prefilters is None:
            self._prefilters = [compile_prefilter(p, _PREFILTER_DEPTH) for p in self.patterns]
        return self._prefilters

    def find(self, node: Node, graph: Graph, outs: set[int], dead=(), *, only: Sequence[int] | None = None,
             prechecked: bool = False) -> Match | None:
        """The first match rooted at ``node`` that passes the use constraints and ``check``
        (uses by nodes in ``dead``, erased but not yet removed, do not count).

        ``only``: the positions (ascending) of the patterns to try, the others being known not to
        match (the engine's gate); ``prechecked``: their pre-checks already passed on ``node``."""
        first = node.outputs[0] if node.outputs else None
        patterns, prefilters = self.patterns, self.prefilters()
        for index in range(len(patterns)) if only is None else only:
            pattern, may_match = patterns[index], prefilters[index]
            if (not prechecked and first is not None and may_match is not None
                    and not may_match(first)):
                continue
            for m in pattern.match_node(node, graph):
                if self.internal_uses_only and not _internal_only(m, node, outs, dead):
                    continue
                if self.check is not None and not self.check(m):
                    continue
                return m
        return None


# How deep the structural pre-check looks below a pattern's root (deeper costs more per node and
# rejects little more: most candidates fail at their root's operands).
_PREFILTER_DEPTH = 3


_COMMUTATIVE: dict[str, bool] = {}  # op name -> OpDef.commutative, for registered ops only


def _commutative(node: Node) -> bool:
    known = _COMMUTATIVE.get(node.op)
    if known is not None:
        return known
    opdef = registry.lookup_op(node.op)
    if opdef is None:
        return False
    _COMMUTATIVE[node.op] = bool(opdef.commutative)
    return _COMMUTATIVE[node.op]


def _may_match(p: Pattern, value: Value, depth: int) -> bool:
    """A cheap necessary condition for ``p`` to match ``value``: False only when no match exists.

    It mirrors the structural tests of the built-in pattern classes (op names, operand counts,
    ``one_use``, both operand orders of commutative ops, constants, Var rank/dtype/kind) without
    building Match objects or generators; predicates (``where``, attribute tests, captures) are left
    to the full match. Subclasses and unknown patterns always pass."""
    kind = type(p)
    if kind is Var:
        t = value.type
        return ((p.rank is None or len(t.shape) == p.rank) and (p.dtype is None or t.dtype == p.dtype)
                and (p.kinds is None or value.kind in p.kinds))
    if kind is Op:
        node = value.producer
        if node is None or node.op not in p.ops:
            return False
        ins, subs = node.inputs, p.inputs
        if len(ins) != len(subs) or (p.one_use and len(value.uses) != 1):
            return False
        if depth <= 0:
            return True
        depth -= 1
        for sub, v in zip(subs, ins):
            if not _may_match(sub, v, depth):
                break
        else:
            return True
        if len(ins) == 2 and ins[0] is not ins[1]:
            commutative = p.commutative if p.commutative is not None else _commutative(node)
            if commutative:
                return _may_match(p.inputs[0], ins[1], depth) and _may_match(p.inputs[1], ins[0], depth)
        return False
    if kind is Const:
        node = value.producer
        if node is None:
            return value.kind == "const"
        if node.op != "constant":
            return False
        if p.value is None and p.where is None:
            return True
        # A one-element constant is cheap to test here (most operands that are constants are not the
        # number a rule wants); larger splats are left to the full match.
        array = node.attrs.get("value")
        if not isinstance(array, np.ndarray) or array.size != 1:
            return True
        return p.accepts(splat_number(array))
    if kind is AnyOf:
        for alt in p.alternatives:
            if _may_match(alt, value, depth):
                return True
        return False
    if kind is Assoc:
        node = value.producer
        if node is None or node.op != p.op or len(node.inputs) != 2:
            return False  # (Assoc.match: a root that does not expand yields no split)
        if depth <= 0:
            return True
        leaves = _assoc_leaves(p.op, node, len(p.operands))
        return all(any(_may_match(o, leaf, depth - 1) for leaf in leaves) for o in p.operands)
    return True


def compile_prefilter(p: Pattern, depth: int):
    """:func:`_may_match` for one pattern as a closure, ``value -> bool`` (None: always True).

    The rewrite engine tests every candidate node with it; resolving the pattern's structure once
    instead of per node makes the test several times cheaper. It accepts exactly what
    ``_may_match(p, value, depth)`` accepts."""
    kind = type(p)
    if kind is Var:
        rank, dtype, kinds = p.rank, p.dtype, p.kinds
        if rank is None and dtype is None and kinds is None:
            return None

        def var_check(value):
            t = value.type
            return ((rank is None or len(t.shape) == rank) and (dtype is None or t.dtype == dtype)
                    and (kinds is None or value.kind in kinds))
        return var_check
    if kind is Op:
        ops = frozenset(p.ops)
        n = len(p.inputs)
        one_use = p.one_use
        subs = tuple(compile_prefilter(sub, depth - 1) for sub in p.inputs) if depth > 0 else (None,) * n
        trivial = all(c is None for c in subs)
        fixed_commutative = p.commutative

        def op_check(value):
            node = value.producer
            if node is None or node.op not in ops:
                return False
            ins = node.inputs
            if len(ins) != n or (one_use and len(value.uses) != 1):
                return False
            if trivial:
                return True
            for c, v in zip(subs, ins):
                if c is not None and not c(v):
                    break
            else:
                return True
            if n == 2 and ins[0] is not ins[1]:
                commutative = fixed_commutative if fixed_commutative is not None else _commutative(node)
                if commutative:
                    a, b = subs
                    return (a is None or a(ins[1])) and (b is None or b(ins[0]))
            return False
        return op_check
    if kind is Const:
        wants_number = p.value is not None or p.where is not None

        def const_check(value):
            node = value.producer
            if node is None:
                return value.kind == "const"
            if node.op != "constant":
                return False
            if not wants_number:
                return True
            array = node.attrs.get("value")
            if not isinstance(array, np.ndarray) or array.size != 1:
                return True
            return p.accepts(splat_number(array))
        return const_check
    if kind is AnyOf:
        alternatives = [compile_prefilter(a, depth) for a in p.alternatives]
        if any(a is None for a in alternatives):
            return None
        return lambda value: any(a(value) for a in alternatives)
    if kind is Assoc:
        # Compiled like Op (this was ``_may_match`` interpreted per node, the largest cost of
        # ``fuse`` on a 100k-node graph: every ``mul`` is a candidate for the GELU patterns).
        op, n = p.op, len(p.operands)
        subs = [compile_prefilter(o, depth - 1) for o in p.operands] if depth > 0 else []
        checks = tuple(c for c in subs if c is not None)  # None accepts any leaf (there are always 2+)

        def assoc_check(value):
            node = value.producer
            if node is None or node.op != op or len(node.inputs) != 2:
                return False
            if not checks:
                return True
            leaves = _assoc_leaves(op, node, n)
            for check in checks:
                for leaf in leaves:
                    if check(leaf):
                        break
                else:
                    return False
            return True
        return assoc_check
    return None


def _assoc_leaves(op: str, root: Node, limit: int) -> list[Value]:
    """Every value that can be a leaf of some split of the ``op`` tree at ``root`` (a superset of
    what :meth:`Assoc._splits` yields: each operand is a leaf, and one-use ``op`` operands expand)."""
    leaves: list[Value] = []
    stack = [(v, limit - 1) for v in root.inputs]
    while stack:
        value, budget = stack.pop()
        leaves.append(value)
        node = value.producer
        if (budget > 0 and node is not None and node.op == op and len(node.inputs) == 2
                and len(value.uses) == 1 and len(node.outputs) == 1):
            stack.extend((v, budget - 1) for v in node.inputs)
    return leaves


def _internal_only(m: Match, root: Node, outs: set[int], dead=()) -> bool:
    inside = {id(n) for n in m.nodes}
    inside.add(id(root))
    for node in m.nodes:
        if node is root:
            continue
        for out in node.outputs:
            if id(out) in outs:
                return False
            for user, _ in out.uses:
                if id(user) not in inside and id(user) not in dead:
                    return False
    return True


def constant_of(m: Match, value: Value):
    """The array of a constant value (``constant`` node or ``const``/param array), if any."""
    array = constant_array(m.graph, value)
    if array is None and value.producer is None:
        array = m.graph.params.get(value.name)
    return array


__all__.append("constant_of")
