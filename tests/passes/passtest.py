"""Helpers for pass tests: IR text in → IR text out, numerical equivalence, idempotence."""
from __future__ import annotations

import re

import numpy as np
import graphforge as gf
from graphforge import dtypes as _dt
from graphforge.ir.dims import dim_symbols, resolve_shape
from graphforge.passes import PassManager, optimize
from gf_testutil import zip_outputs


def normalize(text: str) -> str:
    """Parse and print IR text (canonical numbering, attribute order)."""
    return str(gf.parse(text, verify=False))


def strip_locations(text: str) -> str:
    return re.sub(r" \([^()]*\)$", "", text, flags=re.M)


def random_params(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, v in graph.param_values.items():
        if name in graph.params:
            continue
        out[name] = _random_array(v.type, {}, rng, positive=name.endswith(("var", "scale")))
    return out


def _random_array(t, env, rng, positive=False):
    shape = resolve_shape(t.shape, env)
    dtype = _dt.to_numpy_dtype(t.dtype)
    if t.dtype == "bool":
        return rng.random(shape) > 0.3
    if _dt.is_float(t.dtype):
        a = rng.standard_normal(shape)
        return (np.abs(a) + 0.5 if positive else a).astype(dtype)
    return rng.integers(0, 3, size=shape).astype(dtype)


def random_inputs(graph, seed=1, dim=3):
    rng = np.random.default_rng(seed)
    env = {}
    for v in graph.inputs:
        for d in v.type.shape:
            for s in dim_symbols(d):
                env.setdefault(s, dim)
    return {v.name: _random_array(v.type, env, rng) for v in graph.inputs}


def with_params(graph, seed=0):
    """Fill in values for parameters that have none (graphs parsed from text)."""
    for name, array in random_params(graph, seed).items():
        graph.params[name] = array
    return graph


def onnx_runner():
    """``run(graph, inputs) -> outputs`` through ``graphforge.runtimes.onnx.to_onnx`` and an
    onnxruntime session with every graph optimisation disabled (the passes must do the work)."""
    from graphforge.runtimes.onnx import to_onnx

    def run(graph, inputs):
        import onnxruntime as ort

        proto = to_onnx(graph)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [v.name for v in graph.inputs]
        feed = {}
        for i, spec in enumerate(session.get_inputs()):
            key = spec.name if spec.name in inputs else names[i]
            feed[spec.name] = inputs[key]
        return session.run(None, feed)
    return run


def _uses_stub_ops(graph) -> bool:
    try:
        from nn_stubs import STUBS
    except ImportError:
        return False
    from graphforge.ops import registry
    return any(registry.has_op(n.op) and registry.get_op(n.op) is STUBS.get(n.op) for n in graph.nodes)


def assert_equivalent(before, after, *, rtol=1e-4, atol=1e-5, seeds=(1, 2), ort=True):
    """Same outputs on the reference runtime (and on onnxruntime when the ONNX back end exists)."""
    assert after.output_names == before.output_names
    for seed in seeds:
        inputs = random_inputs(before, seed)
        want = gf.run(before, inputs)
        got = gf.run(after, inputs)
        for g, w in zip_outputs(got, want):
            assert w.shape == g.shape and w.dtype == g.dtype
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    runner = onnx_runner() if ort else None
    if runner is not None and not _uses_stub_ops(after) and not _uses_stub_ops(before):
        inputs = random_inputs(before, seeds[0])
        want = gf.run(before, inputs)
        for g, w in zip_outputs(runner(after, inputs), want):
            np.testing.assert_allclose(g, w, rtol=rtol * 10, atol=atol * 10)


def assert_idempotent(graph, pipeline):
    """A second run of ``pipeline`` changes nothing (every pass reports changed=False)."""
    pm = PassManager(pipeline, verify=True)
    again = pm.run(graph)
    assert not any(r.changed for r in pm.report.records), pm.report.table()
    assert str(again) == str(graph)


def check_pass(ir_in: str, pipeline: str, ir_out: str, *, equivalent=True, rtol=1e-4, atol=1e-5):
    """IR text in → pipeline (verify after every pass) → IR text out, numerically equal, idempotent,
    and the input graph left untouched. Returns the optimised graph."""
    before = with_params(gf.parse(ir_in))
    text_before = str(before)
    after = optimize(before, pipeline, verify=True)
    assert str(before) == text_before, "the pass modified its input graph"
    assert str(after) == normalize(ir_out), f"got:\n{after}"
    after.verify()
    if equivalent:
        assert_equivalent(before, after, rtol=rtol, atol=atol)
    assert_idempotent(after, pipeline)
    return after
