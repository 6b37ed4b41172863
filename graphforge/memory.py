"""``gf.memory_report``: a peak-memory estimate from the IR, per module scope.

The estimate is liveness over the scheduled graph (the node order is the schedule): a node's
results are allocated when it runs and freed after their last use (graph outputs live to the end);
parameters, buffers, constants and graph inputs live throughout; the optimizer state is added
when known (a Trainer's, or ``optimizer_slots`` float32 copies of every trainable parameter, e.g.
2 for Adam). Elementwise chains are counted as a back end such as XLA runs them: a result of an
elementwise op whose every consumer is elementwise too is *fused* (never materialised) — the
number being estimated is what a fusing compiler allocates, not what an interpreter would.
``optimization_barrier`` results are counted as the values they pass through (no new buffer).

The peak is reported with the node where it happens and, per module scope, the parameter bytes
and the activation bytes live at the peak (by the scope of the node that produced them). Symbolic
dims must be bound (``gf.memory_report(g, batch=128)``); ``gf.summary`` shows the estimate for one
example (every symbol bound to 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import dtypes as _dt
from .errors import InputError
from .ir.dims import dim_symbols
from .ir.graph import Graph
from .ops.registry import lookup_op

__all__ = ["MemoryReport", "estimate_memory", "value_bytes", "fusable_values", "format_bytes"]


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def value_bytes(value, env) -> int:
    """Bytes of ``value``'s tensor with symbolic dims bound by ``env``."""
    shape = value.type.concrete(env)
    return int(np.prod(shape, dtype=np.int64)) * _dt.to_numpy_dtype(value.type.dtype).itemsize


def _elementwise(node) -> bool:
    opdef = lookup_op(node.op)
    return bool(opdef is not None and opdef.elementwise and not node.regions)


def fusable_values(graph: Graph) -> set[int]:
    """ids of results a fusing back end does not materialise: produced by an elementwise op and
    read only by elementwise ops (not a graph output)."""
    outputs = {id(o) for o in graph.outputs}
    fused = set()
    for node in graph.nodes:
        if not _elementwise(node):
            continue
        for o in node.outputs:
            if o.uses and id(o) not in outputs and all(_elementwise(user) for user, _ in o.uses):
                fused.add(id(o))
    return fused


@dataclass
class MemoryReport:
    """Peak estimate in bytes: ``peak_bytes = param_bytes + optimizer_bytes + input_bytes +
    activation_peak_bytes``. ``by_scope``: scope -> {"params": bytes, "activations": bytes live at
    the peak}. ``timeline``: live activation bytes after each node (schedule order)."""

    graph_name: str
    dims: dict
    param_bytes: int
    optimizer_bytes: int
    input_bytes: int
    activation_peak_bytes: int
    peak_node: str
    by_scope: dict = field(default_factory=dict)
    timeline: list = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return self.param_bytes + self.optimizer_bytes + self.input_bytes + self.activation_peak_bytes

    def __str__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        rows = sorted(self.by_scope.items(), key=lambda kv: -(kv[1]["params"] + kv[1]["activations"]))
        width = max([len("Scope")] + [len(s) for s, _ in rows])
        out = [f"memory estimate of {self.graph_name}" + (f" ({dims})" if dims else ""),
               f"{'Scope'.ljust(width)}  {'Params':>12}  {'Activations at peak':>20}"]
        out += [f"{s.ljust(width)}  {format_bytes(r['params']):>12}  {format_bytes(r['activations']):>20}"
                for s, r in rows]
        out += [f"params {format_bytes(self.param_bytes)} + optimizer state {format_bytes(self.optimizer_bytes)} + "
                f"inputs {format_bytes(self.input_bytes)} + activations {format_bytes(self.activation_peak_bytes)} "
                f"= peak {format_bytes(self.peak_bytes)} (at {self.peak_node})"]
        return "\n".join(out)


def _bind(graph: Graph, dims: dict, default: int | None) -> dict:
    symbols = set()
    for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]:
        for d in v.type.shape:
            symbols.update(dim_symbols(d))
    env = {k: int(v) for k, v in dims.items()}
    missing = sorted(symbols - set(env))
    if missing and default is None:
        raise InputError(f"gf.memory_report: symbolic dims {', '.join(missing)} of graph {graph.name!r} need sizes",
                         hint=f"bind them, e.g. gf.memory_report(g, {missing[0]}=128)")
    env.update({s: default for s in missing})
    return env


def _param_scope(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else "(root)"


def estimate_memory(graph: Graph, dims: dict | None = None, *, optimizer_bytes: int | None = None,
                    optimizer_slots: int = 0, default_dim: int | None = None) -> MemoryReport:
    """The :class:`MemoryReport` of ``graph`` with symbolic dims bound by ``dims``."""
    env = _bind(graph, dict(dims or {}), default_dim)
    by_scope: dict[str, dict] = {}
    params = trainable = 0
    for name, v in graph.param_values.items():
        if not v.uses and not graph.is_output(v):
            continue
        b = value_bytes(v, env)
        params += b
        if v.kind == "param":
            trainable += 4 * int(np.prod(v.type.concrete(env), dtype=np.int64))
        by_scope.setdefault(_param_scope(name), {"params": 0, "activations": 0})["params"] += b
    if optimizer_bytes is None:
        optimizer_bytes = optimizer_slots * trainable
    inputs = sum(value_bytes(v, env) for v in graph.inputs)
    fused = fusable_values(graph)
    nodes = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(nodes)}
    end = len(nodes)
    # an optimization_barrier's results are its inputs (no new buffer): they extend the inputs' lives
    alias: dict[int, object] = {}
    for node in nodes:
        if node.op == "optimization_barrier":
            for v, o in zip(node.inputs, node.outputs):
                alias[id(o)] = alias.get(id(v), v)
    last_use: dict[int, int] = {}
    for i, node in enumerate(nodes):
        for v in node.inputs:
            root = alias.get(id(v), v)
            last_use[id(root)] = max(last_use.get(id(root), i), i)
    outputs = {id(alias.get(id(o), o)) for o in graph.outputs}
    frees: dict[int, list] = {}
    for i, node in enumerate(nodes):
        for o in node.outputs:
            if id(o) in fused or id(o) in alias:
                continue
            last = end if id(o) in outputs else last_use.get(id(o), i)
            frees.setdefault(last, []).append(o)
    live: dict[int, tuple] = {}
    current = peak = 0
    peak_at, peak_live, timeline = "(no nodes)", {}, []
    for i, node in enumerate(nodes):
        for o in node.outputs:
            if id(o) not in fused and id(o) not in alias:
                b = value_bytes(o, env)
                live[id(o)] = (b, node.scope or "(root)")
                current += b
        if current > peak:  # the node's inputs are still live while it runs
            peak, peak_live = current, dict(live)
            peak_at = f"{node.op} @ {node.scope or '(root)'}" + (f" ({node.loc})" if node.loc else "")
        for o in frees.pop(i, ()):
            if id(o) not in outputs:
                current -= live.pop(id(o))[0]
        timeline.append(current)
    for b, scope in peak_live.values():
        by_scope.setdefault(scope, {"params": 0, "activations": 0})["activations"] += b
    return MemoryReport(graph.name, {k: v for k, v in env.items()}, params, int(optimizer_bytes), inputs, peak,
                        peak_at, by_scope, timeline)
