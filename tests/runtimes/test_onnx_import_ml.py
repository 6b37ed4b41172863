"""ai.onnx.ml LabelEncoder imports as registry ops (runtimes/onnx_import/ml_label_encoder.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

import graphforge as gf  # noqa: E402


def _model(in_type, out_type, **attrs):
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", in_type, [2, 3])],
                              [helper.make_tensor_value_info("y", out_type, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 4)])


def test_string_keys_to_ints_with_a_default_on_reference_and_onnxruntime():
    g = gf.from_onnx(_model(TensorProto.STRING, TensorProto.INT64, keys_strings=["a", "b", "c"],
                            values_int64s=[7, 8, 9], default_int64=42))
    x = np.array([["a", "c", "zz"], ["b", "b", ""]], dtype=object)
    for backend in ("reference", "onnxruntime"):
        np.testing.assert_array_equal(gf.run(g, [x], backend=backend)[0], [[7, 9, 42], [8, 8, 42]])


def test_int_keys_to_strings_with_onnx_default():
    g = gf.from_onnx(_model(TensorProto.INT64, TensorProto.STRING, keys_int64s=[1, 5], values_strings=["one", "five"]))
    out = gf.run(g, [np.array([[5, 1, 0], [1, 1, 9]])])[0]
    assert out.tolist() == [["five", "one", "_Unused"], ["one", "one", "_Unused"]]
    # JAX runs the numeric lookup once the values are numbers; string tables are refused, typed
    with pytest.raises(gf.UnsupportedOpError, match="XLA has no string type"):
        gf.run(g, [np.array([[5, 1, 0], [1, 1, 9]])], backend="jax")


def test_mismatched_keys_and_values_are_refused():
    with pytest.raises(gf.UnsupportedOpError, match="2 keys but 1 values"):
        # (onnx's checker refuses it too; an unchecked import still gets a typed error)
        gf.from_onnx(_model(TensorProto.INT64, TensorProto.INT64, keys_int64s=[1, 2], values_int64s=[3]), check=False)
