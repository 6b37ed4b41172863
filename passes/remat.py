"""Rematerialisation (gradient checkpointing) for the autodiff pass.

``gf.grad`` emits VJP rules that read forward values, so every activation a rule reads lives from
the forward pass until the backward pass reaches it. For the module scopes marked for remat
(``nn.remat(module)``, ``gf.checkpoint(fn)``, or ``gf.grad(..., remat=...)``) this module instead
*recomputes* those values in the backward pass: right before the first backward node that reads a
value of the region, the region's forward nodes are cloned — reading the values the policy saves —
and every backward read is redirected to the clones. The forward originals then die as soon as the
forward pass is done with them, so the peak drops (``gf.memory_report``) at the price of running
the region's forward twice.

Policies (what is *saved*, i.e. not recomputed):

- ``"nothing"``: only the region's inputs; everything inside is recomputed.
- ``"dots"``: also the results of matmul/linear/conv/attention (cheap elementwise work is redone,
  expensive products are kept: JAX's ``checkpoint_dots``).

The recomputation reads its inputs through an ``optimization_barrier`` together with a backward
value of the node it precedes, so neither ``cse`` nor XLA merges it back into the forward pass or
hoists it there (XLA:CPU deletes barriers early in its pipeline unless told not to: the JAX back end
compiles a graph holding them with ``runtimes/jax/xla_options.py: REMAT_CPU_OPTIONS``). ``fit_memory_budget`` (``RematBudget`` for the Trainer) picks the fewest regions to
rematerialise for a peak budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph, Value
from graphforge.trace.builder import Builder

__all__ = ["POLICIES", "SAVED_OPS", "remat_regions", "apply_remat", "region_of", "top_level_scopes",
           "fit_memory_budget", "RematBudget", "scopes_at_depth"]

POLICIES = ("nothing", "dots")
SAVED_OPS = frozenset({"matmul", "linear", "conv2d", "conv_transpose2d", "attention"})


def top_level_scopes(graph: Graph) -> list[str]:
    """The first component of every node scope, in order of first appearance (the model's children)."""
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.scope:
            seen.setdefault(node.scope.split(".")[0], None)
    return list(seen)


def remat_regions(graph: Graph, remat=None) -> dict[str, str]:
    """Scope -> policy: the graph's marks (``graph.remat_scopes``) updated with ``remat``: a policy
    name (every top-level module scope), or a mapping scope -> policy."""
    regions = dict(graph.remat_scopes)
    if isinstance(remat, str):
        regions.update({s: remat for s in top_level_scopes(graph)})
    elif isinstance(remat, Mapping):
        regions.update(remat)
    elif remat not in (None, False):
        raise ConfigError(f"remat={remat!r}: give a policy ({', '.join(POLICIES)}) or a mapping scope -> policy")
    for scope, policy in regions.items():
        if policy not in POLICIES:
            raise ConfigError(f"remat policy {policy!r} for scope {scope!r}: use one of {', '.join(POLICIES)}")
    return regions


def region_of(scope: str, regions: Mapping[str, str]) -> str | None:
    """The innermost marked scope containing ``scope`` (None: not rematerialised)."""
    best = None
    for r in regions:
        if scope == r or scope.startswith(r + "."):
            if best is None or len(r) > len(best):
                best = r
    return best


def _recomputable(node) -> bool:
    return not node.regions and node.op not in ("constant", "optimization_barrier")


def apply_remat(graph: Graph, forward: set[int], regions: Mapping[str, str]) -> int:
    """Rematerialise ``regions`` in a gradient graph whose forward nodes are ``forward`` (ids);
    returns the number of nodes cloned."""
    if not regions:
        return 0
    groups: dict[str, list] = {}
    for node in graph.nodes:
        if id(node) in forward and _recomputable(node):
            r = region_of(node.scope, regions)
            if r is not None:
                groups.setdefault(r, []).append(node)
    builder = Builder(graph, capture_locations=False)
    cloned = 0
    with builder.activate():
        for region, nodes in groups.items():
            cloned += _remat_region(graph, builder, forward, nodes, regions[region])
    return cloned


def _remat_region(graph: Graph, builder: Builder, forward: set[int], nodes: list, policy: str) -> int:
    inside = {id(o): n for n in nodes for o in n.outputs}
    saved = {id(o) for n in nodes if policy == "dots" and n.op in SAVED_OPS for o in n.outputs}

    def backward_reads(v: Value) -> bool:
        return any(id(u) not in forward for u, _ in v.uses)

    # the values the backward pass reads, and (transitively) what recomputing them needs
    wanted = [o for n in nodes for o in n.outputs if id(o) not in saved and backward_reads(o)]
    if not wanted:
        return 0
    need: set[int] = set()
    stack = [v.producer for v in wanted]
    while stack:
        n = stack.pop()
        if id(n) in need:
            continue
        need.add(id(n))
        for v in n.inputs:
            if id(v) in inside and id(v) not in saved:
                stack.append(v.producer)
    recompute = [n for n in nodes if id(n) in need]  # forward order
    wanted_ids = {id(v) for v in wanted}
    # the first backward node reading a wanted value: the recomputation goes right before it
    anchor = next(n for n in graph.nodes if id(n) not in forward and any(id(v) in wanted_ids for v in n.inputs))
    boundary: list[Value] = []
    seen: set[int] = set()
    for n in recompute:
        for v in n.inputs:
            if (id(v) in inside and id(v) not in saved) or id(v) in seen or v.kind == "const":
                continue
            if v.producer is not None and v.producer.op == "constant":
                continue
            seen.add(id(v))
            boundary.append(v)
    # a backward value (a cotangent) the anchor reads: the barrier waits for it
    pin = next((i for i, v in enumerate(anchor.inputs)
                if v.producer is not None and id(v.producer) not in forward and v.producer.op != "constant"), None)
    mapping: dict[int, Value] = {}
    with builder.inserting_before(anchor):
        if boundary or pin is not None:
            through = boundary + ([anchor.inputs[pin]] if pin is not None else [])
            with builder.provenance(recompute[0].scope, recompute[0].loc):
                outs = builder.emit("optimization_barrier", through)
            mapping.update((id(v), o) for v, o in zip(boundary, outs))
            if pin is not None:
                anchor.set_input(pin, outs[-1])
        for n in recompute:
            with builder.provenance(n.scope, n.loc):
                outs = builder.emit(n.op, [mapping.get(id(v), v) for v in n.inputs], n.attrs)
            mapping.update((id(o), c) for o, c in zip(n.outputs, outs))
    clones = {id(c.producer) for c in mapping.values() if c.producer is not None}
    for v in wanted:
        for user, i in list(v.uses):
            if id(user) not in forward and id(user) not in clones:
                user.set_input(i, mapping[id(v)])
    return len(recompute)


@dataclass(frozen=True)
class RematBudget:
    """The "fit a memory budget" policy: ``gf.Trainer(..., remat=RematBudget(2**30, {"batch": 64}))``
    rematerialises the fewest top-level modules (``policy`` each) whose estimated step peak — the
    optimizer state included — fits ``bytes`` (see :func:`fit_memory_budget`)."""

    bytes: int
    dims: Mapping[str, int] = field(default_factory=dict)
    policy: str = "nothing"


def scopes_at_depth(graph: Graph, depth: int) -> list[str]:
    """Every node scope cut to its first ``depth`` components, in order of first appearance."""
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.scope:
            seen.setdefault(".".join(node.scope.split(".")[:depth]), None)
    return list(seen)


def fit_memory_budget(graph: Graph, budget_bytes: int, dims: Mapping[str, int] | None = None, *,
                      policy: str = "nothing", candidates: list[str] | None = None, optimizer_bytes: int = 0,
                      **grad_options):
    """``(grad_graph, regions)``: the gradient graph of ``graph`` (``grad_options`` as for ``gf.grad``)
    rematerialising the fewest module scopes whose estimated peak (``gf.memory_report`` with ``dims``,
    plus ``optimizer_bytes``) fits ``budget_bytes``: the largest activation producers first, among
    ``candidates`` or, by default, the model's modules level by level (the top-level ones, then
    their children, ... — one region recomputed whole cannot lower the peak below its own size).
    ConfigError when no choice fits."""
    from graphforge.memory import _bind, estimate_memory, value_bytes

    from .autodiff import grad

    env = _bind(graph, dict(dims or {}), None)
    depth = max((n.scope.count(".") + 1 for n in graph.nodes if n.scope), default=0)
    levels = [list(candidates)] if candidates is not None else [scopes_at_depth(graph, d) for d in range(1, depth + 1)]
    best = None
    for level in levels:
        size = {c: 0 for c in level}
        for node in graph.nodes:
            r = region_of(node.scope, {c: policy for c in level})
            if r is not None:
                size[r] += sum(value_bytes(o, env) for o in node.outputs)
        order = sorted(level, key=lambda c: -size[c])
        for k in range(len(order) + 1):
            regions = {c: policy for c in order[:k]}
            gg = grad(graph, remat=regions, **grad_options)
            peak = estimate_memory(gg, env, optimizer_bytes=optimizer_bytes).peak_bytes
            if best is None or peak < best[2]:
                best = (gg, regions, peak)
            if peak <= budget_bytes:
                return gg, regions
    raise ConfigError(f"fit_memory_budget: the lowest estimated peak found is {best[2]:,} bytes "
                      f"(rematerialising {len(best[1])} scopes, {policy!r}), over the budget of {budget_bytes:,}",
                      hint="raise the budget, use a smaller batch, or mark finer scopes")
