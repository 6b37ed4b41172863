"""Gradients through conv, conv_transpose, max and avg pooling at symbolic batch and spatial sizes
(issue #14): one gradient graph, traced once with ``(batch, C, h, w)``, matches finite differences at
two run-time sizes on the reference and JAX back ends, and exports once to ONNX (run at both sizes
by onnxruntime). The VJPs take their pad amounts, window indices and divisors from dims."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from gf_testutil import numeric_grad

SIZES = ((2, 7, 6), (1, 9, 11))    # (batch, h, w): odd and even, so strided convs skip different rows


class ConvPool(nn.Module):
    """conv (stride 2, pad 1) -> tanh -> max pool (ceil mode, padded) -> avg pool (padding excluded)
    -> transposed conv -> a squared sum."""

    def __init__(self, dtype):
        super().__init__()
        self.w = nn.Parameter((3, 2, 3, 3), dtype=dtype)
        self.b = nn.Parameter((3,), dtype=dtype)
        self.wt = nn.Parameter((3, 2, 2, 2), dtype=dtype)

    def forward(self, x):
        y = gf.conv2d(x, self.w, self.b, stride=2, padding=1).tanh()
        y = gf.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
        y = gf.avg_pool2d(y, 2, stride=1, padding=1, count_include_pad=False)
        y = gf.conv_transpose2d(y, self.wt, stride=2, padding=1, output_padding=1)
        return (y * y).sum()


def _graphs(dtype):
    g = gf.trace(ConvPool(dtype), gf.TensorSpec(("batch", 2, "h", "w"), dtype, name="x"), seed=3)
    return g, gf.grad(g, wrt=["x", "w", "b", "wt"])


@pytest.fixture(scope="module")
def graphs64():
    return _graphs("float64")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_gradients_match_finite_differences_at_run_time_sizes(graphs64, size):
    g, tg = graphs64
    b, h, w = size
    x = np.random.default_rng(h).standard_normal((b, 2, h, w))
    params = {n: g.params[n] for n in ("w", "b", "wt")}

    def loss_of(i):
        def loss(arrays):
            feeds = dict(params)
            feeds["x"] = x if i != 0 else arrays[0]
            if i:
                feeds[list(params)[i - 1]] = arrays[0]
            return gf.run(g, [feeds["x"]], backend="reference", params={k: v for k, v in feeds.items() if k != "x"})[0]
        return loss

    for backend in ("reference", "jax"):
        got = gf.run(tg, [x], backend=backend)
        assert got[1].shape == x.shape
        for i, arr in enumerate([x] + list(params.values())):
            want = numeric_grad(loss_of(i), [arr], 0)
            np.testing.assert_allclose(got[1 + i], want, rtol=1e-5, atol=1e-7, err_msg=f"{backend} grad {i}")


def test_the_gradient_graph_exports_once_and_runs_every_size():
    from graphforge.runtimes.onnx import OrtSession

    _, tg = _graphs("float32")
    session = OrtSession(tg)
    for b, h, w in SIZES:
        x = np.random.default_rng(h).standard_normal((b, 2, h, w)).astype(np.float32)
        want = gf.run(tg, [x], backend="reference")
        got = session.run({"x": x})
        for a, r in zip(got, want):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)
