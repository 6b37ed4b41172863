"""``deform_conv2d`` (graphforge/ops/vision_deform.py): onnx's reference DeformConv (groups, offset
groups, bias, mask, padding, strides, dilation) on every back end and onnxruntime's native kernel,
zero offsets = ordinary convolution, the wrapper's bias filling, a gradient check, typed errors.
The op-table tests run the samples (finite-difference gradients included)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge.runtimes.onnx import to_onnx

RNG = np.random.default_rng(3)


def _case(with_mask):
    x = RNG.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = RNG.standard_normal((6, 2, 2, 3)).astype(np.float32)
    off = (RNG.standard_normal((2, 24, 5, 3)) * 1.5).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32)
    m = RNG.uniform(0, 1, (2, 12, 5, 3)).astype(np.float32)
    return [x, w, off, b, m] if with_mask else [x, w, off, b]


@pytest.mark.parametrize("with_mask", [True, False])
def test_deform_conv_matches_onnx_reference_everywhere(with_mask):
    arrays = _case(with_mask)
    attrs = dict(group=2, offset_group=2, pads=[1, 0, 0, 1], strides=[1, 2])
    names = ["X", "W", "O", "B", "M"][:len(arrays)]
    want = ReferenceEvaluator(helper.make_node("DeformConv", names, ["Y"], **attrs)).run(None, dict(zip(names, arrays)))[0]

    def f(x, w, off, b, m=None):
        return gf.deform_conv2d(x, w, off, b, m, stride=(1, 2), padding=[1, 0, 0, 1], groups=2, offset_groups=2)

    graph = gf.trace(f, *[gf.TensorSpec(a.shape, "float32") for a in arrays])
    assert [n.op_type for n in to_onnx(graph).graph.node] == ["DeformConv"]
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, arrays, backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5, err_msg=backend)


def test_zero_offsets_are_an_ordinary_convolution_and_mask_without_bias():
    x = RNG.standard_normal((1, 2, 5, 5))
    w = RNG.standard_normal((3, 2, 3, 3))
    off = np.zeros((1, 18, 3, 3))
    mask = np.ones((1, 9, 3, 3))
    g1 = gf.trace(lambda a, b, o, m: gf.deform_conv2d(a, b, o, mask=m), *[gf.TensorSpec(t.shape, "float64")
                                                                          for t in (x, w, off, mask)])
    g2 = gf.trace(lambda a, b: gf.conv2d(a, b), gf.TensorSpec(x.shape, "float64"), gf.TensorSpec(w.shape, "float64"))
    (want,) = gf.run(g2, [x, w], backend="reference")
    for backend in ("reference", "jax"):
        (got,) = gf.run(g1, [x, w, off, mask], backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=backend)


def test_deform_conv_gradient_wrt_weight_is_the_sampled_columns():
    """With zero offsets, d sum(y) / d w[o, c, i, j] = sum of x over the window positions."""
    x = RNG.standard_normal((1, 1, 4, 4))
    g = gf.trace(lambda a, b, o: gf.sum(gf.deform_conv2d(a, b, o)), gf.TensorSpec(x.shape, "float64"),
                 gf.TensorSpec((1, 1, 2, 2), "float64"), gf.TensorSpec((1, 8, 3, 3), "float64"))
    gg = gf.grad(g, wrt=["b"])
    _, gw = gf.run(gg, [x, RNG.standard_normal((1, 1, 2, 2)), np.zeros((1, 8, 3, 3))], backend="jax")
    want = np.array([[x[0, 0, i:i + 3, j:j + 3].sum() for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(gw[0, 0], want, rtol=1e-10)


def test_deform_conv_errors_are_typed():
    x, w = gf.TensorSpec((1, 4, 5, 5), "float32"), gf.TensorSpec((2, 2, 2, 2), "float32")
    with pytest.raises(gf.ShapeError, match="offset"):
        gf.trace(lambda a, b, o: gf.deform_conv2d(a, b, o, groups=2), x, w, gf.TensorSpec((1, 8, 3, 3), "float32"))
    with pytest.raises(gf.ShapeError, match="group"):
        gf.trace(lambda a, b, o: gf.deform_conv2d(a, b, o), x, w, gf.TensorSpec((1, 8, 4, 4), "float32"))
