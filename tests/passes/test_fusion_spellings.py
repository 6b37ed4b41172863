"""Hand-written spellings of the fused ops, traced with the public API, optimise to exactly the graph
the nn / op-level version gives (same ops, same attributes) and stay numerically equivalent.

Each row of :data:`CASES` is ``(id, hand, ref, specs)``: ``hand(m, *xs)`` is what a user writes in a
module's ``forward`` from primitives, ``ref(m, *xs)`` the same computation with the fused op. Both
run inside a :class:`Fn` module that owns parameters of the shapes the row names, so the two
graphs have the same parameters (by shape) and differ only in how the computation is spelled."""
import math

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes import optimize
from passtest import assert_equivalent, assert_idempotent, check_pass

F32 = "float32"
EPS = 1e-5
SQRT_2_PI = math.sqrt(2.0 / math.pi)


class Fn(nn.Module):
    """A module whose ``forward`` is ``fn(self, *xs)`` and whose parameters have the given shapes."""

    def __init__(self, fn, **params):
        super().__init__()
        for name, shape in params.items():
            setattr(self, name, nn.Parameter(shape, init=nn.init.normal(0.5, 1.0)))
        self.fn = fn

    def forward(self, *xs):
        return self.fn(self, *xs)


def _spec(shape, name):
    return gf.TensorSpec(shape, F32, name=name)


# ---- LayerNorm ---------------------------------------------------------------------------------
LN_X = [_spec(("batch", 5, 8), "x")]
LN_P = {"w": (8,), "b": (8,)}


def _ln_ref(affine=True, axis=-1):
    if affine:
        return lambda m, x: gf.layer_norm(x, axis, m.w, m.b, EPS)
    return lambda m, x: gf.layer_norm(x, axis, eps=EPS)


def _mu(x, axis=-1):
    return x.mean(axis, keepdims=True)


LAYER_NORM = [
    ("ln/pow2_div_sqrt", lambda m, x: (x - _mu(x)) / gf.sqrt(((x - _mu(x)) ** 2).mean(-1, keepdims=True) + EPS),
     _ln_ref(False), {}),
    ("ln/dd_mul_rsqrt", lambda m, x: (lambda d: d * gf.rsqrt((d * d).mean(-1, keepdims=True) + EPS))(x - _mu(x)),
     _ln_ref(False), {}),
    ("ln/var_method_div_sqrt", lambda m, x: (x - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS),
     _ln_ref(False), {}),
    ("ln/var_method_rsqrt_method", lambda m, x: (x - _mu(x)) * (x.var(-1, keepdims=True) + EPS).rsqrt(),
     _ln_ref(False), {}),
    ("ln/pow_minus_half", lambda m, x: (x - _mu(x)) * (x.var(-1, keepdims=True) + EPS) ** -0.5,
     _ln_ref(False), {}),
    ("ln/div_pow_half", lambda m, x: (x - _mu(x)) / (x.var(-1, keepdims=True) + EPS) ** 0.5,
     _ln_ref(False), {}),
    ("ln/square_sqrt_method", lambda m, x: (x - _mu(x)) / (gf.square(x - _mu(x)).mean(-1, keepdims=True)
                                                           + EPS).sqrt(),
     _ln_ref(False), {}),
    ("ln/eps_first", lambda m, x: (x - _mu(x)) / gf.sqrt(EPS + x.var(-1, keepdims=True)),
     _ln_ref(False), {}),
    ("ln/positive_axis", lambda m, x: (x - _mu(x, 2)) / gf.sqrt(x.var(2, keepdims=True) + EPS),
     _ln_ref(False), {}),
    ("ln/affine_after", lambda m, x: (x - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS) * m.w + m.b,
     _ln_ref(), LN_P),
    ("ln/affine_after_rsqrt", lambda m, x: (x - _mu(x)) * gf.rsqrt(x.var(-1, keepdims=True) + EPS) * m.w + m.b,
     _ln_ref(), LN_P),
    ("ln/affine_before", lambda m, x: m.w * (x - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS) + m.b,
     _ln_ref(), LN_P),
    ("ln/affine_before_pow", lambda m, x: m.b + m.w * (x - _mu(x)) * (x.var(-1, keepdims=True) + EPS) ** -0.5,
     _ln_ref(), LN_P),
    ("ln/affine_bias_first", lambda m, x: m.b + m.w * ((x - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS)),
     _ln_ref(), LN_P),
    ("ln/weight_only", lambda m, x: (x - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS) * m.w,
     lambda m, x: gf.layer_norm(x, -1, m.w, None, EPS), {"w": (8,)}),
    ("ln/two_axes_positive", lambda m, x: (x - x.mean((1, 2), keepdims=True))
     / gf.sqrt(x.var((1, 2), keepdims=True) + EPS) * m.w + m.b,
     lambda m, x: gf.layer_norm(x, (5, 8), m.w, m.b, EPS), {"w": (5, 8), "b": (5, 8)}),
]
LAYER_NORM = [(i, h, r, LN_X, p) for i, h, r, p in LAYER_NORM]


# ---- GELU / SiLU -------------------------------------------------------------------------------
ACT_X = [_spec(("batch", 16), "x")]
GELU = [
    ("gelu/erf_div_sqrt2", lambda m, x: 0.5 * x * (1 + gf.erf(x / math.sqrt(2))), lambda m, x: gf.gelu(x)),
    ("gelu/erf_mul_const", lambda m, x: x * 0.5 * (1.0 + gf.erf(x * 0.7071067811865476)), lambda m, x: gf.gelu(x)),
    ("gelu/erf_half_last", lambda m, x: x * (1 + gf.erf(x / math.sqrt(2.0))) * 0.5, lambda m, x: gf.gelu(x)),
    ("gelu/erf_div_two", lambda m, x: x * (1 + gf.erf(x / math.sqrt(2.0))) / 2, lambda m, x: gf.gelu(x)),
    ("gelu/tanh_pow", lambda m, x: 0.5 * x * (1 + gf.tanh(SQRT_2_PI * (x + 0.044715 * x ** 3))),
     lambda m, x: gf.gelu(x, "tanh")),
    ("gelu/tanh_cube_mul", lambda m, x: 0.5 * x * (1 + gf.tanh(SQRT_2_PI * (x + 0.044715 * x * x * x))),
     lambda m, x: gf.gelu(x, "tanh")),
    ("gelu/tanh_pow_fn", lambda m, x: 0.5 * x * (1.0 + gf.tanh(SQRT_2_PI * (x + 0.044715 * gf.pow(x, 3.0)))),
     lambda m, x: gf.gelu(x, "tanh")),
    ("gelu/tanh_factored", lambda m, x: 0.5 * x * (1 + gf.tanh(SQRT_2_PI * x * (1 + 0.044715 * x * x))),
     lambda m, x: gf.gelu(x, "tanh")),
]
SILU = [
    ("silu/x_sigmoid", lambda m, x: x * gf.sigmoid(x), lambda m, x: gf.silu(x)),
    ("silu/sigmoid_x", lambda m, x: x.sigmoid() * x, lambda m, x: gf.silu(x)),
    ("silu/div_exp", lambda m, x: x / (1 + gf.exp(-x)), lambda m, x: gf.silu(x)),
    ("silu/div_exp_swapped", lambda m, x: x / (gf.exp(-x) + 1.0), lambda m, x: gf.silu(x)),
    ("silu/times_hand_sigmoid", lambda m, x: x * (1 / (1 + gf.exp(-x))), lambda m, x: gf.silu(x)),
]
OTHER_ACTIVATIONS = [
    ("sigmoid/one_over", lambda m, x: 1 / (1 + gf.exp(-x)), lambda m, x: gf.sigmoid(x)),
    ("sigmoid/reciprocal", lambda m, x: gf.reciprocal(gf.exp(-x) + 1), lambda m, x: gf.sigmoid(x)),
    ("relu/maximum", lambda m, x: gf.maximum(x, 0.0), lambda m, x: gf.relu(x)),
    ("relu/maximum_left", lambda m, x: gf.maximum(0, x), lambda m, x: gf.relu(x)),
    ("relu/clamp_min", lambda m, x: x.clamp(min=0), lambda m, x: gf.relu(x)),
]
ACTIVATIONS = [(i, h, r, ACT_X, {}) for i, h, r in GELU + SILU + OTHER_ACTIVATIONS]


# ---- softmax / log_softmax ---------------------------------------------------------------------
SM_X = [_spec(("batch", 4, 6), "x")]


def _softmax(x, axis):
    e = gf.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


SOFTMAX = [
    ("softmax/guarded_last", lambda m, x: _softmax(x, -1), lambda m, x: gf.softmax(x, -1)),
    ("softmax/guarded_axis1", lambda m, x: _softmax(x, 1), lambda m, x: gf.softmax(x, 1)),
    ("softmax/guarded_positive_last", lambda m, x: _softmax(x, 2), lambda m, x: gf.softmax(x, -1)),
    ("softmax/unguarded", lambda m, x: gf.exp(x) / gf.exp(x).sum(-1, keepdims=True), lambda m, x: gf.softmax(x, -1)),
    ("softmax/unguarded_axis0", lambda m, x: x.exp() / gf.sum(x.exp(), 0, keepdims=True),
     lambda m, x: gf.softmax(x, 0)),
    ("softmax/times_reciprocal", lambda m, x: (lambda e: e * (1.0 / e.sum(-1, keepdims=True)))(
        gf.exp(x - x.max(-1, keepdims=True))), lambda m, x: gf.softmax(x, -1)),
    ("log_softmax/guarded", lambda m, x: x - x.max(-1, keepdims=True)
     - gf.log(gf.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)), lambda m, x: gf.log_softmax(x, -1)),
    ("log_softmax/guarded_axis1", lambda m, x: (lambda s: s - gf.log(gf.exp(s).sum(1, keepdims=True)))(
        x - x.max(1, keepdims=True)), lambda m, x: gf.log_softmax(x, 1)),
    ("log_softmax/logsumexp", lambda m, x: x - (x.max(-1, keepdims=True) + gf.log(
        gf.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))), lambda m, x: gf.log_softmax(x, -1)),
    ("log_softmax/unguarded", lambda m, x: x - gf.log(gf.exp(x).sum(-1, keepdims=True)),
     lambda m, x: gf.log_softmax(x, -1)),
    ("log_softmax/log_of_softmax", lambda m, x: gf.log(gf.softmax(x, -1)), lambda m, x: gf.log_softmax(x, -1)),
    ("log_softmax/log_of_hand_softmax", lambda m, x: gf.log(_softmax(x, 1)), lambda m, x: gf.log_softmax(x, 1)),
]
SOFTMAX = [(i, h, r, SM_X, {}) for i, h, r in SOFTMAX]


# ---- attention ---------------------------------------------------------------------------------
B, H, S, D = 2, 2, 5, 8
QKV = [_spec((B, H, S, D), n) for n in "qkv"]
QKV_MASK = QKV + [gf.TensorSpec((B, 1, S, S), "bool", name="mask")]
CAUSAL_ADD = np.triu(np.full((S, S), -np.inf, dtype=np.float32), 1)       # 0 on/below the diagonal
PAD_ADD = np.where(np.arange(S) < S - 1, 0.0, -np.inf).astype(np.float32)  # the last key is padding


def _att(scores_fn, kt=lambda k: k.transpose(-2, -1), softmax=lambda s: gf.softmax(s, -1)):
    return lambda m, q, k, v: softmax(scores_fn(q, kt(k))) @ v


_REF = lambda m, q, k, v: gf.attention(q, k, v)  # noqa: E731
ATTENTION = [
    ("attn/mul_scale", _att(lambda q, kt: q @ kt * (1 / math.sqrt(D))), _REF, QKV),
    ("attn/div_sqrt_d", _att(lambda q, kt: q @ kt / math.sqrt(D)), _REF, QKV),
    ("attn/scale_first", _att(lambda q, kt: (1 / math.sqrt(D)) * (q @ kt)), _REF, QKV),
    ("attn/q_prescaled", _att(lambda q, kt: (q * D ** -0.5) @ kt), _REF, QKV),
    ("attn/q_prescaled_left", _att(lambda q, kt: (D ** -0.5 * q) @ kt), _REF, QKV),
    ("attn/q_divided", _att(lambda q, kt: (q / math.sqrt(D)) @ kt), _REF, QKV),
    ("attn/custom_scale", _att(lambda q, kt: q @ kt * 0.1), lambda m, q, k, v: gf.attention(q, k, v, scale=0.1),
     QKV),
    ("attn/no_scale", _att(lambda q, kt: q @ kt), lambda m, q, k, v: gf.attention(q, k, v, scale=1.0), QKV),
    ("attn/permute", _att(lambda q, kt: q @ kt / math.sqrt(D), kt=lambda k: k.permute(0, 1, 3, 2)), _REF, QKV),
    ("attn/mT", _att(lambda q, kt: q @ kt / math.sqrt(D), kt=lambda k: k.mT), _REF, QKV),
    ("attn/method_softmax", _att(lambda q, kt: q @ kt / math.sqrt(D), softmax=lambda s: s.softmax(-1)), _REF, QKV),
    ("attn/hand_softmax", _att(lambda q, kt: q @ kt / math.sqrt(D), softmax=lambda s: _softmax(s, -1)), _REF, QKV),
    ("attn/causal_additive", _att(lambda q, kt: q @ kt / math.sqrt(D) + CAUSAL_ADD),
     lambda m, q, k, v: gf.attention(q, k, v, causal=True), QKV),
    ("attn/padding_additive", _att(lambda q, kt: q @ kt / math.sqrt(D) + PAD_ADD),
     lambda m, q, k, v: gf.attention(q, k, v, mask=np.isfinite(PAD_ADD)), QKV),
    ("attn/additive_first", _att(lambda q, kt: PAD_ADD + q @ kt * (1 / math.sqrt(D))),
     lambda m, q, k, v: gf.attention(q, k, v, mask=np.isfinite(PAD_ADD)), QKV),
    ("attn/where_mask", lambda m, q, k, v, mask: gf.softmax(
        gf.where(mask, q @ k.transpose(-2, -1) / math.sqrt(D), float("-inf")), -1) @ v,
     lambda m, q, k, v, mask: gf.attention(q, k, v, mask), QKV_MASK),
    ("attn/where_method_permute", lambda m, q, k, v, mask: (
        (q @ k.permute(0, 1, 3, 2) * D ** -0.5).where(mask, float("-inf"))).softmax(-1) @ v,
     lambda m, q, k, v, mask: gf.attention(q, k, v, mask), QKV_MASK),
    ("attn/where_inverted_mask", lambda m, q, k, v, mask: gf.softmax(
        gf.where(~mask, float("-inf"), q @ k.transpose(-2, -1) / math.sqrt(D)), -1) @ v,
     lambda m, q, k, v, mask: gf.attention(q, k, v, mask), QKV_MASK),
]
ATTENTION = [(i, h, r, s, {}) for i, h, r, s in ATTENTION]


# ---- linear (+ activation) ---------------------------------------------------------------------
LIN_X = [_spec(("batch", 3, 6), "x")]
LIN_P = {"w": (4, 6), "b": (4,)}
LIN_P_IN_OUT = {"w": (6, 4), "b": (4,)}


def _lin_ref(act="none", transpose_b=True):
    return lambda m, x: gf.linear(x, m.w, m.b, transpose_b=transpose_b, activation=act)


def _hand_gelu(h):
    return 0.5 * h * (1 + gf.erf(h / math.sqrt(2)))


LINEAR = [
    ("linear/x_wT_b", lambda m, x: x @ m.w.T + m.b, _lin_ref(), LIN_P),
    ("linear/b_x_wT", lambda m, x: m.b + x @ m.w.T, _lin_ref(), LIN_P),
    ("linear/transpose_method", lambda m, x: gf.matmul(x, m.w.transpose(0, 1)) + m.b, _lin_ref(), LIN_P),
    ("linear/x_w_b_in_out", lambda m, x: x @ m.w + m.b, _lin_ref(transpose_b=False), LIN_P_IN_OUT),
    ("linear/no_bias", lambda m, x: x @ m.w.T, lambda m, x: gf.linear(x, m.w), {"w": (4, 6)}),
    ("linear/relu", lambda m, x: gf.relu(x @ m.w.T + m.b), _lin_ref("relu"), LIN_P),
    ("linear/relu_method_in_out", lambda m, x: (x @ m.w + m.b).relu(), _lin_ref("relu", False), LIN_P_IN_OUT),
    ("linear/hand_relu_maximum", lambda m, x: gf.maximum(x @ m.w.T + m.b, 0.0), _lin_ref("relu"), LIN_P),
    ("linear/hand_relu_clamp", lambda m, x: (m.b + x @ m.w.T).clamp(min=0.0), _lin_ref("relu"), LIN_P),
    ("linear/gelu", lambda m, x: gf.gelu(x @ m.w.T + m.b), _lin_ref("gelu"), LIN_P),
    ("linear/hand_gelu", lambda m, x: _hand_gelu(x @ m.w.T + m.b), _lin_ref("gelu"), LIN_P),
    ("linear/hand_gelu_tanh", lambda m, x: (lambda h: 0.5 * h * (1 + gf.tanh(SQRT_2_PI * (h + 0.044715 * h ** 3))))(
        m.b + x @ m.w.T), _lin_ref("gelu_tanh"), LIN_P),
    ("linear/tanh", lambda m, x: gf.tanh(x @ m.w.T + m.b), _lin_ref("tanh"), LIN_P),
    ("linear/sigmoid", lambda m, x: (x @ m.w.T + m.b).sigmoid(), _lin_ref("sigmoid"), LIN_P),
    ("linear/hand_sigmoid", lambda m, x: 1 / (1 + gf.exp(-(x @ m.w.T + m.b))), _lin_ref("sigmoid"), LIN_P),
    ("linear/silu", lambda m, x: gf.silu(x @ m.w.T + m.b), _lin_ref("silu"), LIN_P),
    ("linear/hand_silu", lambda m, x: (lambda h: h * gf.sigmoid(h))(x @ m.w.T + m.b), _lin_ref("silu"), LIN_P),
    ("linear/hand_silu_exp", lambda m, x: (lambda h: h / (1 + gf.exp(-h)))(x @ m.w + m.b),
     _lin_ref("silu", False), LIN_P_IN_OUT),
]
LINEAR = [(i, h, r, LIN_X, p) for i, h, r, p in LINEAR]

CASES = LAYER_NORM + ACTIVATIONS + SOFTMAX + ATTENTION + LINEAR


def _shape_of(graph):
    """The graph's computation without names: ops in order with their attributes (constants by value)."""
    out = []
    for node in graph.nodes:
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in node.attrs.items()}
        out.append((node.op, sorted(attrs.items()), [v.type for v in node.inputs]))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hand_spelling_fuses_like_the_op(case):
    _, hand, ref, specs, params = case
    before = gf.trace(Fn(hand, **params), *specs)
    after = optimize(before, verify=True)
    want = optimize(gf.trace(Fn(ref, **params), *specs))
    assert after.op_counts() == want.op_counts(), f"got:\n{after}\nwant:\n{want}"
    assert _shape_of(after) == _shape_of(want), f"got:\n{after}\nwant:\n{want}"
    assert_equivalent(before, after, rtol=1e-4, atol=1e-5)
    assert_idempotent(after, "default")


class ConvBN(nn.Module):
    def __init__(self, conv_bias):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=conv_bias)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)).relu()


class ConvOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).relu()


@pytest.mark.parametrize("conv_bias", [False, True], ids=["conv_without_bias", "conv_with_bias"])
def test_conv_bn_eval_folds_into_one_conv(conv_bias):
    spec = gf.TensorSpec(("batch", 3, 6, 6), F32, name="x")
    before = gf.trace(ConvBN(conv_bias), spec, training=False)
    # Non-trivial running statistics, so folding them is actually exercised.
    rng = np.random.default_rng(0)
    for name in ("bn.running_mean", "bn.weight", "bn.bias"):
        before.params[name] = rng.standard_normal(4).astype(np.float32)
    before.params["bn.running_var"] = (rng.random(4) + 0.5).astype(np.float32)
    after = optimize(before, verify=True)
    want = optimize(gf.trace(ConvOnly(), spec))
    assert after.op_counts() == want.op_counts() == {"conv2d": 1, "relu": 1}, str(after)
    assert _shape_of(after) == _shape_of(want)
    assert_equivalent(before, after, rtol=1e-4, atol=1e-5)
    assert_idempotent(after, "default")


def test_simplify_writes_axes_negatively():
    # softmax(x, 1) and a fused softmax over axis 1 must be one graph (and CSE-able with each other).
    check_pass("""
graph g(%x: f32[batch,4,6]) {
  %a: f32[batch,4,6] = softmax(%x) {axis=1} @h (a.py:1)
  %b: f32[batch,4,6] = log_softmax(%x) {axis=2} @h (a.py:2)
  %c: f32[batch,4,6] = layer_norm(%x) {axis=1, eps=1e-05} @h (a.py:3)
  %d: f32[batch,4,6] = softmax(%x) {axis=-2} @h (a.py:4)
  %e: f32[batch,4,6] = sub(%a, %d) @h (a.py:5)
  return %e as e, %b as b, %c as c
}""", "simplify,cse", """
graph g(%x: f32[batch,4,6]) {
  %a: f32[batch,4,6] = softmax(%x) {axis=-2} @h (a.py:1)
  %b: f32[batch,4,6] = log_softmax(%x) {axis=-1} @h (a.py:2)
  %c: f32[batch,4,6] = layer_norm(%x) {axis=-2, eps=1e-05} @h (a.py:3)
  %e: f32[batch,4,6] = sub(%a, %a) @h (a.py:5)
  return %e as e, %b as b, %c as c
}""")


def test_simplify_double_logical_not():
    check_pass("""
graph g(%m: bool[4], %x: f32[4]) {
  %n: bool[4] = logical_not(%m) @h (a.py:1)
  %nn: bool[4] = logical_not(%n) @h (a.py:2)
  %z: f32[] = constant() {value=tensor<f32[]>[0.0]} @h (a.py:3)
  %y: f32[4] = where(%nn, %x, %z) @h (a.py:3)
  return %y as out, %n as n
}""", "simplify", """
graph g(%m: bool[4], %x: f32[4]) {
  %n: bool[4] = logical_not(%m) @h (a.py:1)
  %z: f32[] = constant() {value=tensor<f32[]>[0.0]} @h (a.py:3)
  %y: f32[4] = where(%m, %x, %z) @h (a.py:3)
  return %y as out, %n as n
}""")


def test_unguarded_softmax_fusion_is_a_numerical_improvement():
    # exp(x)/sum(exp(x)) overflows to NaN for large logits; the fused softmax (max-subtracted) does
    # not, and agrees wherever the spelling is finite. This is why the rules fuse the unsafe form.
    spec = _spec((2, 3), "x")
    x = np.array([[1.0, 2.0, 3.0], [100.0, 101.0, 102.0]], dtype=np.float32)
    spellings = {"softmax": lambda x: gf.exp(x) / gf.exp(x).sum(-1, keepdims=True),
                 "log_softmax": lambda x: x - gf.log(gf.exp(x).sum(-1, keepdims=True))}
    fused = {}
    for op, fn in spellings.items():
        g = gf.trace(fn, spec)
        out = optimize(g, verify=True)
        assert out.op_counts() == {op: 1}, str(out)
        (spelled,), (fused[op],) = gf.run(g, {"x": x}), gf.run(out, {"x": x})
        assert not np.isfinite(spelled[1]).any() and np.isfinite(fused[op]).all()
        np.testing.assert_allclose(fused[op][0], spelled[0], rtol=1e-6)
    # both are shift-invariant: the overflowing row equals the small one
    np.testing.assert_allclose(fused["softmax"][1], fused["softmax"][0], rtol=1e-6)
    np.testing.assert_allclose(fused["log_softmax"][1], fused["log_softmax"][0], rtol=1e-5)


NEAR_MISSES = [
    # (id, fn, spec, the op that must not appear)
    ("ln/pow_not_minus_half", lambda x: (x - _mu(x)) * (x.var(-1, keepdims=True) + EPS) ** -0.4,
     LN_X[0], "layer_norm"),
    ("ln/affine_before_other_tensor", lambda x: (x * 2.0 - _mu(x)) / gf.sqrt(x.var(-1, keepdims=True) + EPS),
     LN_X[0], "layer_norm"),
    ("gelu/tanh_factored_wrong_const", lambda x: 0.5 * x * (1 + gf.tanh(SQRT_2_PI * x * (1 + 0.05 * x * x))),
     ACT_X[0], "gelu"),
    ("log_softmax/logsumexp_other_axis", lambda x: x - (x.max(-1, keepdims=True) + gf.log(
        gf.exp(x - x.max(-1, keepdims=True)).sum(1, keepdims=True))), SM_X[0], "log_softmax"),
    ("sigmoid/two_over", lambda x: 2 / (1 + gf.exp(-x)), ACT_X[0], "sigmoid"),
    ("relu/maximum_half", lambda x: gf.maximum(x, 0.5), ACT_X[0], "relu"),
    ("relu/clamp_both", lambda x: x.clamp(min=0.0, max=6.0), ACT_X[0], "relu"),
]


@pytest.mark.parametrize("case", NEAR_MISSES, ids=[c[0] for c in NEAR_MISSES])
def test_near_misses_do_not_fuse(case):
    _, fn, spec, op = case
    g = gf.trace(fn, spec)
    out = optimize(g, verify=True)
    assert op not in out.op_counts(), str(out)
    assert_equivalent(g, out)
