"""Differential oracles for generated graphs: back ends plug in by name.

For one :class:`~fuzz.gen.FuzzCase` ``check_case`` runs

* the float64 twin on the reference interpreter (the oracle);
* the float32 graph on every back end (reference, JAX op by op, JAX jitted through ``gf.run``,
  onnxruntime once ``graphforge.runtimes.onnx`` has ``to_onnx``, and ``roundtrip``: the reference
  interpreter on ``from_onnx(to_onnx(g))``), with and without the default pass
  pipeline: each within rtol 1e-4 / atol 1e-5 of the oracle, and JAX vs onnxruntime within
  rtol 1e-5 / atol 1e-6; atol is scaled by the output's magnitude (``max(1, max|ref|)``), and each
  element's bound grows by twice its *float32 sensitivity*: how far the float64 twin moves when every
  top-level float32 value is rounded to float32 as it is stored, and then stepped one ulp up or down
  (``rounded_twin``). An ill-conditioned
  output (``acosh`` just above 1, ``sin`` of a large square) moves by more than any fixed tolerance
  under that rounding, which every correct float32 kernel also does; a wrong kernel still misses;
* ``cse,dce`` on the reference and on JAX op by op: bitwise identical to the unoptimised graph;
* ``gf.grad`` of the loss on JAX vs ``jax.grad`` of the lowered forward function.

Every exception that is not a ``GraphforgeError`` is a *crash*; a ``GraphforgeError`` on a valid
graph is a *mismatch* too (these graphs are valid by construction), except an
``UnsupportedOpError`` from the ONNX export (or, for ``roundtrip``, the import), which is counted as
*unsupported*.
"""
from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

import graphforge as gf
from graphforge import dtypes as _dt
from graphforge.errors import GraphforgeError, UnsupportedOpError

__all__ = ["Finding", "check_case", "BACKENDS", "available_backends", "onnx_available", "compare", "rounded_twin",
           "float32_slack"]

RTOL_REF, ATOL_REF = 1e-4, 1e-5
RTOL_PAIR, ATOL_PAIR = 1e-5, 1e-6


@dataclass
class Finding:
    kind: str      # "mismatch" | "crash" | "unsupported"
    check: str     # which oracle
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.check}: {self.detail}"


# ---- back ends --------------------------------------------------------------------------------------

def _run_reference(graph, inputs, env):
    return gf.run(graph, inputs, backend="reference")


def _run_jax_eager(graph, inputs, env):
    """The lowered function called op by op (no jit): XLA compiles each small op once, so thousands
    of distinct graphs cost milliseconds each instead of a jit compile each."""
    from graphforge.runtime import bind_inputs, resolve_params
    from graphforge.runtimes import jax as gjax
    import jax.numpy as jnp

    arrays, env = bind_inputs(graph, inputs)
    params = resolve_params(graph, None)
    with gjax.x64():
        fn = gjax.lower(graph, env)
        outs = fn({n: jnp.asarray(params[n]) for n in graph.param_values}, tuple(jnp.asarray(a) for a in arrays))
        return [np.asarray(o) for o in outs]


def _run_jax(graph, inputs, env):
    return gf.run(graph, inputs, backend="jax")


def _run_onnxruntime(graph, inputs, env):
    return gf.run(graph, inputs, backend="onnxruntime")


def _run_roundtrip(graph, inputs, env):
    """``import(export(g))``: the graph through ``gf.to_onnx`` and back through ``gf.from_onnx``, run on
    the reference interpreter (so a difference is the exporter's or the importer's, not a kernel's)."""
    import warnings

    from graphforge.api import TrainingModeExportWarning

    with warnings.catch_warnings():  # a graph with dropout/batch_norm in training mode exports as such
        warnings.simplefilter("ignore", TrainingModeExportWarning)
        back = gf.from_onnx(gf.to_onnx(graph))
    return gf.run(back, inputs, backend="reference")


def onnx_available() -> bool:
    try:
        mod = importlib.import_module("graphforge.runtimes.onnx")
    except Exception:  # noqa: BLE001 - the back end is still being written
        return False
    return hasattr(mod, "to_onnx") and hasattr(mod, "run")


# back ends that go through the ONNX exporter: an op it cannot express yet is "unsupported", not a mismatch
_ONNX_BACKENDS = ("onnxruntime", "roundtrip")

BACKENDS: dict[str, Callable] = {
    "reference": _run_reference,
    "jax_eager": _run_jax_eager,
    "jax": _run_jax,
    "onnxruntime": _run_onnxruntime,
    "roundtrip": _run_roundtrip,
}


def available_backends() -> list[str]:
    names = ["reference", "jax_eager", "jax"]
    if onnx_available():
        names += ["onnxruntime", "roundtrip"]
    return names


# ---- comparison -------------------------------------------------------------------------------------

def compare(got: list, want: list, rtol: float, atol: float, graph, slack: list | None = None) -> str | None:
    """None when equal within tolerance, else a description. atol scales with the output's magnitude;
    ``slack`` (per output, elementwise, or None) is added to the bound (the float32 sensitivity);
    dtypes must be the graph's declared ones, shapes equal."""
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        name = graph.output_names[i]
        declared = _dt.to_numpy_dtype(graph.outputs[i].type.dtype)
        if g.dtype != declared:
            return f"output {name}: dtype {g.dtype}, the graph declares {declared}"
        if g.shape != w.shape:
            return f"output {name}: shape {g.shape}, expected {w.shape}"
        if g.dtype.kind in "biuO" or w.dtype.kind in "biuO":  # (O: string tensors, compared exactly)
            if not np.array_equal(g, w.astype(g.dtype)):
                bad = np.argwhere(g != w.astype(g.dtype))[:3].tolist()
                return f"output {name}: integer/bool values differ at {bad}"
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        finite = np.isfinite(w64)
        scale = max(1.0, float(np.abs(w64[finite]).max())) if finite.any() else 1.0  # an inf sets no scale
        with np.errstate(invalid="ignore"):
            err = np.abs(g64 - w64)  # (inf - inf is NaN: equal infinities pass by the equality below)
        bound = atol * scale + rtol * np.abs(w64)
        extra = slack[i] if slack is not None and slack[i] is not None else None
        if extra is not None:
            bound = bound + np.nan_to_num(extra, nan=0.0, posinf=np.inf)
        with np.errstate(invalid="ignore"):
            ok = (g64 == w64) | (finite & (err <= bound))  # an infinity must be matched exactly
        if not np.all(ok):  # a NaN anywhere (even on both sides) is caught
            k = int(np.argmax(~ok))
            sens = f", float32 sensitivity {float(np.ravel(extra)[k]) / 2:.3g}" if extra is not None else ""
            return (f"output {name}: max |diff| {np.nanmax(err):.3g} at flat index {k} "
                    f"(got {g64.ravel()[k]:.9g}, expected {w64.ravel()[k]:.9g}; rtol {rtol}, atol {atol}x{scale:.3g}{sens})")
    return None


def _bitwise(got: list, want: list) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
            return f"output {i} differs bitwise ({g.dtype}{list(g.shape)} vs {w.dtype}{list(w.shape)})"
    return None


# ---- the checks -------------------------------------------------------------------------------------

class _Recorder:
    def __init__(self):
        self.findings: list[Finding] = []

    def call(self, check: str, fn, *args, unsupported_ok: bool = False):
        """Run ``fn``; record a crash (untyped exception) or a mismatch (typed error on a valid graph)."""
        try:
            return fn(*args)
        except UnsupportedOpError as exc:
            self.findings.append(Finding("unsupported" if unsupported_ok else "mismatch", check,
                                         f"{type(exc).__name__}: {exc}"))
        except GraphforgeError as exc:
            self.findings.append(Finding("mismatch", check, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer hunts
            tb = "".join(traceback.format_exception(exc)[-6:])
            self.findings.append(Finding("crash", check, f"{type(exc).__name__}: {exc}\n{tb}"))
        return None

    def expect(self, check: str, problem: str | None):
        if problem:
            self.findings.append(Finding("mismatch", check, problem))


def check_case(case, backends: list[str], *, optimized: bool = True, cse_dce: bool = True,
               gradients: bool = True) -> list[Finding]:
    """All oracles on one case; returns what went wrong (empty: all agree)."""
    rec = _Recorder()
    g, inputs = case.graph, case.inputs
    oracle = rec.call("reference float64", _run_reference, case.graph64, case.inputs64, case.env)
    if oracle is None:
        return rec.findings
    twins = [rec.call(f"reference float64, rounded to float32 per value ({ulps:+d} ulp)", rounded_twin, case, ulps)
             for ulps in (0, 1, -1)]
    if any(t is None for t in twins):
        return rec.findings
    slack = float32_slack(oracle, *twins)
    results = {}
    for name in backends:
        out = rec.call(f"{name}", BACKENDS[name], g, inputs, case.env, unsupported_ok=(name in _ONNX_BACKENDS))
        if out is not None:
            results[name] = out
            rec.expect(f"{name} vs float64 reference", compare(out, oracle, RTOL_REF, ATOL_REF, g, slack))
    if "jax_eager" in results and "onnxruntime" in results:
        rec.expect("jax vs onnxruntime", compare(results["onnxruntime"], results["jax_eager"], RTOL_PAIR,
                                                 ATOL_PAIR, g, slack))
    if optimized:
        opt = rec.call("gf.optimize default", lambda: gf.optimize(g, "default", verify=True))
        if opt is not None:
            for name in backends:
                if name == "jax":
                    continue  # jit is covered once above; op-by-op JAX checks the optimised graph
                out = rec.call(f"optimized {name}", BACKENDS[name], opt, inputs, case.env,
                               unsupported_ok=(name in _ONNX_BACKENDS))
                if out is not None:
                    rec.expect(f"optimized {name} vs float64 reference",
                               compare(out, oracle, RTOL_REF, ATOL_REF, g, slack))
    if cse_dce:
        cd = rec.call("gf.optimize cse,dce", lambda: gf.optimize(g, "cse,dce", verify=True))
        if cd is not None:
            for name in ("reference", "jax_eager"):
                if name not in results:
                    continue
                out = rec.call(f"cse,dce {name}", BACKENDS[name], cd, inputs, case.env)
                if out is not None:
                    rec.expect(f"cse,dce {name} bitwise", _bitwise(out, results[name]))
    if gradients and case.loss_index is not None:
        _check_grad(case, rec)
    return rec.findings


def rounded_twin(case, ulps: int = 0) -> list:
    """The float64 twin evaluated with every top-level value that is float32 in ``case.graph``
    rounded to float32 after its node: the best a float32 back end can do, op by op, up to the
    ops' own rounding. Its distance from the float64 twin is the outputs' float32 sensitivity.
    ``ulps`` (±1) also steps every such value one float32 ulp up or down: a kernel's own error
    (onnxruntime's and XLA's ``cosh`` are each ~1 ulp off) is amplified like that, while the
    rounding alone may happen to be tiny (a float64 value that is nearly a float32 one)."""
    from graphforge.runtime import bind_inputs, resolve_params
    from graphforge.runtimes.reference import interpreter

    g, g64 = case.graph, case.graph64
    twin_of = {id(n64): n32 for n32, n64 in zip(g.nodes, g64.nodes)}

    def as_stored(node64, outs):
        stored = []
        for v32, out in zip(twin_of[id(node64)].outputs, outs):
            out = np.asarray(out)
            if v32.type.dtype == "float32" and out.dtype == np.float64:
                with np.errstate(over="ignore"):
                    out = out.astype(np.float32)
                    if ulps:
                        out = np.nextafter(out, np.float32(np.inf if ulps > 0 else -np.inf))
                    out = out.astype(np.float64)
            stored.append(out)
        return stored

    arrays, env = bind_inputs(g64, case.inputs64)
    values = interpreter.evaluate(g64, arrays, env, resolve_params(g64, None), after_node=as_stored)
    return [values[id(o)] for o in g64.outputs]


def float32_slack(oracle: list, *twins: list) -> list:
    """Per output, twice the elementwise float32 sensitivity: the largest ``|twin - oracle|`` over
    the ``twins`` (``rounded_twin`` runs); None for integer outputs. Non-finite sensitivities (one
    side overflowed) add nothing."""
    slack = []
    for i, o in enumerate(oracle):
        o = np.asarray(o)
        runs = [np.asarray(t[i]) for t in twins]
        if o.dtype.kind != "f" or any(r.shape != o.shape for r in runs):
            slack.append(None)
            continue
        worst = np.zeros(o.shape, np.float64)
        for r in runs:
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.abs(r.astype(np.float64) - o.astype(np.float64))
            worst = np.maximum(worst, np.where(np.isfinite(d), d, 0.0))
        slack.append(2.0 * worst)
    return slack


def _grad_wrt(case) -> list[str]:
    g = case.graph
    names = [n for n, v in g.param_values.items() if v.kind == "param" and v.type.dtype == "float32"]
    loss_weights = set(case.loss_weights)
    names += [v.name for v in g.inputs if v.type.dtype == "float32" and v.name not in loss_weights]
    return names


def _check_grad(case, rec: _Recorder) -> None:
    from graphforge.runtime import bind_inputs, resolve_params
    from graphforge.runtimes import jax as gjax
    import jax
    import jax.numpy as jnp

    g = case.graph
    wrt = _grad_wrt(case)
    if not wrt:
        return
    tg = rec.call("gf.grad", gf.grad, g, wrt)
    if tg is None:
        return
    got = rec.call("gf.grad graph on jax", _run_jax_eager, tg, case.inputs, case.env)
    if got is None:
        return
    arrays, env = bind_inputs(g, case.inputs)
    params = resolve_params(g, None)
    input_pos = {v.name: i for i, v in enumerate(g.inputs)}

    def expected():
        with gjax.x64():
            fn = gjax.lower(g, env)
            base_p = {n: jnp.asarray(params[n]) for n in g.param_values}
            base_x = [jnp.asarray(a) for a in arrays]

            def loss(diff):
                p = dict(base_p)
                x = list(base_x)
                for name, val in diff.items():
                    if name in input_pos:
                        x[input_pos[name]] = val
                    else:
                        p[name] = val
                return fn(p, tuple(x))[case.loss_index]

            start = {n: (base_x[input_pos[n]] if n in input_pos else base_p[n]) for n in wrt}
            value, grads = jax.value_and_grad(loss)(start)
            return [np.asarray(value)] + [np.asarray(grads[n]) for n in wrt]

    want = rec.call("jax.grad of the lowered function", expected)
    if want is None:
        return
    rec.expect("gf.grad vs jax.grad", compare(got, want, RTOL_REF, ATOL_REF, tg))


def localize(case, backend: str = "jax_eager") -> str:
    """The first node whose ``backend`` result disagrees with the float64 reference although its
    inputs agree: where a mismatch is born (for reports and minimising)."""
    from graphforge.runtime import bind_inputs, resolve_params
    from graphforge.runtimes.reference import interpreter

    g, g64 = case.graph, case.graph64
    arrays64, env = bind_inputs(g64, case.inputs64)
    ref = interpreter.evaluate(g64, arrays64, env, resolve_params(g64, None), keep=True)
    values32 = [o for n in g.nodes for o in n.outputs]
    values64 = [o for n in g64.nodes for o in n.outputs]
    if backend == "jax_eager":
        from graphforge.runtimes import jax as gjax
        import jax.numpy as jnp

        arrays, env = bind_inputs(g, case.inputs)
        params = resolve_params(g, None)
        with gjax.x64():
            fn = gjax.lower(g, env, outputs=values32)
            outs = [np.asarray(o) for o in fn({n: jnp.asarray(params[n]) for n in g.param_values},
                                               tuple(jnp.asarray(a) for a in arrays))]
    else:
        arrays, env = bind_inputs(g, case.inputs)
        vals = interpreter.evaluate(g, arrays, env, resolve_params(g, None), keep=True)
        outs = [vals[id(v)] for v in values32]
    got = {id(v): o for v, o in zip(values32, outs)}
    bad = set()
    for v32, v64, o in zip(values32, values64, outs):
        want = ref[id(v64)]
        if compare([o], [want], RTOL_REF, ATOL_REF, _One(v32)) is not None:
            bad.add(id(v32))
            node = v32.producer
            if not any(id(i) in bad for i in node.inputs):
                ins = ", ".join(f"{i.type}" for i in node.inputs)
                return (f"first bad node: {node.op}({ins}) attrs={node.attrs}\n  got  {np.asarray(o).ravel()[:8]}\n"
                        f"  want {np.asarray(want).ravel()[:8]}")
    return "no single node disagrees (the mismatch is in how outputs are assembled)"


class _One:
    """A one-output stand-in graph for ``compare``."""

    def __init__(self, value):
        self.outputs = [value]
        self.output_names = [str(value)]
