"""passes/fold_residual_bias.py: a post-norm residual branch's output bias moves into the norm beside
it (same outputs, one bias add fewer); anything else is left alone; the contrib export runs it on a copy."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.passes.fold_residual_bias import fold_residual_bias, has_residual_bias


def _biased_linears(g) -> int:
    return sum(1 for n in g.nodes if n.op == "linear" and len(n.inputs) > 2)


def _encoder(norm_first: bool, layers: int = 2):
    enc = nn.TransformerEncoder(num_layers=layers, d_model=16, nhead=4, dim_feedforward=32, dropout=0.0,
                                norm_first=norm_first, batch_first=True)
    g = gf.optimize(gf.trace(enc, gf.TensorSpec(("batch", 5, 16)), seed=0, training=False))
    rng = np.random.default_rng(2)
    for name, value in g.params.items():  # biases and norm shifts away from their 0 defaults
        if value.ndim == 1:
            g.params[name] = rng.uniform(-0.5, 0.5, value.shape).astype(np.float32) + (name.endswith("weight"))
    return g


def _outputs(g, x):
    return gf.run(g, [x], backend="reference")[0]


def test_post_norm_encoder_folds_and_computes_the_same():
    g = _encoder(norm_first=False)
    x = np.random.default_rng(3).normal(size=(3, 5, 16)).astype(np.float32)
    want = _outputs(g, x)
    before = _biased_linears(g)
    folded, changed = fold_residual_bias(g.copy())
    assert changed
    # each layer's feed-forward output bias, and layer 2's attention output projection bias
    assert _biased_linears(folded) == before - 3
    np.testing.assert_allclose(_outputs(folded, x), want, rtol=1e-5, atol=1e-5)
    assert _biased_linears(g) == before  # the copy was folded, not g
    # new parameters are named after the norm's and linear's own (not after an unnamed activation)
    new = sorted(set(folded.params) - set(g.params))
    assert new and all(n.split(".residual")[0] in g.params for n in new), new


def test_pre_norm_encoder_has_nothing_to_fold():
    # the residual summand is the previous sum, not a norm's output
    g = _encoder(norm_first=True)
    assert not has_residual_bias(g) and fold_residual_bias(g.copy())[1] is False


class _Block(nn.Module):
    """norm -> (linear, other reader) and a residual sum with a linear branch."""

    def __init__(self, other: str, branch_bias: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.branch = nn.Linear(8, 8, bias=branch_bias)
        self.other = other

    def forward(self, x):
        z = self.norm(x)
        h = gf.relu(self.fc(z))
        out = z + self.branch(h)
        if self.other == "relu":
            return out + gf.relu(z)
        if self.other == "output":
            return out, z
        return out


@pytest.mark.parametrize("other,branch_bias,folds", [("none", True, True), ("relu", True, False),
                                                     ("output", True, False), ("none", False, False)])
def test_folds_only_when_every_other_reader_is_a_linear(other, branch_bias, folds):
    g = gf.trace(_Block(other, branch_bias), gf.TensorSpec((2, 8)), seed=0, training=False)
    x = np.random.default_rng(4).normal(size=(2, 8)).astype(np.float32)
    want = gf.run(g, [x], backend="reference")
    assert has_residual_bias(g) is folds
    folded, changed = fold_residual_bias(g.copy())
    assert changed is folds
    for got, ref in zip(gf.run(folded, [x], backend="reference"), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_contrib_export_folds_a_copy_and_agrees():
    pytest.importorskip("onnxruntime")
    from graphforge.runtimes.onnx import OrtSession, to_onnx

    g = _encoder(norm_first=False)
    names = set(g.params)
    ops = collections.Counter(n.op_type for n in to_onnx(g, contrib_ops=True).graph.node)
    plain = collections.Counter(n.op_type for n in to_onnx(g).graph.node)
    fed = collections.Counter(n.op_type for n in to_onnx(g, contrib_ops=True, params_as_inputs=True).graph.node)
    # 4 residual sums + 2 feed-forward input biases + layer 1's attention output bias; q/k/v biases
    # are inside Attention. With the weights fed at run time nothing is folded (or packed).
    assert ops["Add"] == 7 and fed["Add"] == plain["Add"] == 16, (ops, fed, plain)
    assert set(g.params) == names  # the caller's graph keeps its parameters
    x = np.random.default_rng(5).normal(size=(2, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(OrtSession(g).run([x])[0], _outputs(g, x), rtol=1e-4, atol=1e-4)
