"""Quantization acceptance on the CNN example's digits data (a short training run): every mode's
ONNX file is >= 3.5x smaller than the float32 export and its onnxruntime test accuracy is within
0.5 percentage points of float32's (360 held-out images: 0.5 pp is under 2 images)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes.quantize import drop_unused_params

pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def trained():
    import optax

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        from _data import digits
        from cnn import LeNet, inputs
    finally:
        sys.path.pop(0)
    x_train, x_test, y_train, y_test = digits()
    x_train, x_test = x_train[:, None], x_test[:, None]
    trainer = gf.Trainer(LeNet(), nn.functional.cross_entropy, optax.adam(3e-3), inputs=[inputs],
                         targets=gf.TensorSpec(("batch",), "int64"), seed=0, progress=False)
    trainer.fit(x_train, y_train, epochs=5, batch_size=64)
    graph = gf.optimize(trainer.export_graph())
    drop_unused_params(graph)  # the float baseline without the pre-fold conv weights `fold` leaves behind
    return graph, x_train, x_test, y_test


def _accuracy(graph, x, y) -> float:
    return float((gf.run(graph, x, backend="onnxruntime")[0].argmax(1) == y).mean())


def _size(graph) -> int:
    return len(gf.to_onnx(graph).SerializeToString())


@pytest.mark.parametrize("mode,options", [
    ("int8-static", {"method": "minmax"}),
    ("int8-static", {"method": "percentile", "percentile": 99.999}),
    ("int8-static", {"method": "entropy"}),
    ("int8-dynamic", {}),
], ids=["static-minmax", "static-percentile", "static-entropy", "dynamic"])
def test_quantized_cnn_is_smaller_and_as_accurate(trained, mode, options):
    graph, x_train, x_test, y_test = trained
    float_acc = _accuracy(graph, x_test, y_test)
    assert float_acc > 0.9  # a trained model, or the comparison means nothing
    calibration = [x_train[:128], x_train[128:256]] if mode == "int8-static" else None
    qg = gf.quantize(graph, calibration, mode=mode, **options)
    ratio = _size(graph) / _size(qg)
    acc = _accuracy(qg, x_test, y_test)
    assert ratio >= 3.5, f"{mode} {options}: only {ratio:.2f}x smaller"
    assert acc >= float_acc - 0.005, f"{mode} {options}: accuracy {acc:.4f} vs float32 {float_acc:.4f}"


def test_static_cnn_runs_as_integer_kernels_in_onnxruntime(trained, tmp_path):
    """The QDQ file is what onnxruntime fuses: QLinearConv and QGemm, no float Conv left."""
    import onnx
    import onnxruntime as ort

    graph, x_train, _, _ = trained
    path = str(tmp_path / "q.onnx")
    gf.save_onnx(gf.quantize(graph, [x_train[:128]]), path)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops and "DequantizeLinear" not in ops, ops


def test_int4_weights_keep_accuracy(trained):
    graph, _, x_test, y_test = trained
    qg = gf.quantize(graph, mode="int4-weight", block_size=32)
    assert _accuracy(qg, x_test, y_test) >= _accuracy(graph, x_test, y_test) - 0.02
    stored = [qg.params[n.inputs[0].name].astype(np.int64) for n in qg.nodes
              if n.op == "dequantize_linear" and n.inputs[0].name in qg.params]
    assert len(stored) == 4 and all(a.min() >= -8 and a.max() <= 7 for a in stored)
