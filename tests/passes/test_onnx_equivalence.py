"""Optimised graphs give the same results on onnxruntime (its own graph optimisations disabled) as
the unoptimised graph on the reference runtime."""
import math

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from passtest import onnx_runner, random_inputs
from gf_testutil import zip_outputs



def _hand_mlp():
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.b1 = nn.Parameter((16, 8)), nn.Parameter((16,))
            self.w2, self.b2 = nn.Parameter((4, 16)), nn.Parameter((4,))

        def forward(self, x):
            h = x @ self.w1.T + self.b1
            h = 0.5 * h * (1 + gf.erf(h / math.sqrt(2)))
            y = (h * 1.0) @ self.w2.T + self.b2
            e = gf.exp(y - y.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)
    return gf.trace(MLP(), gf.TensorSpec(("batch", 8), "float32"))


def _grad_graph():
    net = nn.seq().add(nn.Linear(8, 16)).add_fn(gf.tanh).add(nn.Linear(16, 3))
    g = gf.trace(lambda x, y: nn.functional.cross_entropy(net(x), y), gf.TensorSpec(("batch", 8), "float32"),
                 gf.TensorSpec(("batch",), "int64"))
    return gf.grad(g, optimize=False)


@pytest.mark.parametrize("build", [_hand_mlp, _grad_graph], ids=["hand_mlp", "grad"])
def test_optimised_graph_on_onnxruntime(build):
    g = build()
    opt = gf.optimize(g, verify=True)
    inputs = random_inputs(g, seed=4)
    want = gf.run(g, inputs)
    got = onnx_runner()(opt, inputs)
    for o, w in zip_outputs(got, want):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5)
