"""Quantization acceptance on the Transformer example (``examples/transformer.py``'s RowTransformer): each
int8 mode's ONNX file is >= 3.5x smaller than the float32 export, runs as onnxruntime's integer kernels
with nothing dequantized per call, and (slow tier, trained on the digits) keeps the test accuracy within
0.5 percentage points of float32's. The file sizes do not depend on training, so the fast tests use the
untrained model."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import graphforge as gf
from graphforge.passes.quantize import drop_unused_params
from gf_testutil import ort_optimized_op_counts

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _example():
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import transformer
    finally:
        sys.path.pop(0)
    return transformer


@pytest.fixture(scope="module")
def untrained():
    ex = _example()
    graph = gf.optimize(gf.trace(ex.RowTransformer(), ex.inputs, seed=0, training=False))
    drop_unused_params(graph)
    rows = np.random.default_rng(0).random((256, 8, 8), dtype=np.float32)
    return graph, rows


def _size(graph) -> int:
    return len(gf.to_onnx(graph).SerializeToString())


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
def test_quantized_transformer_is_3_5x_smaller_and_runs_as_integer_kernels(untrained, mode, tmp_path):
    graph, rows = untrained
    calibration = [rows[:128], rows[128:]] if mode == "int8-static" else None
    qg = gf.quantize(graph, calibration, mode=mode)
    ratio = _size(graph) / _size(qg)
    assert ratio >= 3.5, f"{mode}: only {ratio:.3f}x smaller"
    # the parts: no LayerNorm affine or float bias/position table is stored float32 (the ones are
    # LayerNormalization's required scale for the norms whose affine was folded away)
    model = gf.to_onnx(qg)
    big_float = [list(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
                 and np.prod(t.dims) >= 32 and not np.all(onnx.numpy_helper.to_array(t) == 1)]
    assert not big_float, big_float
    ops = ort_optimized_op_counts(model, tmp_path)
    assert ops["MatMulIntegerToFloat"] + ops["DynamicQuantizeMatMul"] >= 13, ops
    # weights fused into integer kernels, the int8 biases/tables folded at load: nothing dequantized per call
    assert "DequantizeLinear" not in ops and "Cast" not in ops, ops
    x = rows[:16]
    want = gf.run(graph, x, backend="onnxruntime")[0]
    got = gf.run(qg, x, backend="onnxruntime")[0]
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


def test_other_params_float_keeps_the_old_layout_and_is_larger(untrained):
    graph, rows = untrained
    small = gf.quantize(graph, mode="int8-dynamic")
    kept = gf.quantize(graph, mode="int8-dynamic", other_params="float")
    assert sum(n.op == "layer_norm" and len(n.inputs) == 3 for n in kept.nodes) == 5
    assert sum(n.op == "layer_norm" and len(n.inputs) == 1 for n in small.nodes) == 4  # folded into q/k/v, fc1
    assert _size(kept) > _size(small)  # (untrained: the norms are ones and zeros, stored once each)


@pytest.mark.slow
def test_trained_transformer_quantized_is_smaller_and_as_accurate():
    """The issue's bound on the trained example (the benchmark's training: 10 epochs, AdamW, warm-up +
    cosine): >= 3.5x smaller, test accuracy within 0.5 pp of float32 (360 held-out digits)."""
    from benchmarks.bench_quantize import train_transformer

    graph, x_train, x_test, y_test = train_transformer(10)

    def accuracy(g):
        return float((gf.run(g, x_test, backend="onnxruntime")[0].argmax(1) == y_test).mean())

    float_acc = accuracy(graph)
    assert float_acc > 0.9
    for mode, options in (("int8-static", {}), ("int8-static", {"method": "percentile", "percentile": 99.999}),
                          ("int8-dynamic", {})):
        calibration = [x_train[:128], x_train[128:256]] if mode == "int8-static" else None
        qg = gf.quantize(graph, calibration, mode=mode, **options)
        ratio, acc = _size(graph) / _size(qg), accuracy(qg)
        assert ratio >= 3.5, f"{mode} {options}: only {ratio:.3f}x smaller"
        assert acc >= float_acc - 0.005, f"{mode} {options}: accuracy {acc:.4f} vs float32 {float_acc:.4f}"
