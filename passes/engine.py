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
from graphforge.ops import registry
from graphforge.trace.tensor import Tensor

from .pattern import AnyOf, Assoc, Const, Op, Rule, Var
from .rewrite import Rewriter, RewriteRefused, can_replace, erase_dead, output_ids, replace_value

__all__ = ["RuleSet", "apply_rules", "MAX_SWEEPS", "signature", "gate"]

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
    # op -> [(rule, its patterns' compiled pre-checks, its reach)]: most candidates fail the
    # pre-check, so it runs here without the cost of a call to Rule.find.
    by_op: dict[str, list] = {}
    reach = _REACH_MARGIN  # the whole set's: the deepest rule's
    for rule in rules:
        checks = rule.prefilters()
        if any(c is None for c in checks):
            checks = None  # some pattern has no pre-check: always ask find
        rule_reach = _rule_reach(rule)
        reach = max(reach, rule_reach)
        for op in rule.root_ops():
            by_op.setdefault(op, []).append((rule, checks, rule_reach))
    # (root op, what produces each operand) -> the candidates whose patterns admit it: most nodes
    # of a graph share a few such signatures, so each is resolved once per run.
    gated: dict[tuple, list] = {}
    if reach >= _UNBOUNDED:
        reach = None  # a pattern class the engine does not know: later sweeps look at every node
    outs = output_ids(graph)
    rw = Rewriter(graph)
    changed = False
    # id of each node to look at -> how many uses below a change it is; None: look at all of them.
    # A rule only needs a second look at nodes within its own reach of a change: with one deep
    # pattern in the set (attention) the set's reach covers most of a graph, the shallow ones
    # (activation into a linear) a few levels.
    pending: dict[int, int] | None = None
    for _ in range(max_sweeps):
        dead: dict[int, object] = {}
        seeds: list = []
        fired = False
        # A snapshot: replacements built in this sweep are looked at in the next one.
        order = list(graph.walk())  # region bodies too: rewrites stay inside their block
        position: dict[int, int] | None = None
        for node in reversed(order):
            if node.op not in by_op or id(node) in dead:
                continue
            key = signature(node)
            candidates = gated.get(key)
            if candidates is None:
                candidates = gated[key] = _gated_candidates(by_op[node.op], *key)
            if not candidates:
                continue
            distance = 0
            if pending is not None:
                distance = pending.get(id(node))
                if distance is None:
                    continue
            first = node.outputs[0] if node.outputs else None
            for rule, checks, rule_reach, indices in candidates:
                if distance > rule_reach:
                    continue
                if checks is not None and first is not None:
                    # find tries only the patterns whose pre-check passed, without running it again
                    if len(checks) == 1:  # most rules: one pattern
                        if not checks[0](first):
                            continue
                        passed = indices
                    else:
                        passed = [i for i, check in zip(indices, checks) if check(first)]
                        if not passed:
                            continue  # no pattern of this rule can match here
                    m = rule.find(node, graph, outs, dead, only=passed, prechecked=True)
                else:
                    m = rule.find(node, graph, outs, dead, only=indices)
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


# The operand token of a value no node produces (a graph input, a parameter, a stored constant).
_KIND_TOKEN = {"input": "<input>", "param": "<param>", "buffer": "<buffer>", "const": "<const>", "arg": "<arg>"}
_CONST_TOKENS = frozenset(("constant", "<const>"))


def signature(node) -> tuple[str, tuple[str, ...]]:
    """``(op, operand tokens)``: what a rule's root and its operands' producers can be checked on."""
    # Every node of a sweep is asked: one- and two-operand nodes (most of them) without the frame of
    # a comprehension.
    ins = node.inputs
    n = len(ins)
    if n == 2:
        a, b = ins
        pa, pb = a.producer, b.producer
        return node.op, (pa.op if pa is not None else _KIND_TOKEN.get(a.kind, a.kind),
                         pb.op if pb is not None else _KIND_TOKEN.get(b.kind, b.kind))
    if n == 1:
        a = ins[0]
        pa = a.producer
        return node.op, (pa.op if pa is not None else _KIND_TOKEN.get(a.kind, a.kind),)
    return node.op, tuple([v.producer.op if v.producer is not None else _KIND_TOKEN.get(v.kind, v.kind)
                           for v in ins])


def _admits(p) -> frozenset | None:
    """The operand tokens (producer op, or a kind token) that pattern ``p`` can match; None: any."""
    kind = type(p)
    if kind is Op:
        return frozenset(p.ops)
    if kind is Const:
        return _CONST_TOKENS
    if kind is Assoc:
        return frozenset((p.op,))
    if kind is AnyOf:
        sets = [_admits(a) for a in p.alternatives]
        return None if any(a is None for a in sets) else frozenset().union(*sets)
    return None  # Var, or a pattern class the engine does not know


def gate(p, root_op: str, tokens: tuple) -> bool:
    """Whether pattern ``p`` can match a node ``root_op(tokens...)`` at its root's operands alone
    (a necessary condition, like the compiled pre-check one level deep)."""
    kind = type(p)
    if kind is AnyOf:
        return any(gate(alt, root_op, tokens) for alt in p.alternatives)
    if kind is Assoc:
        if root_op != p.op or len(tokens) != 2:
            return False
        if p.op in tokens:
            return True  # an operand may expand: the leaves are further up
        if len(p.operands) != 2:
            return False  # the two operands are the only split, and it has too few leaves
        allowed = [_admits(sub) for sub in p.operands]
        return ((allowed[0] is None or tokens[0] in allowed[0]) and (allowed[1] is None or tokens[1] in allowed[1])
                or (allowed[0] is None or tokens[1] in allowed[0]) and (allowed[1] is None or tokens[0] in allowed[1]))
    if kind is not Op:
        return True  # a pattern class the engine does not know: the pre-check and find decide
    if root_op not in p.ops or len(tokens) != len(p.inputs):
        return False
    allowed = [_admits(sub) for sub in p.inputs]
    if all(a is None or t in a for a, t in zip(allowed, tokens)):
        return True
    if len(tokens) == 2:
        commutative = p.commutative
        if commutative is None:
            opdef = registry.lookup_op(root_op)
            commutative = opdef is not None and bool(opdef.commutative)
        if commutative:
            return (allowed[0] is None or tokens[1] in allowed[0]) and (allowed[1] is None or tokens[0] in allowed[1])
    return False


def _gated_candidates(candidates: list, root_op: str, tokens: tuple) -> list:
    """The ``(rule, checks, reach, indices)`` candidates with a pattern that passes :func:`gate`:
    ``indices`` are those patterns' positions in the rule, ``checks`` their pre-checks."""
    out = []
    for rule, checks, rule_reach in candidates:
        passing = [gate(p, root_op, tokens) for p in rule.patterns]
        if not any(passing):
            continue
        indices = tuple(i for i, ok in enumerate(passing) if ok)
        if checks is not None:
            checks = [checks[i] for i in indices]
        out.append((rule, checks, rule_reach, indices))
    return out


# Rules' checks may look a level or two beyond their pattern (a weight's producer, a value's users).
_REACH_MARGIN = 2
_UNBOUNDED = 1 << 30  # the reach of a rule whose pattern depth is unknown


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


def _rule_reach(rule: Rule) -> int:
    """How many uses below a change a match of ``rule`` can be rooted (:data:`_UNBOUNDED` when a
    pattern class is one the engine does not know)."""
    depth = 0
    for pattern in rule.patterns:
        d = _pattern_depth(pattern)
        if d is None:
            return _UNBOUNDED
        depth = max(depth, d)
    return depth + _REACH_MARGIN


def _downstream(seeds: list, reach: int) -> dict[int, int]:
    """Id -> distance of ``seeds`` (0) and of every node at most ``reach`` uses below one of them
    (the fewest uses from any seed: a breadth-first walk)."""
    unique = {id(n): n for n in seeds}  # a shared constant is a seed once per rewrite that read it
    found = dict.fromkeys(unique, 0)
    frontier = list(unique.values())
    for distance in range(1, reach + 1):
        nxt = []
        for node in frontier:
            for out in node.outputs:
                for user, _ in out.uses:
                    if id(user) not in found:
                        found[id(user)] = distance
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
