"""The nn ops (graphforge/ops/nn_ops.py): references against naive independent NumPy loops, the
documented dropout hash, batch_norm train/eval semantics, decompositions, type errors, and float64
finite-difference checks of every VJP through ``gf.grad`` and the reference back end."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphforge as gf
from graphforge.ops.registry import get_op
from graphforge.trace.builder import Builder
from graphforge.trace.tensor import Tensor
from gf_testutil import numeric_grad, zip_outputs

RNG = np.random.default_rng(0)


def _run(fn, *arrays, backend="reference"):
    specs = [gf.TensorSpec(a.shape, str(a.dtype)) for a in arrays]
    g = gf.trace(fn, *specs)
    return gf.run(g, list(arrays), backend=backend)


# ---- naive references (loops over every output element) --------------------------------------

def naive_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), groups=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            grp = oi // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for ci in range(cg):
                        for ki in range(kh):
                            for kj in range(kw):
                                acc += xp[ni, grp * cg + ci, i * stride[0] + ki * dil[0], j * stride[1] + kj * dil[1]] \
                                    * w[oi, ci, ki, kj]
                    out[ni, oi, i, j] = acc + (b[oi] if b is not None else 0.0)
    return out


def naive_conv_transpose2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), out_pad=(0, 0), dil=(1, 1), groups=1):
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    fh = (h - 1) * stride[0] + dil[0] * (kh - 1) + 1 + out_pad[0]
    fw = (wd - 1) * stride[1] + dil[1] * (kw - 1) + 1 + out_pad[1]
    full = np.zeros((n, og * groups, fh, fw))
    for ni in range(n):
        for ci in range(c):
            grp = ci // cg
            for i in range(h):
                for j in range(wd):
                    for oi in range(og):
                        for ki in range(kh):
                            for kj in range(kw):
                                full[ni, grp * og + oi, i * stride[0] + ki * dil[0], j * stride[1] + kj * dil[1]] += \
                                    x[ni, ci, i, j] * w[ci, oi, ki, kj]
    out = full[:, :, pads[0]:fh - pads[2], pads[1]:fw - pads[3]]
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0.0)


def _pool_out(size, k, s, p0, p1, ceil):
    if ceil:
        out = math.ceil((size + p0 + p1 - k) / s) + 1
        if (out - 1) * s >= size + p0:
            out -= 1
        return out
    return (size + p0 + p1 - k) // s + 1


def naive_pool(x, kind, k, s, pads=(0, 0, 0, 0), ceil=False, include_pad=True):
    n, c, h, w = x.shape
    oh, ow = _pool_out(h, k[0], s[0], pads[0], pads[2], ceil), _pool_out(w, k[1], s[1], pads[1], pads[3], ceil)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - pads[0], j * s[1] - pads[1]
            h1, w1 = min(h0 + k[0], h + pads[2]), min(w0 + k[1], w + pads[3])
            size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            window = x[:, :, h0c:h1c, w0c:w1c]
            if kind == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                div = size if include_pad else (h1c - h0c) * (w1c - w0c)
                out[:, :, i, j] = window.sum(axis=(2, 3)) / div
    return out


CONV_CASES = [
    dict(stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), groups=1),
    dict(stride=(2, 1), pads=(1, 2, 0, 1), dil=(1, 1), groups=1),
    dict(stride=(1, 2), pads=(2, 1, 2, 1), dil=(2, 1), groups=2),
    dict(stride=(2, 2), pads=(1, 1, 1, 1), dil=(1, 1), groups=4),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_naive_loops(case):
    x = RNG.standard_normal((2, 4, 7, 6))
    w = RNG.standard_normal((8, 4 // case["groups"], 3, 2))
    b = RNG.standard_normal(8)
    got = _run(lambda x, w, b: gf.conv2d(x, w, b, case["stride"], case["pads"], case["dil"], case["groups"]), x, w, b)[0]
    np.testing.assert_allclose(got, naive_conv2d(x, w, b, **case), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_transpose2d_matches_naive_loops_and_is_the_adjoint(case):
    x = RNG.standard_normal((2, 4, 3, 4))
    w = RNG.standard_normal((4, 6 // 2 if case["groups"] == 2 else 2, 3, 2)) if case["groups"] <= 2 else \
        RNG.standard_normal((4, 1, 3, 2))
    groups = case["groups"]
    out_pad = (case["stride"][0] - 1, 0)
    b = RNG.standard_normal(w.shape[1] * groups)
    fn = lambda x, w, b: gf.conv_transpose2d(x, w, b, case["stride"], case["pads"], out_pad, groups, case["dil"])  # noqa
    got = _run(fn, x, w, b)[0]
    want = naive_conv_transpose2d(x, w, b, case["stride"], case["pads"], out_pad, case["dil"], groups)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # <convT(x), y> == <x, conv(y)> with the same weight and attributes (bias off).
    y = RNG.standard_normal(want.shape)
    lhs = np.sum(_run(lambda x, w: gf.conv_transpose2d(x, w, None, case["stride"], case["pads"], out_pad, groups,
                                                       case["dil"]), x, w)[0] * y)
    conv_y = _run(lambda y, w: gf.conv2d(y, w, None, case["stride"], case["pads"], case["dil"], groups), y, w)[0]
    np.testing.assert_allclose(lhs, np.sum(x * conv_y), rtol=1e-10)


def test_conv2d_same_and_valid_padding():
    x = RNG.standard_normal((1, 2, 6, 5))
    w = RNG.standard_normal((3, 2, 4, 3))
    same = _run(lambda x, w: gf.conv2d(x, w, padding="same"), x, w)[0]
    assert same.shape == (1, 3, 6, 5)
    # PyTorch: total pad d*(k-1); the odd extra goes to the bottom/right.
    np.testing.assert_allclose(same, naive_conv2d(x, w, pads=(1, 1, 2, 1)), rtol=1e-10)
    dil = _run(lambda x, w: gf.conv2d(x, w, padding="same", dilation=2), x, w)[0]
    np.testing.assert_allclose(dil, naive_conv2d(x, w, pads=(3, 2, 3, 2), dil=(2, 2)), rtol=1e-10)
    valid = _run(lambda x, w: gf.conv2d(x, w, padding="valid"), x, w)[0]
    assert valid.shape == (1, 3, 3, 3)
    with pytest.raises(gf.ShapeError, match="strided"):
        gf.trace(lambda x, w: gf.conv2d(x, w, stride=2, padding="same"), gf.TensorSpec((1, 2, 6, 5), "float64"),
                 gf.TensorSpec((3, 2, 4, 3), "float64"))


def test_conv2d_flops_and_float32_reference():
    opdef = get_op("conv2d")
    x = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = gf.trace(lambda x, w: gf.conv2d(x, w, padding=1), gf.TensorSpec(x.shape), gf.TensorSpec(w.shape))
    node = g.nodes[-1]
    assert opdef.flops([v.type for v in node.inputs], [v.type for v in node.outputs], node.attrs) == 2 * 27 * 2 * 4 * 25
    out = gf.run(g, [x, w])[0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, naive_conv2d(x.astype(np.float64), w.astype(np.float64), pads=(1, 1, 1, 1)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k,s,pads,ceil,include", [
    ((2, 2), (2, 2), (0, 0, 0, 0), False, True),
    ((3, 3), (2, 2), (1, 1, 1, 1), False, True),
    ((3, 2), (2, 2), (1, 1, 1, 0), True, False),
    ((2, 2), (2, 2), (0, 0, 0, 0), True, True),
    ((3, 3), (1, 2), (1, 0, 1, 1), True, True),
])
def test_pooling_matches_naive_loops(kind, k, s, pads, ceil, include):
    x = RNG.standard_normal((2, 3, 5, 7))
    if kind == "max":
        got = _run(lambda x: gf.max_pool2d(x, k, s, pads, ceil), x)[0]
    else:
        got = _run(lambda x: gf.avg_pool2d(x, k, s, pads, ceil, include), x)[0]
    np.testing.assert_allclose(got, naive_pool(x, kind, k, s, pads, ceil, include), rtol=1e-12)


def test_pool_defaults_and_global_average():
    x = RNG.standard_normal((2, 3, 4, 6))
    a, b = _run(lambda x: (gf.max_pool2d(x, 2), gf.global_avg_pool2d(x)), x)
    assert a.shape == (2, 3, 2, 3)  # stride defaults to the kernel
    np.testing.assert_allclose(b, x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    with pytest.raises(gf.ShapeError, match="entirely in the padding"):
        gf.trace(lambda x: gf.max_pool2d(x, 2, padding=2), gf.TensorSpec((1, 1, 4, 4)))


# ---- batch_norm -------------------------------------------------------------------------------

def test_batch_norm_eval_uses_running_stats():
    x = RNG.standard_normal((4, 3, 2, 5))
    scale, bias, rm = RNG.standard_normal(3), RNG.standard_normal(3), RNG.standard_normal(3)
    rv = RNG.uniform(0.5, 2, 3)
    y = _run(lambda x, s, b, m, v: gf.batch_norm(x, m, v, s, b, eps=1e-3), x, scale, bias, rm, rv)
    assert len(y) == 1
    r = lambda a: a.reshape(1, 3, 1, 1)  # noqa: E731
    np.testing.assert_allclose(y[0], (x - r(rm)) / np.sqrt(r(rv) + 1e-3) * r(scale) + r(bias), rtol=1e-12)


def test_batch_norm_training_uses_batch_stats_and_updates_running_stats():
    x = RNG.standard_normal((4, 3, 2, 5)) * 2 + 1
    scale, bias = RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)
    y, nm, nv = _run(lambda x, s, b, m, v: gf.batch_norm(x, m, v, s, b, training=True, momentum=0.3),
                     x, scale, bias, rm, rv)
    mu = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    n = 4 * 2 * 5
    r = lambda a: a.reshape(1, 3, 1, 1)  # noqa: E731
    np.testing.assert_allclose(y, (x - r(mu)) / np.sqrt(r(var) + 1e-5) * r(scale) + r(bias), rtol=1e-10)
    np.testing.assert_allclose(nm, 0.7 * rm + 0.3 * mu, rtol=1e-12)
    np.testing.assert_allclose(nv, 0.7 * rv + 0.3 * var * n / (n - 1), rtol=1e-12)  # unbiased, like PyTorch


def test_batch_norm_errors_name_the_channel_mismatch():
    with pytest.raises(gf.ShapeError, match="NHWC"):
        gf.trace(lambda x, m: gf.batch_norm(x, m, m), gf.TensorSpec(("batch", 8, 8, 3)), gf.TensorSpec((3,)))


# ---- layer_norm -------------------------------------------------------------------------------

def _naive_ln(x, first, eps, w=None, b=None):
    axes = tuple(range(first, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (w if w is not None else 1) + (b if b is not None else 0)


def test_layer_norm_axis_and_normalized_shape():
    x = RNG.standard_normal((2, 3, 4))
    w, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    a, c, d = _run(lambda x, w, b: (gf.layer_norm(x, (3, 4), w, b), gf.layer_norm(x, 1, w, b, eps=1e-2),
                                    gf.layer_norm(x)), x, w, b)
    np.testing.assert_allclose(a, _naive_ln(x, 1, 1e-5, w, b), rtol=1e-10)
    np.testing.assert_allclose(c, _naive_ln(x, 1, 1e-2, w, b), rtol=1e-10)
    np.testing.assert_allclose(d, _naive_ln(x, 2, 1e-5), rtol=1e-10)
    # PyTorch's int normalized_shape (not a valid axis): the last dim.
    e = _run(lambda x: gf.layer_norm(x, 4), x)[0]
    np.testing.assert_allclose(e, d, rtol=1e-12)
    with pytest.raises(gf.ShapeError, match="normalized_shape"):
        gf.trace(lambda x: gf.layer_norm(x, (5,)), gf.TensorSpec((2, 4)))


# ---- decompositions ---------------------------------------------------------------------------

@pytest.mark.parametrize("op,k", [("layer_norm", 0), ("layer_norm", 2), ("layer_norm", 3), ("attention", 0),
                                  ("attention", 1), ("attention", 2), ("attention", 3), ("global_avg_pool2d", 2),
                                  ("embedding", 2)])
def test_decomposition_matches_reference(op, k):
    from gf_testutil import build_sample_graph
    from graphforge.ops.samples import make_inputs

    opdef = get_op(op)
    sample = opdef.samples[k]
    graph, outs = build_sample_graph(op, sample)
    inputs = make_inputs(sample)
    want = gf.run(graph, inputs)
    dec = gf.Graph("dec")
    ins = [dec.add_input(f"x{i}", t) for i, t in enumerate(sample.inputs)]
    builder = Builder(dec, capture_locations=False)
    with builder.activate():
        res = opdef.decompose([Tensor(v, builder) for v in ins], graph.nodes[0].attrs)
    dec.set_outputs([r.value for r in res])
    assert op not in dec.op_counts()
    for a, b in zip_outputs(gf.run(dec, inputs), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- dropout ----------------------------------------------------------------------------------

def _py_hash(i: int, key: int) -> int:
    m = 0xFFFFFFFF
    h = (i + key * 0x9E3779B9) & m
    h ^= h >> 16
    h = (h * 0x7FEB352D) & m
    h ^= h >> 15
    h = (h * 0x846CA68B) & m
    h ^= h >> 16
    return h


@pytest.mark.parametrize("key,p", [(0, 0.5), (7, 0.1), (4_000_000_000, 0.9)])
def test_dropout_mask_is_the_documented_hash(key, p):
    x = RNG.standard_normal((3, 5, 7)).astype(np.float32)
    g = gf.trace(lambda x, k: gf.dropout(x, p, k), gf.TensorSpec(x.shape), gf.TensorSpec((), "uint32"))
    y = gf.run(g, [x, np.uint32(key)])[0]
    threshold = round(p * 2 ** 24)
    keep = np.array([(_py_hash(i, key) >> 8) >= threshold for i in range(x.size)]).reshape(x.shape)
    np.testing.assert_array_equal(y, np.where(keep, x / np.float32(1 - p), 0).astype(np.float32))


def test_dropout_keep_rate_and_identity_at_p0():
    x = np.ones((200, 500), np.float32)
    g = gf.trace(lambda x, k: gf.dropout(x, 0.3, k), gf.TensorSpec(("batch", 500)), gf.TensorSpec((), "uint32"))
    y = gf.run(g, [x, np.uint32(11)])[0]
    assert abs((y != 0).mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    y2 = gf.run(g, [x, np.uint32(12)])[0]
    assert (y2 != y).any()  # another key, another mask
    g0 = gf.trace(lambda x: gf.dropout(x, 0.0), gf.TensorSpec((4,)))
    assert g0.op_counts() == {}
    # No key: a per-site key from the graph's rng input.
    g1 = gf.trace(lambda x: gf.dropout(x, 0.5) + gf.dropout(x, 0.5), gf.TensorSpec((4,)))
    assert [v.name for v in g1.inputs] == ["x", "rng"] and g1.op_counts()["dropout"] == 2


def test_dropout_key_must_be_uint32_scalar():
    with pytest.raises(gf.DTypeError, match="uint32 scalar"):
        gf.trace(lambda x, k: gf.dropout(x, 0.5, k), gf.TensorSpec((4,)), gf.TensorSpec((), "int32"))


# ---- embedding --------------------------------------------------------------------------------

def test_embedding_values_wrap_and_range_errors():
    table = RNG.standard_normal((5, 3))
    idx = np.array([[0, 4, -1], [2, 2, 1]])
    got = _run(lambda t, i: gf.embedding(t, i), table, idx)[0]
    np.testing.assert_array_equal(got, table[idx])
    swapped = _run(lambda i, t: gf.embedding(i, t), idx, table)[0]  # PyTorch's argument order
    np.testing.assert_array_equal(swapped, got)
    with pytest.raises(gf.BackendError, match="out of range"):
        _run(lambda t, i: gf.embedding(t, i), table, np.array([5]))
    with pytest.raises(gf.DTypeError, match="integers"):
        gf.trace(lambda t, i: gf.embedding(t, i), gf.TensorSpec((5, 3)), gf.TensorSpec((2,)))


# ---- attention --------------------------------------------------------------------------------

def _naive_attention(q, k, v, mask=None, scale=None, causal=False):
    b, h, sq, d = q.shape
    sk = k.shape[2]
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = np.zeros((b, h, sq, v.shape[3]))
    m = np.ones((b, h, sq, sk), bool) if mask is None else np.broadcast_to(mask, (b, h, sq, sk))
    for bi in range(b):
        for hi in range(h):
            for i in range(sq):
                logits = np.array([q[bi, hi, i] @ k[bi, hi, j] * scale for j in range(sk)])
                allowed = np.array([m[bi, hi, i, j] and (not causal or j <= i) for j in range(sk)])
                e = np.where(allowed, np.exp(logits - logits[allowed].max()), 0.0)
                out[bi, hi, i] = (e / e.sum()) @ v[bi, hi]
    return out


def test_attention_matches_naive_softmax():
    q, k, v = RNG.standard_normal((2, 2, 3, 4)), RNG.standard_normal((2, 2, 5, 4)), RNG.standard_normal((2, 2, 5, 3))
    mask = RNG.random((2, 1, 3, 5)) < 0.7
    mask[..., 0] = True
    got = _run(lambda q, k, v, m: (gf.attention(q, k, v, m, scale=0.3), gf.attention(q, k, v, causal=True),
                                   gf.scaled_dot_product_attention(q, k, v)), q, k, v, mask)
    np.testing.assert_allclose(got[0], _naive_attention(q, k, v, mask, 0.3), rtol=1e-10)
    np.testing.assert_allclose(got[1], _naive_attention(q, k, v, causal=True), rtol=1e-10)
    np.testing.assert_allclose(got[2], _naive_attention(q, k, v), rtol=1e-10)
    # Rank-3 (B, S, D) inputs are one head.
    r3 = _run(lambda q, k, v: gf.attention(q, k, v), q[:, 0], k[:, 0], v[:, 0])[0]
    np.testing.assert_allclose(r3, _naive_attention(q[:, :1], k[:, :1], v[:, :1])[:, 0], rtol=1e-10)


def test_attention_type_errors():
    spec = gf.TensorSpec((1, 2, 3, 4))
    with pytest.raises(gf.DTypeError, match="bool"):
        gf.trace(lambda q, m: gf.attention(q, q, q, m), spec, gf.TensorSpec((3, 3)))
    with pytest.raises(gf.ShapeError, match="does not broadcast"):
        gf.trace(lambda q, m: gf.attention(q, q, q, m), spec, gf.TensorSpec((2, 3), "bool"))
    with pytest.raises(gf.ShapeError, match="head dims"):
        gf.trace(lambda q, k: gf.attention(q, k, k), spec, gf.TensorSpec((1, 2, 3, 5)))


# ---- type-rule messages -----------------------------------------------------------------------

def test_conv2d_nhwc_input_gets_the_permute_hint():
    with pytest.raises(gf.ShapeError) as err:
        gf.trace(lambda x, w: gf.conv2d(x, w), gf.TensorSpec(("batch", 28, 28, 3)), gf.TensorSpec((8, 3, 3, 3)))
    text = str(err.value)
    assert "expects NCHW input with 3 channels at axis 1, got f32[batch,28,28,3]" in text
    assert "x.permute(0, 3, 1, 2)" in text and "test_nn_ops.py:" in text


@pytest.mark.parametrize("fn,specs,message", [
    (lambda x, w: gf.conv2d(x, w), [(1, 3, 2, 2), (4, 3, 3, 3)], "larger than the padded input"),
    # conv2d and the pools take a symbolic H/W (dim expressions; tests/ops/test_symbolic_pooling.py)
    (lambda x: gf.avg_pool2d(x, 5), [(1, 3, 4, 4)], "larger than the padded input"),
    (lambda x, w, b: gf.conv2d(x, w, b), [(1, 3, 5, 5), (4, 3, 3, 3), (3,)], "bias"),
    (lambda x, w: gf.conv2d(x, w, groups=2), [(1, 4, 5, 5), (3, 2, 3, 3)], "groups"),
    (lambda x, w: gf.conv2d(x, w), [(3, 5, 5), (4, 3, 3, 3)], "unsqueeze"),
    (lambda x, w: gf.conv_transpose2d(x, w, output_padding=2, stride=2), [(1, 3, 4, 4), (3, 2, 3, 3)],
     "output_padding"),
])
def test_type_errors_are_actionable(fn, specs, message):
    with pytest.raises(gf.ShapeError, match=message):
        gf.trace(fn, *[gf.TensorSpec(s) for s in specs])


# ---- gradients: central finite differences in float64 ----------------------------------------

def fd_check(fn, arrays, wrt=None, seed=5):
    """``sum(fn(*xs) * W)`` (W fixed random, one per output) differentiated by gf.grad on the
    reference back end, against central differences."""
    specs = [gf.TensorSpec(a.shape, str(a.dtype)) for a in arrays]
    wrng = np.random.default_rng(seed)

    def loss(*xs):
        outs = fn(*xs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        total = None
        for o in outs:
            term = gf.sum(o * gf.constant(wrng.standard_normal(tuple(o.shape)), "float64"))
            total = term if total is None else total + term
        return total

    g = gf.trace(loss, *specs)
    names = [v.name for v in g.inputs]
    wrt = [i for i, a in enumerate(arrays) if a.dtype == np.float64] if wrt is None else wrt
    gg = gf.grad(g, wrt=[names[i] for i in wrt], optimize=False)
    gg.verify()
    got = gf.run(gg, list(arrays), backend="reference")
    for j, i in enumerate(wrt):
        numeric = numeric_grad(lambda xs: gf.run(g, xs, backend="reference")[0], list(arrays), i)
        np.testing.assert_allclose(got[1 + j], numeric, rtol=1e-5, atol=1e-6, err_msg=f"input {i}")


def _r(*shape):
    return RNG.standard_normal(shape)


def _distinct(*shape):
    n = int(np.prod(shape))
    return ((RNG.permutation(n) - n / 2) * 0.1 + 0.05).reshape(shape)


_GRAD_CASES = [
    ("conv2d", lambda x, w, b: gf.conv2d(x, w, b, (2, 1), (1, 0, 2, 1), (1, 2), 2),
     lambda: [_r(2, 4, 6, 7), _r(6, 2, 3, 2), _r(6)]),
    ("conv2d_same", lambda x, w: gf.conv2d(x, w, padding="same"), lambda: [_r(1, 2, 5, 4), _r(3, 2, 2, 3)]),
    ("conv_transpose2d", lambda x, w, b: gf.conv_transpose2d(x, w, b, 2, (1, 0, 0, 1), (1, 0), 1, (1, 2)),
     lambda: [_r(2, 3, 3, 3), _r(3, 2, 2, 3), _r(2)]),
    ("max_pool2d", lambda x: gf.max_pool2d(x, 3, 2, 1, ceil_mode=True), lambda: [_distinct(2, 2, 6, 5)]),
    ("avg_pool2d", lambda x: gf.avg_pool2d(x, (2, 3), (2, 2), (1, 1, 0, 1), True, False), lambda: [_r(2, 2, 5, 6)]),
    ("global_avg_pool2d", lambda x: gf.global_avg_pool2d(x), lambda: [_r(2, 3, 3, 2)]),
    ("batch_norm_train", lambda x, s, b, m, v: gf.batch_norm(x, m, v, s, b, True, 0.2),
     lambda: [_r(3, 2, 2, 3), _r(2), _r(2), _r(2), np.array([0.7, 1.3])]),
    ("batch_norm_eval", lambda x, s, b, m, v: gf.batch_norm(x, m, v, s, b),
     lambda: [_r(3, 2, 2, 3), _r(2), _r(2), _r(2), np.array([0.7, 1.3])]),
    ("layer_norm", lambda x, w, b: gf.layer_norm(x, (3, 4), w, b), lambda: [_r(2, 3, 4), _r(3, 4), _r(3, 4)]),
    ("dropout", lambda x: gf.dropout(x, 0.4, gf.constant(np.array(9, np.uint32))), lambda: [_r(4, 5)]),
    ("embedding", lambda t: gf.embedding(t, gf.constant(np.array([[1, 1], [3, 0]]))), lambda: [_r(4, 3)]),
    ("attention", lambda q, k, v: gf.attention(q, k, v, gf.constant(np.array([True, True, False])), causal=False),
     lambda: [_r(1, 2, 2, 3), _r(1, 2, 3, 3), _r(1, 2, 3, 2)]),
    ("attention_causal", lambda q, k, v: gf.attention(q, k, v, scale=0.5, causal=True),
     lambda: [_r(2, 1, 3, 2), _r(2, 1, 3, 2), _r(2, 1, 3, 2)]),
]


@pytest.mark.parametrize("name,fn,arrays", _GRAD_CASES, ids=[c[0] for c in _GRAD_CASES])
def test_vjp_matches_finite_differences(name, fn, arrays):
    fd_check(fn, arrays())


def test_second_order_through_conv2d():
    """The gradient graph of conv2d (conv_transpose2d + a conv2d over transposed tensors) is itself
    differentiable: d/dx sum(grad_w(x) * V) against finite differences."""
    x, w = _r(1, 2, 4, 4), _r(3, 2, 2, 2)
    vrng = np.random.default_rng(9)
    V = vrng.standard_normal(w.shape)
    W = vrng.standard_normal((1, 3, 3, 2))

    def first(x, w):
        return gf.sum(gf.conv2d(x, w, stride=2, padding=(1, 0)) * gf.constant(W, "float64"))

    g1 = gf.grad(gf.trace(first, gf.TensorSpec(x.shape, "float64"), gf.TensorSpec(w.shape, "float64")),
                 wrt=["w"], optimize=False)
    builder = Builder(g1, capture_locations=False)
    with builder.activate():
        total = gf.sum(Tensor(g1.outputs[1], builder) * gf.constant(V, "float64"))
    g1.set_outputs([total.value], ["gv"])
    g2 = gf.grad(g1, wrt=["x"], optimize=False)
    got = gf.run(g2, [x, w])[1]
    numeric = numeric_grad(lambda xs: gf.run(g1, xs)[0], [x, w], 0)
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6)


def test_symbolic_batch_gradients_keep_the_symbol():
    g = gf.trace(lambda x, w: gf.sum(gf.max_pool2d(gf.conv2d(x, w, padding=1), 2)),
                 gf.TensorSpec(("batch", 2, 4, 4), "float64"), gf.TensorSpec((3, 2, 3, 3), "float64"))
    gg = gf.grad(g, wrt=["x", "w"], optimize=False)
    assert gg.outputs[1].type.shape == ("batch", 2, 4, 4)
    x, w = _distinct(3, 2, 4, 4), _r(3, 2, 3, 3)
    got = gf.run(gg, [x, w])
    numeric = numeric_grad(lambda xs: gf.run(g, xs)[0], [x, w], 1)
    np.testing.assert_allclose(got[2], numeric, rtol=1e-5, atol=1e-6)
