"""JAX lowering conformance: every op-table sample agrees with the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import graphforge as gf  # noqa: E402
from graphforge.ops import registry  # noqa: E402

from jax_cases import make_inputs, one_node_graph, sample_cases, tolerance  # noqa: E402
from gf_testutil import zip_outputs  # noqa: E402

CASES = sample_cases()


def _tiered(cases):
    """The default tier runs each op's first static-shape sample and its first symbolic-shape one on
    JAX; the slow tier (``make test-slow``) every sample. Every sample still runs in the default tier
    on the reference and onnxruntime back ends (tests/runtimes/test_onnx_ops.py), and CI's
    ``make conformance`` runs onnx's node cases, with their attribute variants, on JAX."""
    seen, params = set(), []
    for case in cases:
        kind = (case[1], bool(case[3].bind))
        params.append(pytest.param(case, id=case[0], marks=[pytest.mark.slow] if kind in seen else []))
        seen.add(kind)
    return params


def test_every_op_has_a_jax_lowering():
    from graphforge.runtimes.jax import missing_lowerings
    assert missing_lowerings() == [], "ops without a JAX lowering (add one in runtimes/jax/lower*.py)"


def test_missing_lowering_is_reported(monkeypatch):
    from graphforge.runtimes.jax import LOWERINGS
    monkeypatch.delitem(LOWERINGS, "relu")
    g = gf.trace(lambda x: gf.relu(x), gf.TensorSpec((2,)))
    with pytest.raises(gf.UnsupportedOpError, match="relu"):
        gf.run(g, np.ones(2, np.float32), backend="jax")


@pytest.mark.parametrize("case", _tiered(CASES))
def test_jax_matches_reference(case):
    _, op, _, sample = case
    graph = one_node_graph(op, sample)
    arrays = make_inputs(sample)
    want = gf.run(graph, arrays, backend="reference")
    if any(v.type.dtype == "string" for v in [*graph.inputs, *graph.outputs]):  # XLA has no string type
        with pytest.raises(gf.UnsupportedOpError, match=f"{op}.*XLA has no string type"):
            gf.run(graph, arrays, backend="jax")
        return
    got = gf.run(graph, arrays, backend="jax")
    for g, w in zip_outputs(got, want):
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, equal_nan=True, **tolerance(w.dtype))
        else:
            np.testing.assert_array_equal(g, w)


def test_dropout_mask_is_bit_exact_on_a_large_tensor():
    g = gf.trace(lambda x, k: gf.dropout(x, p=0.3, key=k),
                 gf.TensorSpec((37, 129)), gf.TensorSpec((), "uint32"))
    x = np.random.default_rng(0).standard_normal((37, 129)).astype(np.float32)
    for key in (0, 1, 0xFFFFFFFF):
        k = np.uint32(key)
        got, want = gf.run(g, [x, k], backend="jax")[0], gf.run(g, [x, k])[0]
        # the keep mask is bit-exact; the 1/(1-p) scaling may differ by an ulp (XLA folds x/c to x*(1/c))
        np.testing.assert_array_equal(got == 0, want == 0)
        assert 0.6 < np.mean(want != 0) < 0.8
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_float64_graph_computes_in_float64_without_global_x64():
    import jax
    g = gf.trace(lambda x: x * 3.0 + 1e-12, gf.TensorSpec((3,), "float64"))
    x = np.array([1.0, 2.0, 1e-9])
    out = gf.run(g, x, backend="jax")[0]
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x * 3.0 + 1e-12)
    assert not jax.config.jax_enable_x64  # the scoped context did not leak


def test_compiled_function_is_cached_per_signature():
    g = gf.trace(lambda x: gf.relu(x) * 2.0, gf.TensorSpec(("batch", 3)))
    for n in (2, 2, 5):
        gf.run(g, np.ones((n, 3), np.float32), backend="jax")
    assert len(g.compiled_cache("jax")) == 2
