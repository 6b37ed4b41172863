"""``gf.summary(graph)``: a Keras/torchinfo-style table per module scope (with the activation memory
live at the estimated peak, :mod:`graphforge.memory`)."""
from __future__ import annotations

from .errors import GraphforgeError
from .ir.dims import dim_symbols
from .ir.graph import Graph
from .ir.types import TensorType
from .ops.registry import get_op

__all__ = ["summary", "graph_flops", "node_flops"]


def _bind_ones(t: TensorType) -> TensorType:
    env = {}
    for d in t.shape:
        for s in dim_symbols(d):
            env[s] = 1
    return TensorType(t.concrete(env), t.dtype)


def node_flops(node) -> int:
    """FLOPs of one node with every symbolic dim set to 1 (i.e. per example). A control-flow node
    adds its regions: a scan its trip count × the body, a while_loop ``max_iterations`` × (cond +
    body) when bounded (once when the trip count is unknown), a cond its costlier branch."""
    if node.op == "yield":
        return 0
    opdef = get_op(node.op)
    own = 0
    if opdef.flops is not None:
        ins = [_bind_ones(v.type) for v in node.inputs]
        outs = [_bind_ones(v.type) for v in node.outputs]
        own = int(opdef.flops(ins, outs, node.attrs))
    if not node.regions:
        return own
    per_region = [sum(node_flops(n) for n in region) for region in node.regions]
    if node.op == "scan":
        length = node.attrs.get("length", 1)
        if isinstance(length, str):  # symbolic: per example, like every other dim
            length = TensorType((length,), "float32").concrete({s: 1 for s in dim_symbols(length)})[0]
        return own + int(length) * sum(per_region)
    if node.op == "while_loop":
        limit = node.attrs.get("max_iterations", -1)
        return own + (limit if limit >= 0 else 1) * sum(per_region)
    return own + max(per_region)


def graph_flops(graph: Graph) -> int:
    return sum(node_flops(n) for n in graph.nodes)


def _numel(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= int(d)
    return n


def summary(graph: Graph, print_fn=print) -> str:
    """Print (and return) output shape, parameter count and FLOPs for each module scope.

    Args:
        graph: a traced ``gf.Graph``.
        print_fn: called with the table's text (``print`` by default; ``lambda s: None`` to only return it).

    Returns:
        The table as text.

    Raises:
        InputError: ``graph`` is not a ``gf.Graph`` (e.g. an untraced module).

    Example:
        ```python
        text = gf.summary(g, print_fn=lambda s: None)
        ```
    """
    from .runtime import require_graph

    graph = require_graph(graph, "gf.summary")
    rows: dict[str, dict] = {}
    for node in graph.nodes:
        row = rows.setdefault(node.scope or "(root)", {"ops": [], "out": None, "flops": 0, "params": set()})
        row["ops"].append(node.op)
        row["out"] = node.outputs[0].type
        row["flops"] += node_flops(node)
        for v in node.inputs:
            if v.kind in ("param", "buffer"):
                row["params"].add(v.name)
    # memory: liveness estimate for one example (every symbolic dim bound to 1), see gf.memory_report
    from .memory import estimate_memory, format_bytes

    try:
        mem = estimate_memory(graph, default_dim=1)
    except GraphforgeError:  # a dim expression that has no size at 1 (e.g. seq-2): no estimate
        mem = None
    header = ("Scope", "Ops", "Output", "Act. mem", "Params", "FLOPs")
    table = []
    for scope, row in rows.items():
        ops = sorted(set(row["ops"]), key=row["ops"].index)
        nparams = sum(_numel(graph.param_values[n].type) for n in row["params"] if graph.param_values[n].kind == "param")
        act = mem.by_scope.get(scope, {}).get("activations", 0) if mem is not None else 0
        table.append((scope, ",".join(ops)[:32], str(row["out"]), format_bytes(act), f"{nparams:,}",
                      f"{row['flops']:,}"))
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    rule = "-" * len(line)
    out = [f"graph {graph.name}: " + ", ".join(f"{v.name}: {v.type}" for v in graph.inputs), rule, line, rule]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    trainable = sum(_numel(v.type) for v in graph.param_values.values() if v.kind == "param")
    other = sum(_numel(v.type) for v in graph.param_values.values() if v.kind != "param")
    out += [rule, f"Trainable params: {trainable:,}   Non-trainable: {other:,}   "
                  f"FLOPs per example: {graph_flops(graph):,}   Nodes: {len(graph.nodes)}"]
    if mem is not None:
        out.append(f"Estimated peak memory (inference, one example): {format_bytes(mem.peak_bytes)} = params "
                   f"{format_bytes(mem.param_bytes)} + inputs {format_bytes(mem.input_bytes)} + activations "
                   f"{format_bytes(mem.activation_peak_bytes)} (gf.memory_report for a batch or a Trainer)")
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
