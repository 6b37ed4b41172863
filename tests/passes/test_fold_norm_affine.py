"""passes/fold_norm.py: a LayerNorm's scale and shift move into the linears that read it (same outputs),
and norms with other readers, or that are graph outputs, are left alone."""
from __future__ import annotations

import numpy as np

import graphforge as gf
from graphforge import nn
from graphforge.passes.fold_norm import fold_norm_affine


class _PreNorm(nn.Module):
    """A norm read by three linears (one without a bias), then a second norm read by a linear and an add."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.q = nn.Linear(6, 4)
        self.k = nn.Linear(6, 4, bias=False)
        self.v = nn.Linear(6, 4)
        self.norm2 = nn.LayerNorm(4)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        h = self.norm(x)
        y = self.q(h) + self.k(h) * self.v(h)
        z = self.norm2(y)
        return self.out(z) + z


def _graph():
    g = gf.trace(_PreNorm(), gf.TensorSpec(("batch", 3, 6)), seed=0, training=False)
    rng = np.random.default_rng(1)
    for name in ("norm.weight", "norm.bias", "norm2.weight", "norm2.bias"):  # not the 1/0 defaults
        g.params[name] = rng.uniform(0.5, 1.5, g.params[name].shape).astype(np.float32)
    return g


def test_norm_read_only_by_linears_is_folded_and_outputs_are_equal():
    g = _graph()
    x = np.random.default_rng(0).standard_normal((2, 3, 6)).astype(np.float32)
    want = gf.run(g, x, backend="reference")[0]
    out, changed = fold_norm_affine(g.copy())
    assert changed
    norms = [n for n in out.nodes if n.op == "layer_norm"]
    assert [len(n.inputs) for n in norms] == [1, 3]  # norm2 also feeds an add: kept as it was
    assert "norm.weight" not in out.params and "norm.bias" not in out.params
    assert "norm2.weight" in out.params
    assert all(len(n.inputs) == 3 for n in out.nodes if n.op == "linear")  # k gained a bias (W @ shift)
    np.testing.assert_allclose(gf.run(out, x, backend="reference")[0], want, rtol=1e-5, atol=1e-5)
    assert fold_norm_affine(out)[1] is False  # nothing left to fold


def test_norm_that_is_a_graph_output_or_has_no_affine_is_not_folded():
    g = gf.trace(nn.LayerNorm(4), gf.TensorSpec((2, 4)), seed=0)
    assert fold_norm_affine(g)[1] is False
    g = gf.trace(nn.seq().add(nn.LayerNorm(4, elementwise_affine=False)).add(nn.Linear(4, 2)),
                 gf.TensorSpec((2, 4)), seed=0)
    assert fold_norm_affine(g)[1] is False


def test_registered_as_a_pass():
    g = _graph()
    out = gf.optimize(g, "fold_norm_affine")
    assert sum(len(n.inputs) == 1 for n in out.nodes if n.op == "layer_norm") == 1
    assert g.params["norm.weight"] is not None  # gf.optimize works on a copy


class _InOut(nn.Module):
    """A norm read by a linear whose weight is stored (in, out) (``transpose_b=False``)."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(2)
        self.norm = nn.LayerNorm(6)
        self.w = nn.Parameter(rng.standard_normal((6, 4)).astype(np.float32))

    def forward(self, x):
        return gf.linear(self.norm(x), self.w, transpose_b=False)


def test_linear_with_an_in_out_weight_folds_too():
    g = gf.trace(_InOut(), gf.TensorSpec((2, 6)), seed=0)
    g.params["norm.weight"] = np.linspace(0.5, 2, 6).astype(np.float32)
    g.params["norm.bias"] = np.linspace(-1, 1, 6).astype(np.float32)
    x = np.random.default_rng(3).standard_normal((2, 6)).astype(np.float32)
    want = gf.run(g, x, backend="reference")[0]
    out, changed = fold_norm_affine(g.copy())
    assert changed and [len(n.inputs) for n in out.nodes if n.op == "layer_norm"] == [1]
    lin = next(n for n in out.nodes if n.op == "linear")
    assert lin.attrs["transpose_b"] is False and lin.inputs[1].type.shape == (6, 4)
    np.testing.assert_allclose(gf.run(out, x, backend="reference")[0], want, rtol=1e-5, atol=1e-5)
