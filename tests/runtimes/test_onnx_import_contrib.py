"""runtimes/onnx_import/contrib.py: files with onnxruntime's com.microsoft kernels import — graphforge's own
contrib exports round-trip, and single kernels (and onnxruntime's transformer optimizer's output) compute
what onnxruntime computes for them."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphforge as gf
from graphforge import nn
from graphforge.errors import UnsupportedOpError

ort = pytest.importorskip("onnxruntime")

from gf_testutil import ort_optimized_model  # noqa: E402
from graphforge.runtimes.onnx import to_onnx  # noqa: E402

RNG = np.random.default_rng(12)


def _ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _imported(model, feeds):
    g = gf.from_onnx(model)
    return gf.run(g, [feeds[v.name] for v in g.inputs], backend="reference")


def _x(*shape):
    return RNG.normal(size=shape).astype(np.float32)


class _SelfAttention(nn.Module):
    def __init__(self, causal=False, masked=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.causal, self.masked = causal, masked

    def forward(self, x, mask=None):
        return self.attn(x, attn_mask=mask if self.masked else None, is_causal=self.causal)


def _traced(module, *specs):
    return gf.optimize(gf.trace(module, *specs, seed=0, training=False))


@pytest.mark.parametrize("case", ["encoder", "causal", "masked", "cross", "gelu_tanh"])
def test_graphforge_contrib_exports_round_trip(case):
    x = _x(2, 6, 16)
    if case == "encoder":
        g, arrays, kernel = _traced(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu"),
                                    gf.TensorSpec(("batch", 6, 16))), [x], "Attention"
    elif case in ("causal", "masked"):
        spec = [gf.TensorSpec(("batch", 6, 16))] + ([gf.TensorSpec((6, 6), "bool")] if case == "masked" else [])
        mask = RNG.random((6, 6)) < 0.3
        np.fill_diagonal(mask, False)
        g = _traced(_SelfAttention(causal=case == "causal", masked=case == "masked"), *spec)
        arrays, kernel = [x, mask][:len(spec)], "Attention"
    elif case == "cross":
        cross = nn.MultiheadAttention(16, 4, batch_first=True)
        g = _traced(lambda q, kv: cross(q, kv, kv), gf.TensorSpec((2, 3, 16)), gf.TensorSpec((2, 6, 16)))
        arrays, kernel = [_x(2, 3, 16), x], "MultiHeadAttention"
    else:
        lin = nn.Linear(16, 8)
        g = _traced(lambda t: gf.gelu(lin(t), approximate="tanh"), gf.TensorSpec(("batch", 16)))
        arrays, kernel = [_x(4, 16)], "FastGelu"
    proto = to_onnx(g, contrib_ops=True)
    assert kernel in {n.op_type for n in proto.graph.node if n.domain == "com.microsoft"}
    got = gf.run(gf.from_onnx(proto), arrays, backend="reference")[0]
    np.testing.assert_allclose(got, gf.run(g, arrays, backend="reference")[0], atol=1e-4, rtol=1e-4)


class _PaddedSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x, pad):
        return self.attn(x, key_padding_mask=pad)


@pytest.mark.parametrize("mode,padded", [("int8-dynamic", False), ("int8-static", False), ("int8-dynamic", True)])
def test_quantized_contrib_exports_import_as_onnxruntime_runs_them(mode, padded):
    specs = [gf.TensorSpec(("batch", 6, 16))] + ([gf.TensorSpec(("batch", 6), "bool")] if padded else [])
    g = _traced(_PaddedSelfAttention() if padded else _SelfAttention(), *specs)
    calib = [[_x(8, 6, 16)] + ([np.zeros((8, 6), bool)] if padded else [])]
    qg = gf.quantize(g, calib if mode == "int8-static" else None, mode=mode)
    proto = to_onnx(qg, contrib_ops=True)
    assert "QAttention" in {n.op_type for n in proto.graph.node}
    feeds = {"x": _x(3, 6, 16)}
    if padded:
        pad = np.zeros((3, 6), bool)
        pad[0, 3:] = True
        feeds[proto.graph.input[1].name] = pad
    got = _imported(proto, feeds)[0]
    np.testing.assert_allclose(got, _ort(proto, feeds)[0], atol=1e-4, rtol=1e-4)


def _one_node(op, inputs: dict, consts: dict, outputs: int = 1, **attrs):
    """A model of one com.microsoft node: graph inputs ``inputs`` (name -> array), initializers
    ``consts``, node inputs in the order given (an empty name for an absent one)."""
    names = list(inputs) + list(consts)
    order = attrs.pop("order", names)
    node = helper.make_node(op, order, [f"y{i}" for i in range(outputs)], domain="com.microsoft", **attrs)
    graph = helper.make_graph(
        [node], "contrib",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(outputs)],
        [numpy_helper.from_array(a, n) for n, a in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def _agree(model, feeds, atol=1e-5):
    want = _ort(model, feeds)
    # the graph outputs typed with the shapes onnxruntime gave (a file must declare them)
    for out, w in zip(model.graph.output, want):
        out.CopyFrom(helper.make_tensor_value_info(out.name, TensorProto.FLOAT, w.shape))
    got = _imported(model, feeds)
    assert len(got) == len(want)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, atol=atol, rtol=atol)


def test_skip_layer_normalization_matches_onnxruntime():
    feeds = {"x": _x(2, 5, 8), "skip": _x(2, 5, 8)}
    consts = {"gamma": _x(8), "beta": _x(8), "bias": _x(8)}
    _agree(_one_node("SkipLayerNormalization", feeds, consts, outputs=1, epsilon=1e-5), feeds)
    # the sum is output 3 (mean and inverse std dev left out)
    node_outputs = ["y0", "", "", "y3"]
    model = _one_node("SkipLayerNormalization", feeds, consts, outputs=1, epsilon=1e-5)
    model.graph.node[0].output[:] = node_outputs
    model.graph.output.append(helper.make_tensor_value_info("y3", TensorProto.FLOAT, None))
    _agree(model, feeds)


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.5}, {"transA": 1, "transB": 1}])
def test_fused_matmul_matches_onnxruntime(attrs):
    a = _x(3, 4, 5) if not attrs.get("transA") else _x(3, 5, 4)
    b = _x(5, 6) if not attrs.get("transB") else _x(6, 5)
    _agree(_one_node("FusedMatMul", {"a": a, "b": b}, {}, **attrs), {"a": a, "b": b})


@pytest.mark.parametrize("op,bias", [("Gelu", False), ("BiasGelu", True), ("FastGelu", False), ("FastGelu", True)])
def test_gelus_match_onnxruntime(op, bias):
    x = _x(2, 3, 8)
    _agree(_one_node(op, {"x": x}, {"b": _x(8)} if bias else {}), {"x": x}, atol=1e-4)


@pytest.mark.parametrize("with_bias,with_mask,causal", [(False, False, False), (True, False, False),
                                                        (False, True, False), (True, False, True)])
def test_multi_head_attention_matches_onnxruntime(with_bias, with_mask, causal):
    q, k, v = _x(2, 4, 16), _x(2, 4, 16), _x(2, 4, 16)
    feeds = {"q": q, "k": k, "v": v}
    consts, order = {}, ["q", "k", "v"]
    if with_bias:
        consts["bias"] = _x(48)
        order.append("bias")
    if with_mask:
        mask = np.where(RNG.random((2, 1, 4, 4)) < 0.3, -np.inf, 0).astype(np.float32)
        mask[..., 0] = 0  # every query keeps a key
        consts["attention_bias"] = mask
        order += [""] * (4 - len(order)) + ["", "attention_bias"]
    attrs = {"num_heads": 4, "order": order} | ({"unidirectional": 1} if causal else {})
    _agree(_one_node("MultiHeadAttention", feeds, consts, **attrs), feeds, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_matches_onnxruntime(causal):
    x = _x(2, 5, 16)
    consts = {"w": _x(16, 48) * 0.3, "b": _x(48)}
    attrs = {"num_heads": 4} | ({"unidirectional": 1} if causal else {})
    _agree(_one_node("Attention", {"x": x}, consts, **attrs), {"x": x}, atol=1e-5)


def test_the_model_onnxruntime_runs_imports(tmp_path):
    """What onnxruntime itself writes: graphforge's portable encoder layer after onnxruntime's load-time
    fusions (FusedMatMul for q·kᵀ)."""
    g = _traced(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu"), gf.TensorSpec((2, 5, 16)))
    path = str(tmp_path / "m.onnx")
    gf.save_onnx(g, path)
    model = ort_optimized_model(path, tmp_path)
    assert "FusedMatMul" in {n.op_type for n in model.graph.node if n.domain == "com.microsoft"}
    x = _x(2, 5, 16)
    name = model.graph.input[0].name
    np.testing.assert_allclose(_imported(model, {name: x})[0], _ort(model, {name: x})[0], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(_imported(model, {name: x})[0], gf.run(g, [x], backend="reference")[0],
                               atol=1e-4, rtol=1e-4)


def test_onnxruntime_skip_layer_norm_fusion_imports(tmp_path):
    """A plain Add → LayerNormalization that onnxruntime fuses into SkipLayerNormalization at load."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    graph = helper.make_graph(nodes, "skip", [helper.make_tensor_value_info(n, TensorProto.FLOAT, (2, 5, 8))
                                              for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 5, 8))],
                              [numpy_helper.from_array(_x(8), "gamma"), numpy_helper.from_array(_x(8), "beta")])
    model = ort_optimized_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path)
    assert [n.op_type for n in model.graph.node] == ["SkipLayerNormalization"]
    feeds = {"a": _x(2, 5, 8), "b": _x(2, 5, 8)}
    np.testing.assert_allclose(_imported(model, feeds)[0], _ort(model, feeds)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op,form", [("Attention", "raw"), ("Attention", "lengths"), ("QAttention", "raw")])
def test_mask_index_is_onnxruntimes_additive_mask(op, form):
    x = _x(2, 5, 16)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32) if form == "raw" else np.array([3, 5], np.int32)
    if op == "Attention":
        consts = {"w": _x(16, 48) * 0.3, "b": _x(48), "mask_index": mask}
        feeds = {"x": x}
    else:
        feeds = {"x": RNG.integers(0, 256, (2, 5, 16)).astype(np.uint8)}
        consts = {"w": RNG.integers(-60, 61, (16, 48)).astype(np.int8), "b": _x(48), "xs": np.array(0.02, np.float32),
                  "ws": np.array(0.01, np.float32), "mask_index": mask, "xz": np.array(128, np.uint8)}
    _agree(_one_node(op, feeds, consts, num_heads=4), feeds, atol=1e-5)


def test_kernel_inputs_graphforge_cannot_express_are_refused_by_name():
    x = _x(2, 5, 16)
    consts = {"w": _x(16, 48), "b": _x(48), "mask_index": np.array([5, 3, 0, 0], np.int32)}  # (2B): starts too
    model = _one_node("Attention", {"x": x}, consts, num_heads=4)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y0", TensorProto.FLOAT, (2, 5, 16)))
    with pytest.raises(UnsupportedOpError, match="mask_index"):
        gf.from_onnx(model)
    model = _one_node("FusedMatMul", {"a": _x(2, 3, 4), "b": _x(2, 4, 5)}, {}, transBatchA=1)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y0", TensorProto.FLOAT, (2, 3, 5)))
    with pytest.raises(UnsupportedOpError, match="transBatchA"):
        gf.from_onnx(model)


@pytest.mark.parametrize("quantized", [False, True])
def test_masked_attention_imports_at_symbolic_sequence_lengths(quantized):
    """A key-padding mask at a symbolic sequence length: the float file's Attention (its 0/−inf
    attention_bias) and the int8 file's QAttention (its mask_index) both import as the registry's
    ``attention`` op with the boolean mask, and run at other lengths."""
    g = _traced(_PaddedSelfAttention(), gf.TensorSpec(("batch", "seq", 16)), gf.TensorSpec(("batch", "seq"), "bool"))
    if quantized:
        g = gf.quantize(g, mode="int8-dynamic")
    proto = to_onnx(g, contrib_ops=True)
    assert ("QAttention" if quantized else "Attention") in {n.op_type for n in proto.graph.node}
    imported = gf.from_onnx(proto)
    assert [n.op for n in imported.nodes].count("attention") == 1
    for seq in (4, 9):
        x = _x(2, seq, 16)
        pad = np.zeros((2, seq), bool)
        pad[1, 2:] = True
        got = gf.run(imported, [x, pad], backend="reference")[0]
        want = _ort(proto, {i.name: a for i, a in zip(proto.graph.input, (x, pad))})[0]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_skip_layer_normalization_default_epsilon_is_onnxruntimes():
    # onnxruntime's default epsilon is 1e-12: with a variance of ~1e-6, 1e-5 would be far off
    feeds = {"x": _x(1, 2, 8) * 1e-3, "skip": _x(1, 2, 8) * 1e-3}
    _agree(_one_node("SkipLayerNormalization", feeds, {"gamma": np.ones(8, np.float32)}), feeds, atol=1e-4)


@pytest.mark.parametrize("mode", ["int8-dynamic", "int8-static"])
@pytest.mark.parametrize("contrib", [False, True])
def test_the_quantized_model_onnxruntime_runs_imports(mode, contrib, tmp_path):
    """onnxruntime's fusions of a quantized file (DynamicQuantizeMatMul, MatMulIntegerToFloat, QGemm,
    QAttention) import as the same integer arithmetic: outputs equal up to float rounding order."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "examples"))
    try:
        import transformer as ex
    finally:
        sys.path.pop(0)
    g = _traced(ex.RowTransformer(), ex.inputs)
    rows = RNG.random((64, 8, 8), dtype=np.float32)
    qg = gf.quantize(g, [rows] if mode == "int8-static" else None, mode=mode)
    path = str(tmp_path / "q.onnx")
    gf.save_onnx(qg, path, contrib_ops=contrib)
    model = ort_optimized_model(path, tmp_path)
    fused = {n.op_type for n in model.graph.node if n.domain == "com.microsoft"}
    want_ops = {"QAttention"} if contrib else {"MatMulIntegerToFloat"}
    want_ops |= {"DynamicQuantizeMatMul"} if mode == "int8-dynamic" else {"QGemm", "MatMulIntegerToFloat"}
    assert want_ops <= fused, fused
    x = rows[:16]
    np.testing.assert_allclose(_imported(model, {"rows": x})[0], _ort(model, {"rows": x})[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("trans_b,alpha", [(0, 1.0), (1, 0.5)])
def test_qgemm_with_an_int32_bias_matches_onnxruntime(trans_b, alpha):
    feeds = {"a": RNG.integers(0, 256, (4, 16)).astype(np.uint8)}
    w = RNG.integers(-60, 61, (8, 16) if trans_b else (16, 8)).astype(np.int8)
    consts = {"a_scale": np.array(0.02, np.float32), "a_zp": np.array(120, np.uint8), "b": w,
              "b_scale": np.array(0.01, np.float32), "b_zp": np.array(0, np.int8),
              "c": RNG.integers(-500, 500, (8,)).astype(np.int32)}
    order = ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "c"]
    _agree(_one_node("QGemm", feeds, consts, order=order, transB=trans_b, alpha=alpha), feeds, atol=1e-5)


@pytest.mark.parametrize("op,inputs,consts,out,attrs", [
    ("Attention", {"x": (2, 5, 16)}, {"w": np.zeros((16, 48), np.float32)}, (2, 5, 16), {}),  # no num_heads
    ("Attention", {"x": (2, 5, 16)}, {"w": np.zeros((16, 47), np.float32)}, (2, 5, 16), {"num_heads": 4}),
    ("MultiHeadAttention", {"q": (2, 4, 5, 4), "k": (2, 4, 5, 4), "v": (2, 4, 5, 4)}, {}, (2, 5, 16), {"num_heads": 4}),
    ("SkipLayerNormalization", {"x": (2, 5, 8), "s": (2, 5, 8)}, {}, (2, 5, 8), {}),  # no gamma
    ("DynamicQuantizeMatMul", {"a": (2, 4)}, {"b": np.zeros((4, 3), np.int8)}, (2, 3), {}),  # no b_scale
])
def test_malformed_contrib_nodes_are_typed_errors(op, inputs, consts, out, attrs):
    from graphforge.errors import GraphforgeError

    node = helper.make_node(op, list(inputs) + list(consts), ["y"], domain="com.microsoft", **attrs)
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                              for n, s in inputs.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(GraphforgeError, match=op):
        gf.from_onnx(model)
