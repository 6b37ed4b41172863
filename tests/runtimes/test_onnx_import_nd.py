"""Import of the N-d conv/pool family, Einsum, TopK and the data-dependent ops against onnxruntime,
on the variants onnx's node cases leave out (a ConvTranspose output_shape past the stride, LpPool p=3
in ceil mode, dilated MaxPool Indices, a 3-D ConvTranspose with SAME padding)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402
from gf_testutil import one_node_onnx_model as _model, onnx_value_info as _vi  # noqa: E402

RNG = np.random.default_rng(1919)


def _check(model, feeds, backends=("reference", "jax", "onnxruntime"), rtol=1e-4, atol=1e-5, oracle="ort"):
    if oracle == "ort":
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    else:  # onnx's reference implementation (onnxruntime refuses some valid attribute combinations)
        from onnx.reference import ReferenceEvaluator

        want = ReferenceEvaluator(model).run(None, feeds)
    g = gf.from_onnx(model)
    for backend in backends:
        got = gf.run(g, feeds, backend=backend)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=backend)
    return g


def test_conv_transpose_output_shape_past_output_padding_is_refused():
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[10, 9])
    m = _model(node, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 3, 10, 9])], [numpy_helper.from_array(w, "w")])
    with pytest.raises(gf.UnsupportedOpError, match="output_shape"):
        gf.from_onnx(m)
    # one row past the natural size is output_padding
    x = RNG.standard_normal((1, 2, 3, 3)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[8, 7])
    m = _model(node, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 3, 8, 7])], [numpy_helper.from_array(w, "w")])
    g = _check(m, {"x": x})
    assert g.op_counts() == {"conv_transpose2d": 1}


def test_conv_transpose_3d_same_upper():
    x = RNG.standard_normal((1, 2, 2, 3, 2)).astype(np.float32)
    w = RNG.standard_normal((2, 2, 3, 2, 3)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 1, 2], auto_pad="SAME_UPPER")
    m = _model(node, [_vi("x", [1, 2, 2, 3, 2])], [_vi("y", [1, 2, 4, 3, 4])], [numpy_helper.from_array(w, "w")])
    _check(m, {"x": x})


def test_lppool_p3_dilated():
    x = RNG.standard_normal((1, 2, 7, 6)).astype(np.float32)
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], p=3,
                            dilations=[2, 1])
    m = _model(node, [_vi("x", [1, 2, 7, 6])], [_vi("y", [1, 2, 3, 3])])
    _check(m, {"x": x}, backends=("reference", "jax"))


def test_max_pool_indices_3d():
    x = RNG.permutation(2 * 2 * 4 * 4 * 4).reshape(2, 2, 4, 4, 4).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2, 2], strides=[2, 1, 2],
                            pads=[1, 0, 0, 0, 1, 1])
    m = _model(node, [_vi("x", [2, 2, 4, 4, 4])],
               [_vi("y", [2, 2, 2, 4, 2]), _vi("i", [2, 2, 2, 4, 2], TensorProto.INT64)])
    _check(m, {"x": x})


def test_einsum_ellipsis_broadcast_free_and_topk_smallest():
    a = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b = RNG.standard_normal((4, 5)).astype(np.float32)
    m = _model(helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,jk->...ik"),
               [_vi("a", [2, 3, 4]), _vi("b", [4, 5])], [_vi("y", [2, 3, 5])], opset=12)
    _check(m, {"a": a, "b": b})
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    m = _model(helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=0, largest=0),
               [_vi("x", [3, 6])], [_vi("v", [2, 6]), _vi("i", [2, 6], TensorProto.INT64)],
               [numpy_helper.from_array(np.array([2], np.int64), "k")])
    _check(m, {"x": x})


def test_compress_then_relu_runs_on_every_backend():
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    cond = np.array([True, False, True, True])
    nodes = [helper.make_node("Compress", ["x", "c"], ["k"], axis=0), helper.make_node("Relu", ["k"], ["y"])]
    g = helper.make_graph(nodes, "t", [_vi("x", [4, 3]), _vi("c", [4], TensorProto.BOOL)], [_vi("y", ["n", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    _check(m, {"x": x, "c": cond})
