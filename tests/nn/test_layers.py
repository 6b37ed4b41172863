"""nn layers built on the nn ops: shapes, parameter names and counts equal to PyTorch's (by formula),
PyTorch's initialisation bounds, train vs eval behaviour (BatchNorm running statistics, Dropout),
parameter sharing, trace-time errors naming the module path and the user's line, and a Transformer
encoder traced with a symbolic batch and checked against NumPy on the reference back end."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from gf_testutil import zip_outputs

RNG = np.random.default_rng(0)


def _trace(module, *shapes, training=False, dtype="float32"):
    specs = [s if isinstance(s, gf.TensorSpec) else gf.TensorSpec(s, dtype) for s in shapes]
    return gf.trace(module, *specs, training=training, seed=0)


# ---- parameter names and counts (PyTorch's, by formula) ---------------------------------------

E, H, F = 16, 4, 24
PARAM_CASES = [
    ("conv", lambda: nn.Conv2d(3, 8, 3), ["weight", "bias"], 8 * 3 * 9 + 8),
    ("conv_grouped_nobias", lambda: nn.Conv2d(4, 6, (3, 2), groups=2, bias=False), ["weight"], 6 * 2 * 6),
    ("conv_transpose", lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), ["weight", "bias"], 4 * 3 * 9 + 6),
    ("batch_norm", lambda: nn.BatchNorm2d(5), ["weight", "bias", "running_mean", "running_var"], 10),
    ("layer_norm", lambda: nn.LayerNorm((3, 4)), ["weight", "bias"], 24),
    ("embedding", lambda: nn.Embedding(10, 6), ["weight"], 60),
    ("mha", lambda: nn.MultiHeadAttention(E, H), [f"{p}_proj.{k}" for p in "qkv" + "o" for k in ("weight", "bias")],
     4 * E * E + 4 * E),
    ("encoder_layer", lambda: nn.TransformerEncoderLayer(E, H, F), None,
     (4 * E * E + 4 * E) + (E * F + F) + (F * E + E) + 2 * (2 * E)),
    ("pools", lambda: nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Dropout(0.1)), [], 0),
]


@pytest.mark.parametrize("name,make,names,count", PARAM_CASES, ids=[c[0] for c in PARAM_CASES])
def test_parameter_names_and_counts_match_pytorch(name, make, names, count):
    module = make()
    got = [n for n, _ in module.named_parameters()]
    if names is not None:
        want = [n.replace("o_proj", "out_proj") for n in names]
        assert got == want
    assert module.num_parameters() == count


def test_encoder_module_paths():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, F), 2, norm=nn.LayerNorm(E))

        def forward(self, x):
            return self.encoder(x)

    m = Model()
    names = [n for n, _ in m.named_parameters()]
    assert names[0] == "encoder.layers.0.attn.q_proj.weight"
    assert "encoder.layers.1.ffn.fc1.weight" in names and "encoder.layers.1.ffn.fc2.bias" in names
    assert "encoder.layers.0.norm2.bias" in names and names[-1] == "encoder.norm.bias"
    per_layer = (4 * E * E + 4 * E) + (E * F + F) + (F * E + E) + 4 * E
    assert m.num_parameters() == 2 * per_layer + 2 * E
    g = _trace(m, ("batch", 5, E))
    # The copies are independent parameters with their own initial values.
    assert not np.array_equal(g.params["encoder.layers.0.ffn.fc1.weight"], g.params["encoder.layers.1.ffn.fc1.weight"])
    assert {n.scope for n in g.nodes if n.op == "attention"} == {"encoder.layers.0.attn", "encoder.layers.1.attn"}


def test_initialisation_follows_pytorch():
    g = _trace(nn.Conv2d(3, 8, (3, 2)), (1, 3, 5, 5))
    bound = 1 / math.sqrt(3 * 3 * 2)  # kaiming_uniform(a=sqrt(5)) and the fan-in bias
    for name in ("weight", "bias"):
        assert np.abs(g.params[name]).max() <= bound and np.abs(g.params[name]).max() > 0.5 * bound
    mha = nn.MultiHeadAttention(E, H)
    gm = _trace(mha, (2, 3, E))
    qb = math.sqrt(6 / (E + 3 * E))  # xavier on PyTorch's packed (3E, E) in-projection
    assert np.abs(gm.params["q_proj.weight"]).max() <= qb and np.abs(gm.params["q_proj.weight"]).max() > 0.8 * qb
    for name in ("q_proj.bias", "k_proj.bias", "v_proj.bias", "out_proj.bias"):
        assert not gm.params[name].any()
    bn = _trace(nn.BatchNorm2d(3), (2, 3, 2, 2))
    np.testing.assert_array_equal(bn.params["weight"], np.ones(3))
    np.testing.assert_array_equal(bn.params["running_var"], np.ones(3))
    assert bn.param_values["running_mean"].kind == "buffer"
    emb = _trace(nn.Embedding(5, 3, padding_idx=2), gf.TensorSpec((4,), "int64"))
    assert not emb.params["weight"][2].any() and emb.params["weight"][0].any()


# ---- shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make,in_shape,out_shape", [
    (lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1), ("batch", 3, 9, 9), ("batch", 8, 5, 5)),
    (lambda: nn.Conv2d(3, 8, 5, padding="same", dilation=2), ("batch", 3, 9, 9), ("batch", 8, 9, 9)),
    (lambda: nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1), ("batch", 8, 5, 5),
     ("batch", 3, 10, 10)),
    (lambda: nn.MaxPool2d(3, 2, 1), ("batch", 4, 9, 8), ("batch", 4, 5, 4)),
    (lambda: nn.AvgPool2d(2, ceil_mode=True), ("batch", 4, 5, 5), ("batch", 4, 3, 3)),
    (lambda: nn.GlobalAvgPool2d(), ("batch", 4, 5, 5), ("batch", 4, 1, 1)),
    (lambda: nn.BatchNorm2d(4), ("batch", 4, 5, 5), ("batch", 4, 5, 5)),
    (lambda: nn.LayerNorm(6), ("batch", 3, 6), ("batch", 3, 6)),
])
def test_layer_output_shapes_and_reference_run(make, in_shape, out_shape):
    g = _trace(make(), in_shape)
    assert g.outputs[0].type.shape == out_shape
    concrete = [2 if d == "batch" else d for d in in_shape]
    out = gf.run(g, [RNG.standard_normal(concrete).astype(np.float32)], backend="reference")[0]
    assert out.shape == tuple(2 if d == "batch" else d for d in out_shape)


def test_adaptive_avg_pool_only_to_one():
    assert _trace(nn.AdaptiveAvgPool2d((1, 1)), (2, 3, 4, 4)).op_counts() == {"global_avg_pool2d": 1}
    with pytest.raises(gf.ShapeError, match="output_size=1"):
        nn.AdaptiveAvgPool2d(2)


# ---- errors point at the module and the user's line -------------------------------------------

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(16, 8, 3))

    def forward(self, x):
        return self.features(x)


def test_misshaped_conv2d_names_module_path_and_user_line():
    with pytest.raises(gf.ShapeError) as err:
        _trace(_Net(), ("batch", 3, 12, 12))
    text = str(err.value)
    assert err.value.scope == "features.2" and err.value.op == "conv2d"
    assert "16 channels at axis 1, got f32[batch,8,10,10]" in text
    assert "test_layers.py:" in text and "in_channels=16" in text


def test_nhwc_input_to_conv2d_gets_the_permute_hint():
    with pytest.raises(gf.ShapeError, match=r"NHWC, transpose it with x.permute\(0, 3, 1, 2\)"):
        _trace(nn.Conv2d(3, 8, 3), ("batch", 28, 28, 3))


def test_layer_norm_shape_mismatch_is_explained():
    with pytest.raises(gf.ShapeError, match="trailing dims"):
        _trace(nn.LayerNorm(8), ("batch", 6))


# ---- train vs eval ----------------------------------------------------------------------------

def test_batch_norm_training_records_running_stat_updates():
    bn = nn.BatchNorm2d(3, momentum=0.25)
    x = (RNG.standard_normal((4, 3, 2, 2)) * 3 + 1).astype(np.float32)
    gt = _trace(bn, ("batch", 3, 2, 2), training=True)
    assert gt.output_names == ["output", "update:running_mean", "update:running_var"]
    y, nm, nv = gf.run(gt, [x])
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (x - mu.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nm, 0.25 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nv, 0.75 + 0.25 * var * 16 / 15, rtol=1e-5)
    ge = _trace(bn, ("batch", 3, 2, 2), training=False)
    assert ge.output_names == ["output"] and ge.op_counts()["batch_norm"] == 1
    out = gf.run(ge, [x], params={"running_mean": nm, "running_var": nv})[0]
    np.testing.assert_allclose(out, (x - nm.reshape(1, 3, 1, 1)) / np.sqrt(nv.reshape(1, 3, 1, 1) + 1e-5), rtol=1e-5)
    assert bn.training  # the trace-time override does not stick


def test_batch_norm_called_twice_chains_the_updates():
    bn = nn.BatchNorm2d(2)
    g = gf.trace(lambda a, b: bn(a) + bn(b), gf.TensorSpec((3, 2, 2, 2)), gf.TensorSpec((3, 2, 2, 2)))
    names = [n for n in g.output_names if n.startswith("update:")]
    assert len(names) == 2 and len(g.trainable_names) == 2
    a, b = RNG.standard_normal((2, 3, 2, 2, 2)).astype(np.float32)
    outs = {n: o for o, n in zip_outputs(gf.run(g, [a, b]), g.output_names)}
    m1 = 0.1 * a.mean(axis=(0, 2, 3))
    want = 0.9 * m1 + 0.1 * b.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(outs[names[0]], want, rtol=1e-5, atol=1e-6)


def test_dropout_train_vs_eval():
    drop = nn.Dropout(0.5)
    ge = _trace(drop, ("batch", 8), training=False)
    assert ge.op_counts() == {} and [v.name for v in ge.inputs] == ["x"]
    assert _trace(nn.Dropout(0.0), ("batch", 8), training=True).op_counts() == {}
    gt = _trace(nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5)), ("batch", 8), training=True)
    assert [v.name for v in gt.inputs] == ["x", "rng"] and gt.op_counts()["dropout"] == 2
    x = np.ones((64, 8), np.float32)
    y1 = gf.run(gt, {"x": x, "rng": np.uint32(1)})[0]
    y2 = gf.run(gt, {"x": x, "rng": np.uint32(2)})[0]
    assert set(np.unique(y1)) <= {0.0, 4.0} and (y1 != y2).any()
    np.testing.assert_array_equal(y1, gf.run(gt, {"x": x, "rng": np.uint32(1)})[0])


def test_a_module_called_twice_shares_its_parameters():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    g = gf.trace(lambda x: conv(conv(x)), gf.TensorSpec(("batch", 2, 5, 5)))
    assert g.trainable_names == ["conv2d.weight", "conv2d.bias"]
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert len(convs) == 2 and convs[0].inputs[1] is convs[1].inputs[1]


# ---- attention and the Transformer encoder against NumPy --------------------------------------

def _np_linear(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _np_ln(x, p, name, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _np_mha(x, p, name, heads, pad=None, attn_mask=None):
    b, s, e = x.shape
    dh = e // heads

    def split(t):
        return t.reshape(b, s, heads, dh).transpose(0, 2, 1, 3)

    q, k, v = (split(_np_linear(x, p, f"{name}.{n}_proj")) for n in "qkv")
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    if pad is not None:
        logits = np.where(pad[:, None, None, :], -np.inf, logits)
    if attn_mask is not None:
        logits = np.where(attn_mask, -np.inf, logits)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = (w @ v).transpose(0, 2, 1, 3).reshape(b, s, e)
    return _np_linear(out, p, f"{name}.out_proj")


def test_multi_head_attention_matches_numpy_with_pytorch_mask_semantics():
    mha = nn.MultiHeadAttention(E, H)

    def fn(x, pad, causal):
        return mha(x, key_padding_mask=pad, attn_mask=causal)

    g = gf.trace(fn, gf.TensorSpec(("batch", 5, E)), gf.TensorSpec(("batch", 5), "bool"),
                 gf.TensorSpec((5, 5), "bool"))
    x = RNG.standard_normal((3, 5, E)).astype(np.float32)
    pad = np.zeros((3, 5), bool)
    pad[0, 3:] = True
    future = np.triu(np.ones((5, 5), bool), 1)  # True = not allowed (PyTorch)
    got = gf.run(g, [x, pad, future])[0]
    p = {"m." + k.split(".", 1)[1]: v.astype(np.float64) for k, v in g.params.items()}
    want = _np_mha(x.astype(np.float64), p, "m", H, pad, future)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_transformer_encoder_traces_with_symbolic_batch_and_matches_numpy():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, F, dropout=0.1), 2)

        def forward(self, x, pad):
            return self.encoder(x, src_key_padding_mask=pad)

    g = gf.trace(Model(), gf.TensorSpec(("batch", "seq", E)), gf.TensorSpec(("batch", "seq"), "bool"),
                 training=False, seed=3)
    assert g.outputs[0].type.shape == ("batch", "seq", E) and "dropout" not in g.op_counts()
    x = RNG.standard_normal((2, 6, E)).astype(np.float32)
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    got = gf.run(g, [x, pad], backend="reference")[0]
    p = {k: v.astype(np.float64) for k, v in g.params.items()}
    h = x.astype(np.float64)
    for i in range(2):
        pre = f"encoder.layers.{i}"
        h = _np_ln(h + _np_mha(h, p, f"{pre}.attn", H, pad), p, f"{pre}.norm1")
        ff = _np_linear(np.maximum(_np_linear(h, p, f"{pre}.ffn.fc1"), 0), p, f"{pre}.ffn.fc2")
        h = _np_ln(h + ff, p, f"{pre}.norm2")
    np.testing.assert_allclose(got, h, rtol=1e-4, atol=1e-4)


def test_pre_norm_gelu_encoder_in_training_mode_trains():
    layer = nn.TransformerEncoderLayer(E, H, F, dropout=0.1, activation="gelu", norm_first=True)
    enc = nn.TransformerEncoder(layer, 1)

    def loss(x):
        return gf.mean(enc(x) ** 2)

    g = gf.trace(loss, gf.TensorSpec(("batch", 4, E)), training=True)
    assert [v.name for v in g.inputs] == ["x", "rng"]
    counts = g.op_counts()
    assert counts["dropout"] == 4 and counts["gelu"] == 1  # attention weights, residuals, feed-forward
    gg = gf.grad(g)
    outs = gf.run(gg, {"x": RNG.standard_normal((2, 4, E)).astype(np.float32), "rng": np.uint32(3)})
    assert np.isfinite(outs[0]) and len(outs) == 1 + len(g.trainable_names)
    assert all(np.isfinite(o).all() for o in outs)


def test_seq_first_attention_layer():
    layer = nn.TransformerEncoderLayer(E, H, F, batch_first=False)
    g = _trace(layer, (5, "batch", E))
    assert g.outputs[0].type.shape == (5, "batch", E)


# ---- a small CNN end to end -------------------------------------------------------------------

def test_cnn_trains_with_batch_norm_and_pooling():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, padding="same", groups=2), nn.GlobalAvgPool2d(), nn.Flatten(),
                        nn.Linear(4, 3))
    from graphforge.nn import functional as Fn

    g = gf.trace(lambda x, y: Fn.cross_entropy(net(x), y), gf.TensorSpec(("batch", 1, 6, 6)),
                 gf.TensorSpec(("batch",), "int64"), training=True)
    assert [n for n in g.output_names if n.startswith("update:")] == [
        "update:sequential.1.running_mean", "update:sequential.1.running_var"]
    gg = gf.grad(g, keep_outputs=True)
    x = RNG.standard_normal((4, 1, 6, 6)).astype(np.float32)
    outs = gf.run(gg, [x, np.array([0, 1, 2, 1])])
    grads = {n: o for o, n in zip_outputs(outs, gg.output_names)}
    assert grads["grad:sequential.0.weight"].shape == (4, 1, 3, 3)
    assert grads["update:sequential.1.running_var"].shape == (4,)


def test_eval_conv_batch_norm_folds_and_layer_norm_matches_numpy():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    g = _trace(net, ("batch", 3, 6, 6))
    params = dict(g.params, **{"1.running_mean": RNG.standard_normal(4).astype(np.float32),
                               "1.running_var": RNG.uniform(0.5, 2, 4).astype(np.float32)})
    g.params.update(params)
    fused = gf.optimize(g)
    assert fused.op_counts() == {"conv2d": 1, "relu": 1}
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(gf.run(fused, [x])[0], gf.run(g, [x])[0], rtol=1e-4, atol=1e-5)
    ln = _trace(nn.LayerNorm((2, 3)), ("batch", 2, 3))
    xs = RNG.standard_normal((4, 2, 3)).astype(np.float32)
    mu, var = xs.mean((1, 2), keepdims=True), xs.var((1, 2), keepdims=True)
    np.testing.assert_allclose(gf.run(ln, [xs])[0], (xs - mu) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
