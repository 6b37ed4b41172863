"""Pooling over symbolic H and W (issue #14): floor and ceil mode, max and avg, output lengths as dim
expressions; one ONNX export serves every size (ceil_mode's extra rows and avg's divisor are computed
in the model); gradients through a symbolic-size avg pool compute their windows at run time."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

SPEC = gf.TensorSpec(("batch", 2, "h", "w"), "float32", name="x")


def _pools(x):
    return (gf.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            gf.max_pool2d(x, 3, stride=2, ceil_mode=True),
            gf.avg_pool2d(x, 2))


def test_output_lengths_are_expressions():
    g = gf.trace(_pools, SPEC)
    assert [str(o.type) for o in g.outputs] == [
        "f32[batch,2,floor(h/2)+1,floor(w/2)+1]",
        "f32[batch,2,min(floor((h+1)/2),floor(h/2)),min(floor((w+1)/2),floor(w/2))]",
        "f32[batch,2,floor(h/2),floor(w/2)]"]


def test_one_export_runs_every_size():
    g = gf.trace(_pools, SPEC)
    from graphforge.runtimes.onnx import OrtSession

    session = OrtSession(g)
    for h, w in ((3, 4), (6, 5), (9, 8)):
        x = np.random.default_rng(h).standard_normal((2, 2, h, w)).astype(np.float32)
        want = gf.run(g, [x])
        got = session.run({"x": x})
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_window_larger_than_the_input_breaks_a_named_guard():
    g = gf.trace(lambda x: gf.max_pool2d(x, 3, stride=2, ceil_mode=True), SPEC)
    with pytest.raises(gf.InputError, match="max_pool2d"):
        gf.run(g, [np.zeros((1, 2, 2, 5), np.float32)])


def test_gradients_at_symbolic_sizes_compute_their_windows_at_run_time():
    """The avg-pool VJP at symbolic sizes builds its window indices and divisor in the graph (no
    constant index table), so one gradient graph serves every size (finite differences in
    tests/ops/test_symbolic_conv_pool_grad.py)."""
    def loss(x):
        return (gf.avg_pool2d(x, 2) * gf.avg_pool2d(x, 2)).sum()

    tg = gf.grad(gf.trace(loss, SPEC), wrt=["x"])
    assert "arange" in tg.op_counts()      # window starts: arange(out) * stride
    for h, w in ((3, 4), (6, 5)):
        x = np.random.default_rng(h).standard_normal((1, 2, h, w)).astype(np.float32)
        (gx,) = gf.run(tg, [x])[1:]
        want = np.zeros_like(x)
        pooled = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(1, 2, h // 2, 2, w // 2, 2).mean((3, 5))
        want[:, :, : h // 2 * 2, : w // 2 * 2] = np.repeat(np.repeat(pooled / 2, 2, 2), 2, 3)
        np.testing.assert_allclose(gx, want, rtol=1e-5, atol=1e-6)


def test_max_pool_indices_at_symbolic_sizes_match_onnxruntime():
    """ONNX MaxPool's Indices output of a symbolic-size input: the index table is computed in the
    graph, so the imported model runs at any H, W like onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                            ceil_mode=1)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, "oh", "ow"]),
                               helper.make_tensor_value_info("i", TensorProto.INT64, ["n", 2, "oh", "ow"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    g = gf.from_onnx(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((1, 2, 5, 4), (2, 2, 6, 7)):
        x = np.random.default_rng(sum(shape)).permutation(int(np.prod(shape))).reshape(shape).astype(np.float32)
        want = session.run(None, {"x": x})
        for backend in ("reference", "jax", "onnxruntime"):
            got = gf.run(g, [x], backend=backend)
            np.testing.assert_array_equal(got[0], want[0], err_msg=backend)
            np.testing.assert_array_equal(got[1], want[1], err_msg=backend)
