"""float8 / float4 ``quantize_linear`` / ``dequantize_linear`` (graphforge/ops/quantize.py) against onnx's
reference QuantizeLinear/DequantizeLinear: saturating and not, with a zero point, per axis, on the reference,
JAX and onnxruntime back ends (float4e2m1: reference and JAX; onnxruntime has no kernel, a typed refusal)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge.ops.quantize import dequantize_linear, quantize_linear

X = np.array([[0.1, 500.0, -3.3, 1e6], [-1e6, 0.0, 2.75, -0.017]], np.float32)
SCALE = np.array([0.5, 2.0], np.float32)
_ONNX = {"float8e4m3fn": TensorProto.FLOAT8E4M3FN, "float8e5m2": TensorProto.FLOAT8E5M2,
         "float4e2m1": TensorProto.FLOAT4E2M1}


def _onnx_quantize(dtype, saturate):
    zp = helper.make_tensor("z", _ONNX[dtype], [2], [0.0, 0.0])
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0, saturate=int(saturate))
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                                            helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", _ONNX[dtype], [2, 4])], [zp])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    return ReferenceEvaluator(model).run(None, {"x": X, "s": SCALE})[0]


@pytest.mark.parametrize("dtype,saturate", [("float8e4m3fn", True), ("float8e4m3fn", False),
                                            ("float8e5m2", True), ("float8e5m2", False), ("float4e2m1", True)])
def test_float_quantize_matches_onnx_reference(dtype, saturate):
    want = np.asarray(_onnx_quantize(dtype, saturate)).astype(np.float32)
    zp = gf.TensorSpec((2,), dtype)
    graph = gf.trace(lambda x, s, z: quantize_linear(x, s, z, axis=0, saturate=saturate),
                     gf.TensorSpec((2, 4), "float32"), gf.TensorSpec((2,), "float32"), zp)
    z = np.zeros(2, gf.dtypes.to_numpy_dtype(dtype))
    backends = ("reference", "jax") + (("onnxruntime",) if dtype != "float4e2m1" else ())
    for backend in backends:
        (got,) = gf.run(graph, [X, SCALE, z], backend=backend)
        assert str(got.dtype) == str(np.dtype(gf.dtypes.to_numpy_dtype(dtype))), backend
        np.testing.assert_array_equal(got.astype(np.float32), want, err_msg=backend)
    if dtype == "float4e2m1":
        with pytest.raises(gf.UnsupportedOpError, match="float4e2m1"):
            gf.to_onnx(graph)


def test_float8_dequantize_with_zero_point_everywhere():
    q = np.array([0.5, -448.0, 3.0, np.nan], ml_dtypes.float8_e4m3fn)
    graph = gf.trace(lambda x, s, z: dequantize_linear(x, s, z), gf.TensorSpec((4,), "float8e4m3fn"),
                     gf.TensorSpec((), "float32"), gf.TensorSpec((), "float8e4m3fn"))
    args = [q, np.array(2.0, np.float32), np.array(1.0, ml_dtypes.float8_e4m3fn)]
    want = (q.astype(np.float32) - 1.0) * 2.0
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, args, backend=backend)
        np.testing.assert_array_equal(got, want, err_msg=backend)
