"""fusion/layer_norm: LayerNorm spelled out by hand → layer_norm."""
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes import fusion, optimize
from nn_stubs import nn_ops
from passtest import assert_equivalent, assert_idempotent, check_pass


@pytest.fixture(autouse=True)
def _ops():
    with nn_ops("layer_norm") as real:
        yield real


def _ln_rsqrt(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(-1, keepdims=True)
    return d * gf.rsqrt(var + eps) * g + b


def _ln_sqrt_div(x, g, b, eps=1e-5):
    mu = gf.mean(x, -1, keepdims=True)
    var = gf.mean((x - mu) ** 2, -1, keepdims=True)   # x - mu written twice: CSE shares it
    return g * ((x - mu) / gf.sqrt(var + eps)) + b


def _ln_var_helper(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) * (1.0 / gf.sqrt(gf.var(x, -1, keepdims=True) + eps)) * g + b


SPELLINGS = {"rsqrt": _ln_rsqrt, "sqrt_div": _ln_sqrt_div, "var_helper": _ln_var_helper}


class HandLN(nn.Module):
    def __init__(self, dim, spelling):
        super().__init__()
        self.weight = nn.Parameter((dim,), init=nn.init.normal(0.5, 1.0))
        self.bias = nn.Parameter((dim,), init=nn.init.normal(0.5))
        self.spelling = spelling

    def forward(self, x):
        return SPELLINGS[self.spelling](x, self.weight, self.bias)


class Net(nn.Module):
    def __init__(self, ln):
        super().__init__()
        self.norm = ln

    def forward(self, x):
        return gf.tanh(self.norm(x))


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_spellings_fuse(spelling):
    g = gf.trace(Net(HandLN(6, spelling)), gf.TensorSpec(("batch", 5, 6), "float32"))
    out = optimize(g, verify=True)
    assert out.op_counts() == {"layer_norm": 1, "tanh": 1}, str(out)
    ln = [n for n in out.nodes if n.op == "layer_norm"][0]
    assert ln.attrs == {"axis": -1, "eps": 1e-5} and ln.scope == "norm"
    assert [v.name for v in ln.inputs] == ["x", "norm.weight", "norm.bias"]
    assert_equivalent(g, out, rtol=1e-4, atol=1e-5)
    assert_idempotent(out, "default")


def test_ir_text_without_affine_over_two_axes():
    check_pass("""
graph g(%x: f32[batch,3,4]) {
  %mu: f32[batch,1,1] = mean(%x) {axes=[1, 2], keepdims=true} @ln (l.py:1)
  %d: f32[batch,3,4] = sub(%x, %mu) @ln (l.py:2)
  %sq: f32[batch,3,4] = mul(%d, %d) @ln (l.py:3)
  %var: f32[batch,1,1] = mean(%sq) {axes=[-2, -1], keepdims=true} @ln (l.py:3)
  %eps: f32[] = constant() {value=tensor<f32[]>[1e-06]} @ln (l.py:4)
  %ve: f32[batch,1,1] = add(%var, %eps) @ln (l.py:4)
  %r: f32[batch,1,1] = rsqrt(%ve) @ln (l.py:4)
  %y: f32[batch,3,4] = mul(%d, %r) @ln (l.py:5)
  return %y as out
}""", "fuse,dce", """
graph g(%x: f32[batch,3,4]) {
  %0: f32[batch,3,4] = layer_norm(%x) {axis=-2, eps=1e-06} @ln (l.py:1;l.py:2;l.py:3;l.py:4;l.py:5)
  return %0 as out
}""")


def test_non_trailing_axes_or_other_mean_do_not_fuse():

    def wrong_axis(x):
        mu = x.mean(0, keepdims=True)
        d = x - mu
        return d * gf.rsqrt((d * d).mean(0, keepdims=True) + 1e-5)

    def wrong_var_axis(x):
        mu = x.mean(-1, keepdims=True)
        d = x - mu
        return d * gf.rsqrt((d * d).mean(0, keepdims=True) + 1e-5)
    for fn in (wrong_axis, wrong_var_axis):
        g = gf.trace(fn, gf.TensorSpec((4, 6), "float32"))
        reports = []
        assert "layer_norm" not in optimize(g, verify=True, report=reports.append).op_counts()
        assert "layer_norm" not in reports[0].stats()


def test_same_graph_as_nn_layer_norm():
    if not hasattr(nn, "LayerNorm"):
        pytest.skip("nn.LayerNorm does not exist yet (graphforge/nn is being extended)")
    spec = gf.TensorSpec(("batch", 5, 6), "float32")
    hand = optimize(gf.trace(Net(HandLN(6, "rsqrt")), spec))
    ref = optimize(gf.trace(Net(nn.LayerNorm(6)), spec))
    strip = lambda g: [(n.op, n.scope, sorted(n.attrs.items()), [v.name for v in n.inputs])  # noqa: E731
                       for n in g.nodes]
    assert strip(hand) == strip(ref)
