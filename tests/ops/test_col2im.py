"""``col2im`` (graphforge/ops/col2im.py) against onnx's reference Col2Im (2-D and 3-D, strides,
dilations, pads) on every back end and onnxruntime's native kernel, its adjoint relation with
im2col (the gradient), and typed errors. The op-table tests run the samples."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge.runtimes.onnx import to_onnx

RNG = np.random.default_rng(18)

CASES = [  # (input shape, image, block, attrs)
    ((2, 4, 9), [4, 4], [2, 2], {}),
    ((1, 6, 9), [3, 5], [1, 3], {"strides": [1, 2], "pads": [0, 1, 0, 1]}),
    ((1, 8, 8), [3, 3, 4], [2, 2, 2], {"dilations": [1, 1, 2]}),
    ((1, 4, 4), [5, 5], [2, 2], {"dilations": [2, 3], "strides": [2, 1], "pads": [0, 0, 1, 0]}),
]


@pytest.mark.parametrize("shape,image,block,attrs", CASES)
def test_col2im_matches_onnx_reference(shape, image, block, attrs):
    x = RNG.standard_normal(shape).astype(np.float32)
    node = helper.make_node("Col2Im", ["X", "I", "B"], ["Y"], **attrs)
    want = ReferenceEvaluator(node).run(None, {"X": x, "I": np.array(image), "B": np.array(block)})[0]
    graph = gf.trace(lambda t: gf.col2im(t, image, block, **attrs), gf.TensorSpec(shape, "float32"))
    native = [n.op_type for n in to_onnx(graph).graph.node] == ["Col2Im"]
    assert native == (len(image) == 2)  # onnxruntime's 3-D Col2Im is wrong: the decomposition is exported
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, [x], backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=backend)


def test_col2im_gradient_is_im2col():
    """<col2im(x), y> = <x, im2col(y)>: the gradient of sum(col2im(x) * y) is y's sliding windows."""
    y = RNG.standard_normal((1, 1, 3, 4))
    graph = gf.trace(lambda t, w: gf.sum(gf.col2im(t, [3, 4], [2, 2]) * w), gf.TensorSpec((1, 4, 6), "float64"),
                     gf.TensorSpec(y.shape, "float64"))
    gg = gf.grad(graph, wrt=["t"])
    want = np.array([[y[0, 0, i + a, j + b] for i in range(2) for j in range(3)] for a in range(2) for b in range(2)])
    for backend in ("reference", "jax"):
        _, gx = gf.run(gg, [np.zeros((1, 4, 6)), y], backend=backend)
        np.testing.assert_allclose(gx[0], want, rtol=1e-12, err_msg=backend)


def test_col2im_errors_are_typed():
    with pytest.raises(gf.ShapeError, match="positions"):
        gf.trace(lambda t: gf.col2im(t, [4, 4], [2, 2]), gf.TensorSpec((1, 4, 8), "float32"))
    with pytest.raises(gf.ShapeError, match="agree"):
        gf.trace(lambda t: gf.col2im(t, [4, 4], [2]), gf.TensorSpec((1, 4, 9), "float32"))
