"""Causal attention at a symbolic sequence length: its VJP and its decomposition build the
triangular mask from ``arange`` over the lengths (they used to refuse with UnsupportedOpError, so a
decoder-only LM traced with a symbolic ``seq`` could not be trained without dropout). One gradient
graph, traced once, matches finite differences at two run-time lengths; the decomposed forward
matches the op's reference, also with different query and key lengths (top-left aligned, j <= i)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.passes.decompose import decompose
from gf_testutil import numeric_grad

W_SEED = 5


def _loss(q, k, v):
    # a weighted sum, so every output element's cotangent differs
    out = gf.attention(q, k, v, causal=True)
    w = gf.sin(gf.cast(gf.arange(out.shape[2]), "float64"))
    return gf.sum(out * w[None, None, :, None])


@pytest.fixture(scope="module")
def graphs():
    spec = lambda: gf.TensorSpec((1, 2, "seq", 3), "float64")  # noqa: E731
    g = gf.trace(_loss, spec(), spec(), spec())
    return g, gf.grad(g, wrt=["q", "k", "v"])


@pytest.mark.parametrize("seq", (3, 5))
def test_causal_attention_gradient_at_symbolic_lengths(graphs, seq):
    g, tg = graphs
    rng = np.random.default_rng(seq)
    arrays = [rng.standard_normal((1, 2, seq, 3)) for _ in range(3)]
    got = gf.run(tg, arrays, backend="reference")
    loss = lambda a: gf.run(g, a, backend="reference")[0]  # noqa: E731
    for i in range(3):
        np.testing.assert_allclose(got[1 + i], numeric_grad(loss, arrays, i), rtol=1e-6, atol=1e-8,
                                   err_msg=f"gradient {i} at seq {seq}")


def test_causal_attention_decomposes_at_symbolic_lengths():
    def traced():
        return gf.trace(lambda q, k, v: gf.attention(q, k, v, causal=True),
                        gf.TensorSpec((1, 1, "sq", 2), "float64"), gf.TensorSpec((1, 1, "sk", 2), "float64"),
                        gf.TensorSpec((1, 1, "sk", 2), "float64"))
    g = traced()
    d, changed = decompose(traced())  # in place
    assert changed
    assert "attention" not in {n.op for n in d.walk()}
    rng = np.random.default_rng(0)
    for sq, sk in ((3, 3), (2, 4), (4, 2)):
        arrays = [rng.standard_normal((1, 1, sq, 2)), rng.standard_normal((1, 1, sk, 2)),
                  rng.standard_normal((1, 1, sk, 2))]
        np.testing.assert_allclose(gf.run(d, arrays, backend="reference")[0],
                                   gf.run(g, arrays, backend="reference")[0], rtol=1e-12)
