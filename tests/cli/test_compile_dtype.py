"""``graphforge compile --dtype float16|bfloat16``: a half-precision ONNX file onnxruntime runs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from cli_helpers import SMALL_MODEL, write


@pytest.mark.parametrize("dtype,elem", [("float16", onnx.TensorProto.FLOAT16), ("bfloat16", onnx.TensorProto.BFLOAT16)])
def test_half_export_runs_in_onnxruntime(tmp_path, dtype, elem):
    from graphforge.cli import main

    path = write(tmp_path, "small.py", SMALL_MODEL)
    out32, out16 = str(tmp_path / "m32.onnx"), str(tmp_path / f"m_{dtype}.onnx")
    assert main(["compile", path, "-o", out32]) == 0
    assert main(["compile", path, "-o", out16, "--dtype", dtype, "--verify", "--atol", "1e-2"]) == 0
    proto = onnx.load(out16)
    assert {i.data_type for i in proto.graph.initializer} == {elem}  # weights stored in the half type
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io stays float32
    import onnxruntime as ort

    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    want = ort.InferenceSession(out32).run(None, {"x": x})[0]
    got = ort.InferenceSession(out16).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=3e-2 if dtype == "bfloat16" else 5e-3)
