"""runtimes/onnx/contrib.py: ``to_onnx(..., contrib_ops=True)`` emits onnxruntime's com.microsoft fused
kernels from graphforge's fused ops, and its outputs agree with the portable export within 1e-4."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

pytest.importorskip("onnxruntime")

from gf_testutil import ort_optimized_op_counts  # noqa: E402
from graphforge.runtimes.onnx import OrtSession, to_onnx  # noqa: E402


def _ops(proto):
    return collections.Counter(n.op_type for n in proto.graph.node)


def _domains(proto):
    return {o.domain for o in proto.opset_import}


def _encoder():
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", norm_first=False)
    return gf.optimize(gf.trace(layer, gf.TensorSpec(("batch", 5, 16)), seed=0, training=False))


def _agree(graph, arrays):
    portable = OrtSession(graph, contrib_ops=False).run(arrays)
    fused = OrtSession(graph).run(arrays)  # the in-process default: onnxruntime's kernels
    ref = gf.run(graph, arrays, backend="reference")
    for p, f, r in zip(portable, fused, ref):
        np.testing.assert_allclose(f, p, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(f, r, atol=1e-4, rtol=1e-4)


def test_encoder_layer_uses_contrib_kernels_and_agrees():
    g = _encoder()
    proto = to_onnx(g, contrib_ops=True)
    ops = _ops(proto)
    # q/k/v projections of one input: packed into onnxruntime's Attention, weights and all
    assert ops["Attention"] == 1 and ops["MultiHeadAttention"] == 0 and ops["BiasGelu"] == 1, ops
    assert ops["SkipLayerNormalization"] == 0 and ops["LayerNormalization"] == 2, ops  # slower kernel, not used
    assert "com.microsoft" in _domains(proto)
    assert all(n.domain in ("", "com.microsoft") for n in proto.graph.node)
    _agree(g, [np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32)])


@pytest.mark.parametrize("contrib", [False, True])
@pytest.mark.parametrize("seq", [5, "seq"])
def test_residual_norms_escape_the_slow_skip_layer_norm_fusion(contrib, seq, tmp_path):
    # onnxruntime fuses Add -> LayerNormalization on equal 3-D shapes into SkipLayerNormalization,
    # whose CPU kernel measured 2-6x slower; the export's norms read the sum through a Reshape
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, norm_first=False)
    g = gf.optimize(gf.trace(layer, gf.TensorSpec(("batch", seq, 16)), seed=0, training=False))
    proto = to_onnx(g, contrib_ops=contrib)
    assert _ops(proto)["LayerNormalization"] == 2
    loaded = ort_optimized_op_counts(proto, tmp_path)
    assert loaded["SkipLayerNormalization"] == 0 and loaded["LayerNormalization"] == 2, loaded
    x = np.random.default_rng(3).normal(size=(2, 5, 16)).astype(np.float32)
    want = gf.run(g, [x], backend="reference")[0]
    np.testing.assert_allclose(OrtSession(g, contrib_ops=contrib).run([x])[0], want, atol=1e-5, rtol=1e-5)
    assert ("com.microsoft" in _domains(OrtSession(g).proto)) and _domains(OrtSession(g, contrib_ops=False).proto) == {""}


def test_a_norm_not_fed_by_a_residual_sum_stays_one_node():
    g = gf.trace(nn.LayerNorm(8), gf.TensorSpec(("batch", 3, 8)), seed=0)
    assert _ops(to_onnx(g)) == {"LayerNormalization": 1}


def test_portable_export_is_standard_onnx():
    proto = to_onnx(_encoder())
    assert _domains(proto) == {""}
    assert not any(n.domain for n in proto.graph.node)


@pytest.mark.parametrize("causal,mask_shape", [(True, None), (False, (1, 1, 4, 6)), (True, (2, 1, 1, 6)),
                                               (False, (4, 6))])
def test_attention_masks_become_an_additive_bias(causal, mask_shape):
    specs = [gf.TensorSpec((2, 3, 4, 8)), gf.TensorSpec((2, 3, 6, 8)), gf.TensorSpec((2, 3, 6, 8))]
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=s.shape).astype(np.float32) for s in specs]
    if mask_shape is None:
        g = gf.trace(lambda q, k, v: gf.attention(q, k, v, causal=causal, scale=0.3), *specs)
    else:
        specs.append(gf.TensorSpec(mask_shape, "bool"))
        mask = rng.random(mask_shape) < 0.7
        mask[..., 0] = True  # no fully masked row (NaN on every side)
        arrays.append(mask)
        g = gf.trace(lambda q, k, v, m: gf.attention(q, k, v, m, causal=causal), *specs)
    assert _ops(to_onnx(g, contrib_ops=True))["MultiHeadAttention"] == 1
    _agree(g, arrays)


class _SelfAttention(nn.Module):
    """A self-attention layer called with the mask arguments under test."""

    def __init__(self, causal: bool, masked: bool, padded: bool, bias: bool = True):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True)
        self.causal, self.masked, self.padded = causal, masked, padded

    def forward(self, x, mask=None, pad=None):
        return self.attn(x, attn_mask=mask if self.masked else None,
                         key_padding_mask=pad if self.padded else None, is_causal=self.causal)


@pytest.mark.parametrize("causal,masked,padded,bias", [(False, False, False, True), (True, False, False, True),
                                                        (False, True, False, True), (True, False, True, True),
                                                        (False, False, False, False)])
def test_self_attention_packs_its_projections_into_one_attention_kernel(causal, masked, padded, bias):
    rng = np.random.default_rng(4)
    layer = _SelfAttention(causal, masked, padded, bias)
    specs = [gf.TensorSpec(("batch", 6, 16)), gf.TensorSpec((6, 6), "bool"), gf.TensorSpec(("batch", 6), "bool")]
    g = gf.optimize(gf.trace(layer, *specs, seed=0, training=False))
    mask = rng.random((6, 6)) < 0.3
    np.fill_diagonal(mask, False)  # every query keeps a key (a fully masked row is NaN everywhere)
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    arrays = [rng.normal(size=(2, 6, 16)).astype(np.float32), mask, pad][:len(g.inputs)]
    proto = to_onnx(g, contrib_ops=True)
    ops = _ops(proto)
    assert ops["Attention"] == 1 and ops["MatMul"] == 1, ops  # only the output projection is left
    read = {name for n in proto.graph.node for name in n.input}
    assert all(t.name in read for t in proto.graph.initializer)  # no unpacked q/k/v weights stored
    assert not any("q_proj" in t.name or "k_proj" in t.name for t in proto.graph.initializer)
    _agree(g, arrays)


def test_attention_over_other_inputs_or_fed_weights_stays_multi_head_attention():
    cross = nn.MultiheadAttention(16, 4, batch_first=True)
    g = gf.optimize(gf.trace(lambda q, kv: cross(q, kv, kv), gf.TensorSpec((2, 3, 16)), gf.TensorSpec((2, 5, 16)),
                             seed=0, training=False))
    assert _ops(to_onnx(g, contrib_ops=True))["MultiHeadAttention"] == 1
    rng = np.random.default_rng(5)
    _agree(g, [rng.normal(size=(2, 3, 16)).astype(np.float32), rng.normal(size=(2, 5, 16)).astype(np.float32)])
    enc = _encoder()
    fed = _ops(to_onnx(enc, contrib_ops=True, params_as_inputs=True))
    assert fed["MultiHeadAttention"] == 1 and fed["Attention"] == 0, fed  # no weights to pack at export time


@pytest.mark.parametrize("activation,kernel", [("gelu", "BiasGelu"), ("gelu_tanh", "FastGelu")])
def test_linear_gelu_becomes_bias_gelu(activation, kernel):
    g = gf.optimize(gf.trace(_lin(activation), gf.TensorSpec(("batch", 3, 8)), seed=0))
    assert _ops(to_onnx(g, contrib_ops=True))[kernel] == 1
    _agree(g, [np.random.default_rng(2).normal(size=(2, 3, 8)).astype(np.float32)])


def _lin(activation):
    layer = nn.Linear(8, 16)

    def f(x):
        return gf.linear(x, layer.weight, layer.bias, activation=activation)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = layer

        def forward(self, x):
            return f(x)
    return M()


def test_scalar_gelu_keeps_the_standard_lowering():
    # found by the fuzz tier once in-process sessions defaulted to contrib: FastGelu needs rank >= 1
    g = gf.trace(lambda x: gf.gelu(x, approximate="tanh"), gf.TensorSpec(()))
    assert "FastGelu" not in _ops(to_onnx(g, contrib_ops=True))
    _agree(g, [np.asarray(0.7, np.float32)])


def test_float64_and_unfused_graphs_keep_standard_ops():
    g = gf.trace(lambda x: gf.gelu(x, approximate="tanh"), gf.TensorSpec((2, 3), "float64"))
    proto = to_onnx(g, contrib_ops=True)
    assert _domains(proto) == {""}
    g32 = gf.trace(lambda x: gf.gelu(x, approximate="tanh"), gf.TensorSpec((2, 3)))
    assert _ops(to_onnx(g32, contrib_ops=True))["FastGelu"] == 1
    _agree(g32, [np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)])


def _dynamic_self_attention(causal: bool, masked: bool = False, bias: bool = True, weights=None,
                            mode: str = "int8-dynamic", padded: bool = False, **options):
    layer = _SelfAttention(causal, masked, padded, bias)
    specs = [gf.TensorSpec(("batch", 6, 16)), gf.TensorSpec((6, 6), "bool"), gf.TensorSpec(("batch", 6), "bool")]
    specs = specs if padded else specs[:1 + masked]  # (forward's arguments are positional: x, mask, pad)
    g = gf.optimize(gf.trace(layer, *specs, seed=0, training=False))
    if weights is not None:
        g.params.update(weights(g.params))
    rng = np.random.default_rng(10)
    data = [rng.normal(size=(8, 6, 16)).astype(np.float32), np.ones((6, 6), bool), np.zeros((8, 6), bool)]
    calibration = [data if padded else data[:1 + masked]]
    return gf.quantize(g, calibration if mode == "int8-static" else None, mode=mode, **options)


def _packed_inputs(proto):
    node = next(n for n in proto.graph.node if n.op_type == "QAttention")
    return node, {o: n for n in proto.graph.node for o in n.output}


@pytest.mark.parametrize("mode,causal,bias", [("int8-dynamic", False, True), ("int8-dynamic", True, True),
                                               ("int8-dynamic", False, False), ("int8-static", False, True),
                                               ("int8-static", True, False)])
def test_quantized_self_attention_is_one_qattention(mode, causal, bias):
    qg = _dynamic_self_attention(causal, bias=bias, mode=mode)
    proto = to_onnx(qg, contrib_ops=True)
    ops = _ops(proto)
    # q/k/v: one QAttention over the shared quantized input; only the output projection stays
    assert ops["QAttention"] == 1 and ops["MultiHeadAttention"] == 0, ops
    assert ops["MatMulInteger"] + ops["DequantizeLinear"] == (1 if mode == "int8-dynamic" else 2), ops
    node, producers = _packed_inputs(proto)
    attrs = {a.name: a for a in node.attribute}
    assert ("unidirectional" in attrs) == causal
    quantizer = "DynamicQuantizeLinear" if mode == "int8-dynamic" else "QuantizeLinear"
    assert producers[node.input[0]].op_type == quantizer
    assert producers[node.input[1]].op_type == "Concat"  # over the three stored int8 weights
    assert proto.ByteSize() <= to_onnx(qg).ByteSize()
    x = np.random.default_rng(6).normal(size=(3, 6, 16)).astype(np.float32)
    portable = OrtSession(qg, contrib_ops=False).run([x])[0]
    np.testing.assert_allclose(OrtSession(qg).run([x])[0], portable, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(OrtSession(qg).run([x])[0], gf.run(qg, [x], backend="reference")[0],
                               atol=1e-4, rtol=1e-4)


def test_dynamic_quantized_attention_with_equal_column_scales_passes_one_scale():
    def equal_columns(params):  # every output column's largest |weight| the same: one per-tensor scale
        out = {}
        for name, w in params.items():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                w = np.asarray(w).copy()
                w[:, 0] = 0.5
                out[name] = np.clip(w, -0.5, 0.5)
        return out

    qg = _dynamic_self_attention(False, weights=equal_columns)
    proto = to_onnx(qg, contrib_ops=True)
    node, producers = _packed_inputs(proto)
    scale = node.input[4]
    assert scale not in producers or producers[scale].op_type != "Concat"  # not a column vector
    x = np.random.default_rng(7).normal(size=(2, 6, 16)).astype(np.float32)
    np.testing.assert_allclose(OrtSession(qg).run([x])[0], OrtSession(qg, contrib_ops=False).run([x])[0],
                               atol=1e-5, rtol=1e-5)


def test_masked_dynamic_quantized_attention_keeps_multi_head_attention():
    # a (query x key) mask: QAttention takes key padding only (mask_index), so the integer projections stay
    qg = _dynamic_self_attention(False, masked=True)
    ops = _ops(to_onnx(qg, contrib_ops=True))
    assert ops["QAttention"] == 0 and ops["MultiHeadAttention"] == 1 and ops["MatMulInteger"] == 4, ops
    rng = np.random.default_rng(8)
    mask = rng.random((6, 6)) < 0.3
    np.fill_diagonal(mask, False)
    x = rng.normal(size=(2, 6, 16)).astype(np.float32)
    np.testing.assert_allclose(OrtSession(qg).run([x, mask])[0], OrtSession(qg, contrib_ops=False).run([x, mask])[0],
                               atol=1e-5, rtol=1e-5)


def test_hand_written_dynamic_projections_with_per_tensor_scales_pack_too():
    # the pattern, spelled with the quantization ops directly: one scalar scale per projection, all
    # different (a column vector in the kernel), zero points given, one projection without a bias
    from graphforge.ops.nn_attention import attention
    from graphforge.ops.quantize import dynamic_quantize_linear, matmul_integer

    rng = np.random.default_rng(9)
    weights = [rng.integers(-60, 61, (16, 16)).astype(np.int8) for _ in range(3)]
    scales, biases = [0.01, 0.02, 0.015], [rng.normal(size=16).astype(np.float32), None, None]

    def f(x):
        xq, xs, xz = dynamic_quantize_linear(x)
        heads = []
        for w, s, b in zip(weights, scales, biases):
            acc = matmul_integer(xq, gf.constant(w), xz, gf.constant(np.array(0, np.int8)))
            y = gf.cast(acc, "float32") * (xs * gf.constant(np.array(s, np.float32)))
            y = y + gf.constant(b) if b is not None else y
            heads.append(gf.transpose(gf.reshape(y, (-1, 6, 4, 4)), (0, 2, 1, 3)))
        return attention(*heads)

    g = gf.trace(f, gf.TensorSpec(("batch", 6, 16)))
    proto = to_onnx(g, contrib_ops=True)
    assert _ops(proto)["QAttention"] == 1 and _ops(proto)["MatMulInteger"] == 0, _ops(proto)
    x = rng.normal(size=(2, 6, 16)).astype(np.float32)
    np.testing.assert_allclose(OrtSession(g).run([x])[0], OrtSession(g, contrib_ops=False).run([x])[0],
                               atol=1e-5, rtol=1e-5)


def test_static_attention_on_int8_activations_keeps_multi_head_attention():
    # QAttention's input is uint8: int8 activations keep the three projections
    qg = _dynamic_self_attention(False, mode="int8-static", activation_dtype="int8")
    ops = _ops(to_onnx(qg, contrib_ops=True))
    assert ops["QAttention"] == 0 and ops["MultiHeadAttention"] == 1, ops
    x = np.random.default_rng(11).normal(size=(2, 6, 16)).astype(np.float32)
    np.testing.assert_allclose(OrtSession(qg).run([x])[0], OrtSession(qg, contrib_ops=False).run([x])[0],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode,causal", [("int8-dynamic", False), ("int8-dynamic", True), ("int8-static", False)])
def test_quantized_attention_with_key_padding_is_qattention_with_a_mask_index(mode, causal):
    qg = _dynamic_self_attention(causal, mode=mode, padded=True)
    proto = to_onnx(qg, contrib_ops=True)
    assert _ops(proto)["QAttention"] == 1 and _ops(proto)["MultiHeadAttention"] == 0, _ops(proto)
    node, producers = _packed_inputs(proto)
    assert len(node.input) > 5 and producers[node.input[5]].op_type == "Cast"  # (B, Sk) int32, 1 = attend
    rng = np.random.default_rng(13)
    x = rng.normal(size=(3, 6, 16)).astype(np.float32)
    pad = np.zeros((3, 6), bool)
    pad[1, 4:], pad[2, 1:] = True, True  # PyTorch's key_padding_mask: True = ignore; every row keeps a key
    assert len(qg.inputs) == 3
    arrays = [x, np.ones((6, 6), bool), pad]
    want = OrtSession(qg, contrib_ops=False).run(arrays)[0]
    got = OrtSession(qg).run(arrays)[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    unpadded = OrtSession(qg).run([x, arrays[1], np.zeros_like(pad)])[0]
    assert np.abs(got[1:] - unpadded[1:]).max() > 1e-3  # the padding reached the kernel
