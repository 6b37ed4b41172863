"""Which onnxruntime kernels graphforge's quantized ONNX runs as (read back from the model onnxruntime
optimises, ``SessionOptions.optimized_model_filepath``), and that the faster forms compute the same
numbers: ``conv_integer`` with a constant weight whose partial sums fit float32's exact integers is
exported as a float ``Conv`` over the integer values (onnxruntime's ConvInteger is 2-4x slower), bit
for bit the int32 result of the reference."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.ops.quantize import conv_integer
from gf_testutil import ort_optimized_op_counts

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _conv_graph(w, wz=None, *, as_float=False, groups=1):
    def f(x):
        xz = gf.constant(np.array(3, np.uint8))
        args = [x, gf.constant(w), xz] + ([gf.constant(wz)] if wz is not None else [])
        y = conv_integer(*args, pads=(1, 1, 1, 1), groups=groups)
        return gf.cast(y, "float32") if as_float else y

    return gf.trace(f, gf.TensorSpec(("batch", w.shape[1] * groups, 5, 5), "uint8"))


def _x(c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (2, c, 5, 5)).astype(np.uint8)


@pytest.mark.parametrize("as_float", [False, True], ids=["int32-out", "cast-to-float"])
def test_exact_conv_integer_runs_as_float_conv_with_the_same_integers(as_float, tmp_path):
    w = np.random.default_rng(1).integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    g = _conv_graph(w, as_float=as_float)
    ops = ort_optimized_op_counts(gf.to_onnx(g), tmp_path)
    assert "ConvInteger" not in ops and ops["Conv"] == 1, ops
    if as_float:  # the cast reads the float Conv itself: no float -> int32 -> float round trip
        assert ops["Cast"] <= 1, ops
    x = _x(3)
    want = gf.run(g, {"x": x}, backend="reference")[0]
    got = gf.run(g, {"x": x}, backend="onnxruntime")[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_per_channel_weight_zero_points_and_groups_in_the_float_form(tmp_path):
    w = np.random.default_rng(2).integers(-128, 128, (4, 1, 3, 3)).astype(np.int8)
    g = _conv_graph(w, np.array([0, 5, -7, 100], np.int8), groups=2)
    assert "ConvInteger" not in ort_optimized_op_counts(gf.to_onnx(g), tmp_path)
    x = _x(2)
    np.testing.assert_array_equal(gf.run(g, {"x": x}, backend="onnxruntime")[0],
                                  gf.run(g, {"x": x}, backend="reference")[0])


def test_conv_integer_past_float32s_exact_range_stays_convinteger(tmp_path):
    # 255 * 127 * (72 channels * 9) > 2**24: a float32 sum could round, so the integer kernel stays
    w = np.full((2, 72, 3, 3), 127, np.int8)
    g = _conv_graph(w)
    ops = ort_optimized_op_counts(gf.to_onnx(g), tmp_path)
    assert ops["ConvInteger"] == 1 and "Conv" not in ops, ops
    x = np.full((1, 72, 5, 5), 255, np.uint8)
    np.testing.assert_array_equal(gf.run(g, {"x": x}, backend="onnxruntime")[0],
                                  gf.run(g, {"x": x}, backend="reference")[0])


def test_dynamic_quantized_cnn_runs_float_convs_and_standard_ops_only(tmp_path):
    from graphforge import nn

    net = nn.seq().add(nn.Conv2d(2, 8, 3, padding="same")).add_fn(gf.relu).add(nn.MaxPool2d(2)) \
        .add(nn.Flatten()).add(nn.Linear(8 * 3 * 3, 4))
    g = gf.optimize(gf.trace(net, gf.TensorSpec(("batch", 2, 6, 6)), seed=0, training=False))
    qg = gf.quantize(g, mode="int8-dynamic")
    model = gf.to_onnx(qg)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}  # portable: standard ONNX only
    ops = ort_optimized_op_counts(model, tmp_path)
    assert ops["Conv"] == 1 and "ConvInteger" not in ops and ops["DynamicQuantizeMatMul"] == 1, ops
    x = np.random.default_rng(0).uniform(-1, 1, (8, 2, 6, 6)).astype(np.float32)
    want = gf.run(qg, {"x": x}, backend="reference")[0]
    got = gf.run(qg, {"x": x}, backend="onnxruntime")[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ref = gf.run(g, {"x": x}, backend="reference")[0]
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
def test_quantized_transformer_for_onnxruntime_runs_fused_attention(mode, tmp_path):
    """``contrib_ops=True`` on a quantized graph: each layer's three int8 q/k/v projections and the
    attention are one QAttention over the shared quantized input (calibrated in static mode, quantized
    per call in dynamic mode), no head split/merge Transposes left. Outputs match the portable
    file's; the portable file is standard ONNX, and the contrib file is no larger."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "examples"))
    try:
        import transformer as ex
    finally:
        sys.path.pop(0)
    g = gf.optimize(gf.trace(ex.RowTransformer(), ex.inputs, seed=0, training=False))
    rows = np.random.default_rng(0).random((64, 8, 8), dtype=np.float32)
    qg = gf.quantize(g, [rows] if mode == "int8-static" else None, mode=mode)
    portable, contrib = gf.to_onnx(qg), gf.to_onnx(qg, contrib_ops=True)
    assert {n.domain for n in portable.graph.node} <= {"", "ai.onnx"}
    assert contrib.ByteSize() <= portable.ByteSize()  # packing reads the stored int8 values, stores none twice
    ops = ort_optimized_op_counts(contrib, tmp_path)
    assert "Transpose" not in ops and "Softmax" not in ops, ops
    assert ops["QAttention"] == 2 and ops["MultiHeadAttention"] == 0, ops
    # the other projections (embedding, out-projections, FFNs, head) stay integer kernels
    if mode == "int8-static":
        assert ops["MatMulIntegerToFloat"] + ops["QGemm"] == 8 and ops["QuantizeLinear"] >= 1, ops
    else:
        assert ops["DynamicQuantizeMatMul"] == 8 and ops["MatMulIntegerToFloat"] == 0, ops
    import onnxruntime as ort

    x = rows[:16]
    got, want = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                 .run(None, {"rows": x})[0] for m in (contrib, portable))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
