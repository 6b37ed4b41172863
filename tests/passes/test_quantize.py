"""passes/quantize.py: weight quantization numbers, the static plan (sites, ReLU absorption, pass-through
reuse), and the three rewrites checked as IR and numerically (reference and onnxruntime)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes import quantize as q

pytest.importorskip("onnxruntime")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding="same")
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * 2 * 2, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = self.flatten(self.pool(self.conv(x).relu()))
        return self.fc2(self.fc1(x).relu())


def _graph():
    return gf.optimize(gf.trace(SmallCNN(), gf.TensorSpec(("batch", 2, 4, 4), "float32"), seed=1, training=False))


def _data(n=32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 2, 4, 4)).astype(np.float32)


def test_weight_quantization_is_symmetric_per_channel():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -3.0]], np.float32)
    qw, scale = q.quantize_weight(w, 0, reduce_range=False)
    np.testing.assert_allclose(scale, [1.0 / 127, 1.0, 3.0 / 127], rtol=1e-6)  # an all-zero row gets scale 1
    assert qw.dtype == np.int8 and qw[0, 1] == -127 and qw[2, 0] == 127 and qw[2, 2] == -127
    assert not qw[1].any()
    qw7, scale7 = q.quantize_weight(w, 0)  # reduce_range: [-63, 63]
    assert np.abs(qw7).max() == 63
    np.testing.assert_allclose(qw7 * scale7[:, None], w, atol=scale7.max() / 2 + 1e-7)


def test_per_tensor_weight_quantization_has_one_scale_for_every_channel():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -3.0]], np.float32)
    qw, scale = q.quantize_weight(w, 0, reduce_range=False, per_channel=False)
    np.testing.assert_allclose(scale, [3.0 / 127] * 3, rtol=1e-6)  # one value, returned per channel
    assert qw[2, 0] == 127 and qw[0, 1] == -42 and not qw[1].any()
    np.testing.assert_allclose(qw * scale[:, None], w, atol=scale[0] / 2 + 1e-7)


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
def test_per_tensor_scales_are_stored_as_one_value(mode):
    g = _graph()
    calibration = [{"x": _data()}] if mode == "int8-static" else None
    qg = gf.quantize(g, calibration, mode=mode, per_channel=False)
    pc = gf.quantize(g, calibration, mode=mode)

    from graphforge.passes.rewrite import constant_array

    def ranks(graph):  # the number of values in each weight's scale
        out = []
        for n in graph.nodes:
            if mode == "int8-static" and n.op == "dequantize_linear" and n.inputs[0].type.rank >= 2 \
                    and n.inputs[0].type.dtype == "int8":
                v = n.inputs[1]
            elif mode == "int8-dynamic" and n.op == "mul" and n.inputs[0].producer is not None \
                    and n.inputs[0].producer.op == "dynamic_quantize_linear":
                v = n.inputs[1]
            else:
                continue
            a = constant_array(graph, v)
            if a is None and v.producer is not None and v.producer.op == "cast":
                a = constant_array(graph, v.producer.inputs[0])
            out.append(a.size)
        return out

    assert ranks(qg) and max(ranks(qg)) == 1, ranks(qg)   # every weight scale a single value
    assert max(ranks(pc)) > 1                            # per channel by default
    x = _data(8, seed=3)
    want = gf.run(g, {"x": x}, backend="reference")[0]
    got = gf.run(qg, {"x": x}, backend="onnxruntime")[0]
    np.testing.assert_allclose(got, gf.run(qg, {"x": x}, backend="reference")[0], rtol=1e-4, atol=1e-4)
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


def test_blocked_weight_quantization_has_a_scale_per_block():
    w = np.arange(1, 11, dtype=np.float32).reshape(1, 10)  # blocks of 4: [1..4], [5..8], [9, 10]
    qw, scale = q.quantize_weight(w, 1, bits=4, block_size=4)
    np.testing.assert_allclose(scale, [[4 / 7, 8 / 7, 10 / 7]], rtol=1e-6)
    assert qw.min() >= -8 and qw.max() == 7
    deq = qw * np.repeat(scale, 4, axis=1)[:, :10]
    np.testing.assert_allclose(deq, w, atol=scale.max() / 2 + 1e-6)


@pytest.mark.parametrize("lo,hi,dtype,want", [
    (0.0, 2.55, "uint8", (0.01, 0)),
    (-1.0, 1.55, "uint8", (0.01, 100)),
    (0.5, 2.0, "uint8", (2.0 / 255, 0)),        # the range is widened to hold 0
    (0.0, 0.0, "uint8", (1.0, 0)),              # an all-zero activation
    (-2.54, 1.0, "int8", (0.02, 0)),            # signed: symmetric
])
def test_activation_params(lo, hi, dtype, want):
    scale, zp = q.activation_params(lo, hi, dtype)
    assert scale == pytest.approx(want[0], rel=1e-6) and zp == want[1]
    # zero is exactly representable (ReLU outputs and padding stay exact)
    assert float(np.float32(0) / scale + zp) == pytest.approx(round(-lo / scale) if lo < 0 and dtype == "uint8" else 0)


def test_plan_absorbs_relu_and_reuses_ranges_through_pool_and_flatten():
    g = _graph()
    p = q.plan(g)
    assert [n.op for n in p.ops] == ["conv2d", "linear", "linear"]
    keys = [q.value_key(g, v) for v in p.sites]
    assert keys[0] == "x"  # the graph input feeds the conv
    assert len(p.absorbed_relu) == 1  # conv -> relu; fc1's relu is fused into linear
    relu_out = next(v for v in p.sites if id(v) in p.absorbed_relu)
    flat = next(v for v in p.sites if v.producer is not None and v.producer.op == "flatten")
    assert p.root[id(flat)] is relu_out  # pool and flatten move the relu's values: same range
    assert all(not g.is_output(v) for v in p.sites)
    assert len(p.roots) == 3  # input, relu output, fc1 output


def _ranges(g, x):
    from graphforge.runtimes.calibration import calibrate

    return calibrate(g, [x])


def test_static_rewrite_ir_and_numbers():
    g = _graph()
    x = _data()
    qg = q.quantize_static(g, _ranges(g, x))
    qg.verify()
    ops = qg.op_counts()
    assert "relu" not in ops  # both relus are clipped by the uint8 ranges
    assert ops["quantize_linear"] == 4 and ops["conv2d"] == 1 and ops["linear"] == 2
    assert all(n.attrs["activation"] == "none" for n in qg.nodes if n.op == "linear")
    # weights int8, biases int32; no float weight is left
    for node in qg.nodes:
        if node.op in ("conv2d", "linear"):
            w, b = node.inputs[1].producer, node.inputs[2].producer
            assert w.op == b.op == "dequantize_linear"
            assert (w.inputs[0].type.dtype, b.inputs[0].type.dtype) == ("int8", "int32")
    assert not any(v.kind == "param" for v in qg.param_values.values())
    want = gf.run(g, x, backend="reference")[0]
    ref = gf.run(qg, x, backend="reference")[0]
    ort = gf.run(qg, x, backend="onnxruntime")[0]
    jx = gf.run(qg, x, backend="jax")[0]
    scale = np.abs(want).max()
    assert np.abs(ref - want).max() < 0.05 * scale
    assert np.abs(ort - ref).max() < 0.05 * scale  # onnxruntime runs integer kernels: close, not equal
    np.testing.assert_allclose(jx, ref, atol=1e-5)
    assert g.op_counts().get("quantize_linear") is None  # the caller's graph is untouched


def test_static_rewrite_needs_every_range():
    g = _graph()
    with pytest.raises(gf.ConfigError, match="no calibrated range"):
        q.quantize_static(g, {})
    with pytest.raises(gf.ConfigError, match="activation_dtype"):
        q.quantize_static(g, {}, activation_dtype="int4")


def test_signed_activations_keep_relu():
    g = _graph()
    x = _data()
    qg = q.quantize_static(g, _ranges(g, x), activation_dtype="int8")
    assert qg.op_counts()["relu"] == 1
    want = gf.run(g, x, backend="reference")[0]
    got = gf.run(qg, x, backend="onnxruntime")[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_unknown_mode_and_missing_calibration_are_config_errors():
    g = _graph()
    with pytest.raises(gf.ConfigError, match="unknown quantization mode"):
        gf.quantize(g, mode="int3")
    with pytest.raises(gf.ConfigError, match="calibration"):
        gf.quantize(g, mode="int8-static")


def test_graph_without_weights_is_unchanged():
    g = gf.trace(lambda x: gf.relu(x) * 2.0, gf.TensorSpec((2, 3)))
    assert q.plan(g).ops == []
    out = gf.optimize(g, "quantize_dynamic")
    assert out.op_counts() == g.op_counts()


def test_quantized_onnx_is_qdq_with_int8_initializers():
    onnx = pytest.importorskip("onnx")
    g = _graph()
    qg = gf.quantize(g, [_data()])
    proto = gf.to_onnx(qg)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "Round" not in ops
    types = {t.data_type for t in proto.graph.initializer if t.dims and np.prod(t.dims) > 8}
    assert onnx.TensorProto.FLOAT not in types or all(
        len(t.dims) == 1 for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


def test_optimize_after_quantize_keeps_the_weights_quantized():
    """``fold`` never folds a dequantize_linear of constants back into float weights."""
    g = _graph()
    qg = gf.quantize(g, [_data()])
    again = gf.optimize(qg)
    assert again.op_counts()["dequantize_linear"] == qg.op_counts()["dequantize_linear"]
