"""ONNX preview-training ``Gradient`` imports as the registry VJPs of the nodes between xs and y
(runtimes/onnx_import/training_gradient.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import graphforge as gf  # noqa: E402

_PREVIEW = helper.make_opsetid("ai.onnx.preview.training", 1)


def _model(nodes, xs, y, extra_outputs=(), shape=(3,)):
    grad = helper.make_node("Gradient", list(xs), [f"d{y}_d{x}" for x in xs], domain="ai.onnx.preview.training",
                            xs=list(xs), y=y, name="grad")
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in ("a", "b")]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in [y, *extra_outputs, *grad.output]]
    graph = helper.make_graph(list(nodes) + [grad], "g", ins, outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), _PREVIEW])


def test_gradient_of_a_product_chain_on_every_backend():
    nodes = [helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Mul", ["c", "a"], ["d"]),
             helper.make_node("Tanh", ["d"], ["e"])]
    g = gf.from_onnx(_model(nodes, ["a", "b"], "e"))
    a = np.array([0.5, -1.0, 0.2], np.float32)
    b = np.array([0.1, 0.3, -0.7], np.float32)
    d = (a + b) * a
    sech2 = 1 - np.tanh(d) ** 2
    want = [np.tanh(d), sech2 * (2 * a + b), sech2 * a]
    for backend in ("reference", "jax", "onnxruntime"):
        got = gf.run(g, [a, b], backend=backend)
        for x, w in zip(got, want):
            np.testing.assert_allclose(x, w, rtol=1e-5, atol=1e-6)


def test_an_x_that_y_does_not_read_gets_zeros_and_a_non_scalar_y_is_summed():
    nodes = [helper.make_node("Mul", ["a", "a"], ["y"])]
    g = gf.from_onnx(_model(nodes, ["a", "b"], "y"))
    a = np.array([1.0, 2.0, -3.0], np.float32)
    y, da, db = gf.run(g, [a, np.ones(3, np.float32)])
    np.testing.assert_allclose(da, 2 * a)
    np.testing.assert_array_equal(db, np.zeros(3, np.float32))


def test_unknown_y_is_a_typed_error():
    nodes = [helper.make_node("Mul", ["a", "b"], ["y"])]
    model = _model(nodes, ["a"], "y")
    model.graph.node[-1].attribute[1].s = b"nope"  # y
    assert model.graph.node[-1].attribute[1].name == "y"
    with pytest.raises(gf.UnsupportedOpError, match="'nope'"):
        gf.from_onnx(model, check=False)
