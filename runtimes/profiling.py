"""``gf.profile``: where the time goes, per node, module scope and user ``file:line``.

Two back ends, each measured the way that is accurate for it:

Time is per run (mean over ``repeat`` runs after ``warmup``); bytes are what each unit writes
(onnxruntime's ``output_size``; JAX: the region's results).

- ``onnxruntime``: its own profiler (``SessionOptions.enable_profiling``). Every kernel event
  names the ONNX node, and graphforge's ONNX node names are ``scope/OnnxOp_N`` with
  ``doc_string = "scope @ file:line"``, so events join back to the user's code by node name
  (a node onnxruntime fused keeps the name of the node it started from: matched by prefix).
- ``jax``: XLA fuses across nodes, so per-HLO-op timings would not map back to graph nodes. The
  graph is cut into *timed regions* — maximal runs of consecutive nodes with the same scope and
  source line — each compiled on its own with ``jax.jit`` and run in order with
  ``block_until_ready``; a region's time (median over ``repeat`` runs, minus the measured cost of
  dispatching an empty jitted call) is its nodes' time. Fusion inside a region is kept; fusion
  across regions is lost, so the sum can exceed the time of the whole jitted graph (reported
  beside it as ``total_ms``).

The result, :class:`ProfileReport`, rolls the rows up per scope (``by_scope(depth)``) and per
``file:line`` (``by_location()``), prints a sorted table (``str(report)``), writes a Chrome/Perfetto
trace (``chrome_trace(path)``, open it in ui.perfetto.dev or chrome://tracing) and a PNG bar chart
(``plot(path)``, matplotlib).
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph
from graphforge.ir.types import TensorSpec
from graphforge.memory import format_bytes

__all__ = ["profile", "ProfileReport", "ProfileRow"]

BACKENDS = ("jax", "onnxruntime")


@dataclass
class ProfileRow:
    """One timed unit: a region of nodes (JAX) or one ONNX kernel (onnxruntime)."""

    name: str
    ops: str
    scope: str
    loc: str
    time_us: float  # mean per run
    start_us: float = 0.0  # offset inside one run (for the trace)
    bytes: int = 0  # bytes the unit writes (onnxruntime's output_size; JAX: its results' sizes)


@dataclass
class ProfileReport:
    backend: str
    graph_name: str
    rows: list = field(default_factory=list)
    total_ms: float = 0.0  # one run of the whole graph, as the back end runs it normally
    repeat: int = 0

    def _group(self, key) -> list[tuple[str, float, int]]:
        acc: dict[str, list] = {}
        for r in self.rows:
            a = acc.setdefault(key(r), [0.0, 0])
            a[0] += r.time_us
            a[1] += 1
        return sorted(((k, t, n) for k, (t, n) in acc.items()), key=lambda x: -x[1])

    def _bytes(self, key) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[key(r)] = out.get(key(r), 0) + r.bytes
        return out

    @staticmethod
    def _scope_key(depth):
        def key(r):
            s = r.scope or "(root)"
            return ".".join(s.split(".")[:depth]) if depth else s
        return key

    @staticmethod
    def _loc_key(r):
        return (r.loc or "(unknown)").split(";")[0]

    def by_scope(self, depth: int | None = None) -> list[tuple[str, float, int]]:
        """``[(scope, microseconds, rows)]``, slowest first; ``depth`` truncates scopes to their
        first components (``depth=1``: the model's top-level modules)."""
        return self._group(self._scope_key(depth))

    def by_location(self) -> list[tuple[str, float, int]]:
        """``[(file:line, microseconds, rows)]``, slowest first (fused nodes: their first line)."""
        return self._group(self._loc_key)

    @property
    def measured_us(self) -> float:
        return sum(r.time_us for r in self.rows)

    def table(self, by: str = "scope", top: int = 20) -> str:
        groups = self.by_location() if by == "location" else self.by_scope()
        written = self._bytes(self._loc_key if by == "location" else self._scope_key(None))
        total = self.measured_us or 1.0
        width = max([len(by)] + [len(k) for k, _, _ in groups[:top]])
        lines = [f"profile of {self.graph_name} on {self.backend} ({self.repeat} runs; whole graph "
                 f"{self.total_ms:.3f} ms, timed units {total / 1e3:.3f} ms)",
                 f"{by.ljust(width)}  {'time (ms)':>10}  {'share':>6}  {'units':>5}  {'written':>10}"]
        lines += [f"{k.ljust(width)}  {t / 1e3:10.4f}  {100 * t / total:5.1f}%  {n:5d}  "
                  f"{format_bytes(written.get(k, 0)):>10}" for k, t, n in groups[:top]]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table("scope") + "\n\n" + self.table("location")

    def chrome_trace(self, path: str) -> str:
        """Write a Chrome trace-event JSON of one run (each unit a complete event)."""
        events = [{"name": r.name, "cat": r.ops, "ph": "X", "ts": r.start_us, "dur": r.time_us, "pid": 0,
                   "tid": 0, "args": {"scope": r.scope, "loc": r.loc, "ops": r.ops, "bytes": r.bytes}}
                  for r in self.rows]
        meta = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"graphforge {self.backend}"}}]
        _atomic_write(path, json.dumps({"traceEvents": meta + events, "displayTimeUnit": "ms"}))
        return path

    def plot(self, path: str, by: str = "scope", top: int = 15) -> str:
        """Write a horizontal bar chart (PNG) of the slowest scopes (or ``by="location"``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = (self.by_location() if by == "location" else self.by_scope())[:top][::-1]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(groups) + 1.2))
        ax.barh([k for k, _, _ in groups], [t / 1e3 for _, t, _ in groups], color="#4a7ab5")
        ax.set_xlabel("time per run (ms)")
        ax.set_title(f"{self.graph_name} on {self.backend}: time per {by}")
        fig.tight_layout()
        tmp = path + ".tmp.png"
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        return path


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- entry point ------------------------------------------------------------------------------------

def _as_graph(model, arrays: list) -> Graph:
    if isinstance(model, Graph):
        return model
    from graphforge.dtypes import from_numpy_dtype
    from graphforge.trace.tracer import trace

    specs = [TensorSpec(np.shape(a), from_numpy_dtype(np.asarray(a).dtype)) for a in arrays]
    return trace(model, *specs, training=False)


def profile(model_or_graph, inputs, backend: str = "jax", *, repeat: int = 10, warmup: int = 2) -> ProfileReport:
    """Profile one forward run of ``model_or_graph`` (a Graph, or an ``nn.Module``/function traced
    in eval mode for the inputs' shapes) on ``inputs`` (an array, a list, or a dict by input name)."""
    if backend not in BACKENDS:
        raise ConfigError(f"gf.profile: backend {backend!r} is not profiled; use one of {', '.join(BACKENDS)}")
    if repeat < 1 or warmup < 0:
        raise ConfigError("gf.profile: repeat must be >= 1 and warmup >= 0")
    from graphforge.runtime import bind_inputs

    raw = list(inputs.values()) if isinstance(inputs, dict) else inputs
    raw = [raw] if isinstance(raw, np.ndarray) or np.isscalar(raw) else list(raw)
    graph = _as_graph(model_or_graph, raw)
    arrays, env = bind_inputs(graph, inputs if isinstance(inputs, dict) else raw)
    if backend == "onnxruntime":
        return _profile_ort(graph, arrays, repeat, warmup)
    return _profile_jax(graph, arrays, env, repeat, warmup)


# ---- onnxruntime -------------------------------------------------------------------------------------

def _profile_ort(graph: Graph, arrays, repeat: int, warmup: int) -> ProfileReport:
    import onnxruntime as ort

    from graphforge.runtimes.onnx import to_onnx

    proto = to_onnx(graph, provenance=True)  # (node names map onnxruntime's events to scopes)
    prov = {}
    for node in proto.graph.node:
        doc = node.doc_string
        scope, loc = doc.split(" @ ", 1) if " @ " in doc else ("", doc)  # no scope: just the location
        prov[node.name] = (scope, loc, node.op_type)
    names = sorted(prov, key=len, reverse=True)
    feeds = {i.name: a for i, a in zip(proto.graph.input, arrays)}
    with tempfile.TemporaryDirectory(prefix="graphforge-profile-") as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            sess.run(None, feeds)
        t0 = time.perf_counter()
        for _ in range(repeat):
            sess.run(None, feeds)
        total_ms = 1e3 * (time.perf_counter() - t0) / repeat
        with open(sess.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    # only the timed runs (the warm-up ones come first)
    start = runs[warmup]["ts"] if len(runs) > warmup else 0
    acc: dict[str, list] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        name = e["name"][: -len("_kernel_time")]
        if name.startswith("fused "):  # onnxruntime's name for a node it fused others into
            name = name[len("fused "):]
        args = e.get("args", {})
        a = acc.setdefault(name, [0.0, args.get("op_name", ""), e["ts"], int(args.get("output_size", 0) or 0)])
        a[0] += e["dur"]
    rows = []
    t = 0.0
    for name, (dur, op, _, nbytes) in sorted(acc.items(), key=lambda kv: kv[1][2]):
        match = prov.get(name) or next((prov[n] for n in names if name.startswith(n)), None)
        scope, loc, _ = match or (name.split("/")[0] if "/" in name else "(onnxruntime)", "", op)
        rows.append(ProfileRow(name, op, scope, loc, dur / repeat, t, nbytes))
        t += dur / repeat
    return ProfileReport("onnxruntime", graph.name, rows, total_ms, repeat)


# ---- JAX: timed regions ------------------------------------------------------------------------------

def _regions(nodes) -> list[list]:
    out: list[list] = []
    for node in nodes:
        if out and (out[-1][0].scope, out[-1][0].loc) == (node.scope, node.loc):
            out[-1].append(node)
        else:
            out.append([node])
    return out


def _median_us(fn, args, repeat: int, warmup: int) -> float:
    import jax

    for _ in range(max(warmup, 1)):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def _profile_jax(graph: Graph, arrays, env, repeat: int, warmup: int) -> ProfileReport:
    import jax
    import jax.numpy as jnp

    from graphforge.ir.dims import resolve_shape
    from graphforge.runtimes.jax import compile_graph, prepared, x64
    from graphforge.runtimes.jax import _concrete_attrs  # noqa: PLC2701 - the same attrs lower() uses
    from graphforge.runtimes.jax.lower import LOWERINGS, LowerCtx

    with x64():
        whole = compile_graph(graph, arrays, env, precision="default")
        params = {n: jnp.asarray(a) for n, a in graph.params.items()}
        dev_inputs = tuple(jnp.asarray(a) for a in arrays)
        total_ms = _median_us(whole, (params, dev_inputs), repeat, warmup) / 1e3
        work, _ = prepared(graph)  # what compile_graph lowers (decompositions, loop_weights)
        vals: dict[int, object] = {id(v): x for v, x in zip(work.inputs, dev_inputs)}
        vals.update((id(v), jnp.asarray(work.params[n])) for n, v in work.param_values.items())
        empty = jax.jit(lambda x: x)
        overhead = _median_us(empty, (jnp.zeros(()),), repeat, warmup)
        regions = _regions(list(work.nodes))
        later_uses: dict[int, int] = {}
        for i, region in enumerate(regions):
            for n in region:
                for v in n.inputs:
                    later_uses[id(v)] = i
        outputs = {id(o) for o in work.outputs}
        rows, t = [], 0.0
        for i, region in enumerate(regions):
            produced = {id(o) for n in region for o in n.outputs}
            ins = []
            for n in region:
                for v in n.inputs:
                    if id(v) not in produced and all(v is not w for w in ins):
                        ins.append(v)
            outs = [o for n in region for o in n.outputs if id(o) in outputs or later_uses.get(id(o), -1) > i]
            plan = [(n, LowerCtx(n, [tuple(resolve_shape(o.type.shape, env)) for o in n.outputs], None),
                     _concrete_attrs(n, env)) for n in region]

            def run_region(*xs, plan=plan, ins=ins, outs=outs):
                local = {id(v): x for v, x in zip(ins, xs)}
                for n, ctx, attrs in plan:
                    for o, r in zip(n.outputs, LOWERINGS[n.op](ctx, [local[id(v)] for v in n.inputs], attrs)):
                        local[id(o)] = r
                return tuple(local[id(o)] for o in outs)

            fn = jax.jit(run_region)
            args = tuple(vals[id(v)] for v in ins)
            us = max(_median_us(fn, args, repeat, warmup) - overhead, 0.0)
            results = fn(*args)
            for o, r in zip(outs, results):
                vals[id(o)] = r
            head = region[0]
            ops = ",".join(dict.fromkeys(n.op for n in region))
            nbytes = sum(int(r.nbytes) for r in results)
            rows.append(ProfileRow(f"{head.scope or '(root)'}/{ops}", ops, head.scope, head.loc, us, t, nbytes))
            t += us
    return ProfileReport("jax", graph.name, rows, total_ms, repeat)
