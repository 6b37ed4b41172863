"""The one rewrite engine: runs sets of declarative :class:`~graphforge.passes.pattern.Rule`\\ s.

``simplify`` (rules in :mod:`graphforge.passes.simplify_rules`) and ``fuse`` (rules in
:mod:`graphforge.passes.fusion`) are both :func:`apply_rules` over a :class:`RuleSet`; rule sets
compose with ``+`` (``SIMPLIFY + FUSION`` runs both families in one engine run).

Nodes are visited consumers-first (reverse topological order), so the largest pattern rooted at a
node wins over a smaller one inside it; sweeps repeat until no rule fires (at most ``max_sweeps``),
so a rule can build on another's result (``softmax`` → ``attention``). Each rewrite builds its
replacement right before the root node (it reads only values defined before the root), redirects the
root's uses and erases what became dead — the graph stays in topological order, no re-sort. Matches
per rule are counted in the ``stats`` dict the caller passes (per run; nothing global). One sweep is
linear in the graph size."""
from __future__ import annotations

from typing import Iterable, Iterator

from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph
from graphforge.trace.tensor import Tensor

from .pattern import AnyOf, Assoc, Const, Op, Rule, Var
from .rewrite import Rewriter, RewriteRefused, can_replace, erase_dead, output_ids, replace_value

__all__ = ["RuleSet", "apply_rules", "MAX_SWEEPS"]

MAX_SWEEPS = 8


class RuleSet:
    """An ordered, named collection of rules. Order matters only between rules rooted at the same
    op (bigger patterns first). ``a + b`` is a rule set with ``a``'s rules, then ``b``'s."""

    def __init__(self, name: str, rules: Iterable[Rule] = ()):
        self.name = name
        self.rules: list[Rule] = []
        for rule in rules:
            self.add(rule)

    def add(self, rule: Rule) -> Rule:
        if not isinstance(rule, Rule):
            raise TypeError(f"a RuleSet holds pattern.Rule objects, got {type(rule).__name__}")
        if any(r.name == rule.name for r in self.rules):
            raise ValueError(f"rule set {self.name!r} already has a rule named {rule.name!r}")
        self.rules.append(rule)
        return rule

    def __add__(self, other: "RuleSet | Iterable[Rule]") -> "RuleSet":
        other_name = other.name if isinstance(other, RuleSet) else "rules"
        return RuleSet(f"{self.name}+{other_name}", list(self.rules) + list(other))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __getitem__(self, index):
        return self.rules[index]

    def get(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule named {name!r} in rule set {self.name!r}; it has "
                       f"{', '.join(r.name for r in self.rules)}")

    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, {len(self.rules)} rules)"


def _values(result):
    if isinstance(result, (list, tuple)):
        return [r.value if isinstance(r, Tensor) else r for r in result]
    return [result.value if isinstance(result, Tensor) else result]


def apply_rules(graph: Graph, rules: Iterable[Rule], *, max_sweeps: int = MAX_SWEEPS,
                stats: dict[str, int] | None = None) -> bool:
    """Rewrite ``graph`` in place with ``rules`` until none fires (or ``max_sweeps`` sweeps).

    Returns whether anything changed; ``stats`` (if given) gains ``rule name → matches``.

    The first sweep looks at every node; later sweeps only at nodes a rewrite could have given a new
    match: those within the rules' reach downstream of what changed (new nodes, nodes reading a
    replacement, producers whose use lists shrank). A match rooted at a node covers only nodes a few
    levels above it, so no other node's matches can have changed."""
    rules = [r for r in rules if r.available]
    # op -> [(rule, its patterns' compiled pre-checks)]: most candidates fail the pre-check, so it
    # runs here without the cost of a call to Rule.find.
    by_op: dict[str, list] = {}
    for rule in rules:
        checks = rule.prefilters()
        if any(c is None for c in checks):
            checks = None  # some pattern has no pre-check: always ask find
        for op in rule.root_ops():
            by_op.setdefault(op, []).append((rule, checks))
    reach = _reach(rules)
    outs = output_ids(graph)
    rw = Rewriter(graph)
    changed = False
    pending: set[int] | None = None  # ids of the nodes to look at; None: all of them
    for _ in range(max_sweeps):
        dead: dict[int, object] = {}
        seeds: list = []
        fired = False
        # A snapshot: replacements built in this sweep are looked at in the next one.
        order = list(graph.walk())  # region bodies too: rewrites stay inside their block
        position: dict[int, int] | None = None
        for node in reversed(order):
            candidates = by_op.get(node.op)
            if not candidates or id(node) in dead or (pending is not None and id(node) not in pending):
                continue
            first = node.outputs[0] if node.outputs else None
            for rule, checks in candidates:
                if checks is not None and first is not None:
                    for check in checks:
                        if check(first):
                            break
                    else:
                        continue  # no pattern of this rule can match here
                m = rule.find(node, graph, outs, dead)
                if m is None:
                    continue
                if position is None and rule.provenance == "merged":  # the order of merged locations
                    position = {id(n): i for i, n in enumerate(order)}
                if _rewrite(graph, rw, rule, m, node, position, outs, dead, seeds):
                    if stats is not None:
                        stats[rule.name] = stats.get(rule.name, 0) + 1
                    fired = changed = True
                    break
        if dead:
            for node in dead.values():  # their inputs lose a use: matches below them may change
                seeds.extend(v.producer for v in node.inputs if v.producer is not None)
            graph.remove_nodes(dead.values())
        if not fired:
            break
        pending = None if reach is None else _downstream(seeds, reach)
    return changed


# Rules' checks may look a level or two beyond their pattern (a weight's producer, a value's users).
_REACH_MARGIN = 2


def _pattern_depth(p) -> int | None:
    """How many levels of producers a pattern covers above its root (None: unknown)."""
    kind = type(p)
    if kind in (Var, Const):
        return 0
    if kind is Op:
        inner = [_pattern_depth(i) for i in p.inputs]
        return None if None in inner else 1 + max(inner, default=0)
    if kind is AnyOf:
        inner = [_pattern_depth(a) for a in p.alternatives]
        return None if None in inner else max(inner, default=0)
    if kind is Assoc:
        inner = [_pattern_depth(o) for o in p.operands]
        return None if None in inner else len(p.operands) - 1 + max(inner, default=0)
    return None


def _reach(rules: list[Rule]) -> int | None:
    depth = 0
    for rule in rules:
        for pattern in rule.patterns:
            d = _pattern_depth(pattern)
            if d is None:
                return None  # a pattern class the engine does not know: look at every node again
            depth = max(depth, d)
    return depth + _REACH_MARGIN


def _downstream(seeds: list, reach: int) -> set[int]:
    """Ids of ``seeds`` and of every node at most ``reach`` uses below one of them."""
    unique = {id(n): n for n in seeds}  # a shared constant is a seed once per rewrite that read it
    found = set(unique)
    frontier = list(unique.values())
    for _ in range(reach):
        nxt = []
        for node in frontier:
            for out in node.outputs:
                for user, _ in out.uses:
                    if id(user) not in found:
                        found.add(id(user))
                        nxt.append(user)
        if not nxt:
            break
        frontier = nxt
    return found


def _rewrite(graph, rw: Rewriter, rule: Rule, m, node, position, outs, dead, seeds) -> bool:
    absorbed = [node] + [n for n in m.nodes if n is not node]
    if position is not None:
        absorbed.sort(key=lambda n: position.get(id(n), len(position)))
    try:
        with rw.at([node] if rule.provenance == "root" else absorbed, before=node):
            new = _values(rule.build(m, rw))
            if len(new) != len(node.outputs) or any(a.type != b.type for a, b in zip(new, node.outputs)):
                raise GraphforgeError(f"rule {rule.name} built {', '.join(str(v.type) for v in new)} for "
                                      f"{', '.join(str(o.type) for o in node.outputs)}")
    except RewriteRefused:
        return False
    if not all(can_replace(graph, old, v, outs) for old, v in zip(node.outputs, new)) or all(
            old is v for old, v in zip(node.outputs, new)):
        rw.undo()
        return False
    for old, v in zip(node.outputs, new):
        replace_value(graph, old, v, outs)
    # What the next sweep must look at: the new nodes, the readers of the replacements (their inputs
    # changed), and the producers of what the match read (their use lists changed).
    seeds.extend(rw.emitted)
    for v in new:
        seeds.extend(user for user, _ in v.uses)
        if v.producer is not None:
            seeds.append(v.producer)
    for n in absorbed:
        seeds.extend(v.producer for v in n.inputs if v.producer is not None)
    erase_dead(graph, absorbed, outs, dead)
    return True
