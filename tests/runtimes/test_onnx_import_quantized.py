"""Quantized ONNX files from another tool import and run on every back end: onnxruntime's own
``quantize_static`` (QDQ, per channel) and ``quantize_dynamic`` outputs of a float export."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

pytest.importorskip("onnxruntime.quantization")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding="same")
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.flatten(self.conv(x).relu()))


class _Reader:
    def __init__(self, batches):
        self._it = iter([{"x": b} for b in batches])

    def get_next(self):
        return next(self._it, None)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_onnxruntime_quantized_files_import(tmp_path, kind):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    g = gf.optimize(gf.trace(Net(), gf.TensorSpec(("batch", 1, 6, 6)), seed=0, training=False))
    rng = np.random.default_rng(0)
    calib = [rng.random((16, 1, 6, 6), dtype=np.float32) for _ in range(2)]
    src, dst = str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx")
    gf.save_onnx(g, src, opset=21)
    if kind == "static":
        # reduce_range: without it onnxruntime's own u8s8 kernels saturate on x86 without VNNI and the
        # file disagrees with its ONNX meaning (docs/serving.md §10)
        quantize_static(src, dst, _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True)
    else:
        quantize_dynamic(src, dst)
    imported = gf.from_onnx(dst)
    ops = imported.op_counts()
    assert ("quantize_linear" in ops) if kind == "static" else ("dynamic_quantize_linear" in ops), ops
    x = rng.random((3, 1, 6, 6), dtype=np.float32)
    want = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    scale = np.abs(want).max()
    for backend in ("reference", "jax", "onnxruntime"):
        got = gf.run(imported, x, backend=backend)[0]
        assert np.abs(got - want).max() <= 0.05 * scale, backend
