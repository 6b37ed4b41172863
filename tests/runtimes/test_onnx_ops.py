"""ONNX lowering conformance: every op-table sample, exported at opset 17 and at the default opset,
run in onnxruntime with graph optimisations disabled and enabled, agrees with the NumPy reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import graphforge as gf  # noqa: E402
from graphforge import dtypes as _dt  # noqa: E402
from graphforge.runtimes import onnx as gf_onnx  # noqa: E402
from graphforge.runtimes.onnx import math_ops as gf_onnx_math  # noqa: E402

from jax_cases import make_inputs, one_node_graph, sample_cases  # noqa: E402
from gf_testutil import zip_outputs  # noqa: E402

CASES = sample_cases()
OPSETS = sorted({17, gf_onnx.max_opset()})
ONNX_MIN_OPSET = gf_onnx_math.MIN_OPSET  # ops first defined by a later opset than 17 (Bitwise*)


def _tolerance(dtype) -> dict:
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-12, atol=1e-12)
    if np.dtype(dtype) == np.float16:
        return dict(rtol=1e-3, atol=1e-3)
    return dict(rtol=1e-5, atol=1e-6)


def _assert_matches(got, want, what=""):
    for g, w in zip_outputs(got, want, what=what):
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, g.shape, w.dtype, w.shape)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, equal_nan=True, err_msg=what, **_tolerance(w.dtype))
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def test_every_op_has_an_onnx_lowering():
    from graphforge.ops.registry import all_ops

    assert gf_onnx.missing_lowerings() == [], "ops without an ONNX lowering (add one in runtimes/onnx/lower*.py)"
    # every op has its own lowering today; composites may also fall back on their decomposition
    assert sorted(set(all_ops()) - set(gf_onnx.LOWERINGS)) == []


def test_missing_lowering_lists_every_node_with_its_line(monkeypatch):
    monkeypatch.delitem(gf_onnx.LOWERINGS, "relu")

    def f(x):
        a = gf.relu(x)
        return gf.relu(a * 2.0)

    g = gf.trace(f, gf.TensorSpec((2,)))
    with pytest.raises(gf.UnsupportedOpError) as info:
        gf.to_onnx(g)
    lines = sorted(n.loc for n in g.nodes if n.op == "relu")
    assert len(set(lines)) == 2
    assert info.value.ops == ["relu", "relu"]
    for loc in lines:
        assert loc in str(info.value)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_onnxruntime_matches_reference(case):
    _, op, _, sample = case
    graph = one_node_graph(op, sample)
    arrays = make_inputs(sample)
    want = gf.run(graph, arrays, backend="reference")
    for opset in OPSETS:
        needs = max([_dt.min_onnx_opset(v.type.dtype) for v in [*graph.inputs, *graph.outputs]]
                    + [ONNX_MIN_OPSET.get(op, 1) if "bool" not in {t.dtype for t in sample.inputs} else 1])
        if opset < needs:  # float8 / int4 tensors, Bitwise ops: a typed refusal below their first opset
            with pytest.raises(gf.UnsupportedOpError):
                gf_onnx.OrtSession(graph, opset=opset)
            continue
        for optimization in ("disable", "all"):
            session = gf_onnx.OrtSession(graph, optimization=optimization, opset=opset)
            _assert_matches(session.run(arrays), want, f"opset {opset}, optimization {optimization}")


@pytest.mark.parametrize("opset", OPSETS)
def test_dropout_mask_is_bit_exact(opset):
    g = gf.trace(lambda x, k: gf.dropout(x, p=0.3, key=k), gf.TensorSpec(("n", 129)), gf.TensorSpec((), "uint32"))
    x = np.random.default_rng(0).standard_normal((37, 129)).astype(np.float32)
    session = gf_onnx.OrtSession(g, opset=opset)
    for key in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):
        k = np.uint32(key)
        got, want = session.run([x, k])[0], gf.run(g, [x, k])[0]
        np.testing.assert_array_equal(got, want)
        assert 0.6 < np.mean(want != 0) < 0.8


def test_float64_erf_is_accurate_over_the_whole_line():
    g = gf.trace(lambda x: gf.erf(x), gf.TensorSpec(("n",), "float64"))
    x = np.concatenate([np.linspace(-7, 7, 1401), [0.0, 1e-300, -1e-8, 5.99, 6.0, 30.0, -np.inf, np.inf]])
    got = gf_onnx.OrtSession(g, opset=17).run([x])[0]
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-16)


def test_half_types_compute_in_float32_and_keep_their_dtype():
    import ml_dtypes

    g = gf.trace(lambda x: gf.softmax(gf.gelu(x) * 3.0, -1), gf.TensorSpec(("batch", 5), "bfloat16"))
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(ml_dtypes.bfloat16)
    got = gf.run(g, x, backend="onnxruntime")[0]
    want = gf.run(g, x)[0]
    assert got.dtype == want.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=1e-2)


def test_sessions_are_cached_and_params_override():
    g = gf.trace(gf.nn.Linear(3, 2), gf.TensorSpec(("batch", 3)), seed=0)
    x = np.ones((4, 3), np.float32)
    first = gf.run(g, x, backend="onnxruntime")
    gf.run(g, np.ones((7, 3), np.float32), backend="onnxruntime")  # another batch size: same session
    assert len(g.compiled_cache("onnxruntime")) == 1
    np.testing.assert_allclose(first[0], gf.run(g, x)[0], rtol=1e-6)
    w = {n: np.full_like(a, 0.5) for n, a in g.params.items()}
    np.testing.assert_allclose(gf.run(g, x, backend="onnxruntime", params=w)[0], gf.run(g, x, params=w)[0],
                               rtol=1e-6)
    assert len(g.compiled_cache("onnxruntime")) == 2  # the fed-params session
    # replacing a stored array rebuilds the baked session instead of running stale weights
    name = next(iter(g.params))
    g.params[name] = np.zeros_like(g.params[name])
    np.testing.assert_allclose(gf.run(g, x, backend="onnxruntime")[0], gf.run(g, x)[0], rtol=1e-6)


def test_unknown_run_option_is_an_input_error():
    g = gf.trace(lambda x: gf.relu(x), gf.TensorSpec((2,)))
    with pytest.raises(gf.InputError, match="optimisation|optimization"):
        gf.run(g, np.ones(2, np.float32), backend="onnxruntime", optimisation="all")


def test_provider_choice_follows_onnxruntime():
    import onnxruntime as ort

    providers = gf_onnx.default_providers()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert providers[0] == "CUDAExecutionProvider"
    else:
        assert providers == ["CPUExecutionProvider"]
