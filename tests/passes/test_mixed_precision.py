"""The mixed_precision pass: policy per op, float32 outputs, numerics, half-precision export."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError
from graphforge.ops.precision import PRECISION_POLICY, precision_class
from graphforge.ops.registry import all_ops
from graphforge.passes.mixed_precision import half_precision, mixed_precision


def _net():
    net = nn.seq().add(nn.Linear(8, 16)).add_fn(gf.relu).add(nn.Linear(16, 4))
    return net.add_fn(lambda x: gf.softmax(x, axis=-1))


def _graph():
    return gf.trace(_net(), gf.TensorSpec(("batch", 8), "float32"), seed=0)


def test_policy_table_names_registered_ops():
    assert set(PRECISION_POLICY) <= set(all_ops())
    assert precision_class("linear") == "half" and precision_class("softmax") == "float32"
    assert precision_class("relu") == "follow"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_matmuls_half_softmax_float32_outputs_unchanged(dtype):
    g = _graph()
    m = mixed_precision(g, dtype)
    by_op = {}
    for n in m.nodes:
        by_op.setdefault(n.op, []).append(n)
    assert all(n.outputs[0].dtype == dtype for n in by_op["linear"])
    assert by_op["relu"][0].outputs[0].dtype == dtype  # follows the half matmul
    assert by_op["softmax"][0].inputs[0].dtype == "float32"
    assert [o.type for o in m.outputs] == [o.type for o in g.outputs]
    # master weights stay float32 in the graph; the pass casts them
    assert all(v.dtype == "float32" for v in m.param_values.values())
    assert str(g).count("cast") == 0  # the input graph is untouched
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    ref = gf.run(g, {"x": x})[0]
    for backend in ("reference", "jax", "onnxruntime"):
        np.testing.assert_allclose(gf.run(m, {"x": x}, backend=backend)[0], ref, atol=2e-2)


def test_gradients_are_float32_and_close():
    g = _graph()
    m = mixed_precision(g, "bfloat16")

    def with_loss(graph):
        gg = graph.copy()
        from graphforge.trace.builder import Builder
        b = Builder(gg)
        with b.activate():
            loss = gf.Tensor(gg.outputs[0], b).sum()
        gg.set_outputs([loss.value], ["loss"])
        return gf.grad(gg)

    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    full, half = with_loss(g), with_loss(m)
    assert all(o.dtype == "float32" for o in half.outputs)
    a, b = gf.run(full, {"x": x}, backend="jax"), gf.run(half, {"x": x}, backend="jax")
    for u, v in zip(a[1:], b[1:]):
        np.testing.assert_allclose(v, u, atol=3e-2 * max(1.0, np.abs(u).max()))


def test_half_precision_stores_half_weights_and_runs_in_onnxruntime():
    g = _graph()
    h = half_precision(g, "float16")
    assert all(v.dtype == "float16" for v in h.param_values.values())
    assert h.inputs[0].dtype == "float32" and h.outputs[0].dtype == "float32"
    x = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_allclose(gf.run(h, {"x": x}, backend="onnxruntime")[0], gf.run(g, {"x": x})[0], atol=5e-3)


def test_rejects_non_half_dtype():
    with pytest.raises(ConfigError):
        mixed_precision(_graph(), "float64")
