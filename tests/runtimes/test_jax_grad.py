"""Gradients on JAX: the ``gf.grad`` graph lowered to JAX agrees with ``jax.grad`` of the lowered
forward graph (scalarised by a fixed random weighting) for every differentiable op sample; the
gradient graphs of the MLP and the nn TransformerEncoder also run in onnxruntime."""
from __future__ import annotations


import numpy as np
import pytest

jax = pytest.importorskip("jax")

import graphforge as gf  # noqa: E402
from graphforge import dtypes as _dt  # noqa: E402
from graphforge.ops.registry import NOT_DIFFERENTIABLE, all_ops  # noqa: E402
from gf_testutil import (EncoderLoss, MLPLoss, resolve_shape, sample_arrays, to_float64, weighted_loss_graph,  # noqa: E402
                         zip_outputs)


def _wrt(opdef, sample):
    return [i for i, t in enumerate(sample.inputs) if _dt.is_float(t.dtype) and i not in opdef.nondiff_inputs]


def _grad_samples():
    """Every differentiable sample; the default tier runs each op's first static-shape sample and
    its first symbolic-shape one, the slow tier (``make test-slow``) the others. Per sample the
    default tier still checks every VJP against finite differences (tests/ops/test_gradients) and
    every forward on the reference and onnxruntime back ends (tests/runtimes/test_onnx_ops)."""
    params, seen = [], set()
    for name, opdef in sorted(all_ops().items()):
        if opdef.vjp is NOT_DIFFERENTIABLE:
            continue
        for k, s in enumerate(opdef.samples):
            if not (s.grad and _wrt(opdef, s)):
                continue
            kind = (name, bool(s.bind))
            marks = [pytest.mark.slow] if kind in seen else []
            seen.add(kind)
            params.append(pytest.param(name, k, id=f"{name}-{k}", marks=marks))
    return params


GRAD_SAMPLES = _grad_samples()


@pytest.mark.parametrize("op,k", GRAD_SAMPLES)
def test_grad_graph_on_jax_matches_jax_grad(op, k):
    from graphforge.runtime import bind_inputs
    from graphforge.runtimes.jax import lower, x64

    opdef = all_ops()[op]
    s64 = to_float64(opdef.samples[k])
    graph, data, weights = weighted_loss_graph(op, s64)
    rng = np.random.default_rng(7)
    by_name = {v.name: v for v in graph.inputs}
    arrays = sample_arrays(s64) + [rng.standard_normal(resolve_shape(by_name[n].type.shape, s64.bind))
                                   for n in weights]
    wrt_idx = _wrt(opdef, s64)
    wrt = [data[i] for i in wrt_idx]
    got = gf.run(gf.grad(graph, wrt=wrt, optimize=False), arrays, backend="jax")

    bound, env = bind_inputs(graph, arrays)
    with x64():
        fwd = lower(graph, env)

        def loss(diff):
            xs = list(bound)
            for i, d in zip(wrt_idx, diff):
                xs[i] = d
            return fwd({}, tuple(xs))[0]

        # value and gradient in one compile (the suite's time is mostly XLA compiles)
        want_loss, want = jax.jit(jax.value_and_grad(loss))(tuple(bound[i] for i in wrt_idx))
        want = [np.asarray(w) for w in want]
    np.testing.assert_allclose(got[0], np.asarray(want_loss), rtol=1e-12)
    for g, w, name in zip_outputs(got[1:], want, wrt):
        assert g.dtype == np.float64 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10, err_msg=f"d loss / d {name} of {op}")


# ---- whole-model gradient graphs on JAX and onnxruntime -----------------------------------------

def _model_cases():
    rng = np.random.default_rng(0)
    mlp = (gf.trace(MLPLoss(), gf.TensorSpec(("batch", 12)), gf.TensorSpec(("batch",), "int64"), seed=0),
           [rng.standard_normal((4, 12)).astype(np.float32), rng.integers(0, 5, 4)])
    enc = (gf.trace(EncoderLoss(), gf.TensorSpec(("batch", 6, 16)), seed=0),
           [rng.standard_normal((3, 6, 16)).astype(np.float32)])
    return {"mlp": mlp, "transformer_encoder": enc}


@pytest.fixture(scope="module")
def model_cases():
    return _model_cases()


@pytest.mark.parametrize("name", ["mlp", "transformer_encoder"])
def test_model_gradient_graph_runs_on_jax_and_onnxruntime(model_cases, name):
    graph, arrays = model_cases[name]
    tg = gf.grad(graph, wrt="params")
    ref = gf.run(tg, arrays, backend="reference")
    got = gf.run(tg, arrays, backend="jax")
    assert len(got) == 1 + len(graph.trainable_names)
    for g, r in zip_outputs(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    ort = gf.run(tg, arrays, backend="onnxruntime")
    for o, g, n in zip_outputs(ort, got, tg.output_names):
        np.testing.assert_allclose(o, g, rtol=1e-4, atol=1e-5, err_msg=n)
