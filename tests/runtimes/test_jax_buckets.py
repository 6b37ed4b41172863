"""JAX: one compilation per concrete shape, cached; optional bucketing pads symbolic dims so that
variable lengths share compilations (valid for causal models, see runtimes/jax/buckets.py)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn

jax_backend = pytest.importorskip("graphforge.runtimes.jax")


class CausalLM(nn.Module):
    """Every position reads only positions <= itself: padding at the end cannot change the rest."""

    def __init__(self, max_len: int):
        super().__init__()
        self.pos = nn.Parameter((max_len, 4))
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        n = x.shape[1]
        h = x + self.pos[:n]
        scores = h @ h.transpose(1, 2)
        scores = gf.where(gf.tril(gf.ones((n, n))) > 0, scores, -1e9)
        return scores.softmax(-1) @ self.proj(h)


def _x(seq, batch=2):
    return np.random.default_rng(seq).standard_normal((batch, seq, 4)).astype(np.float32)


def test_one_compilation_per_shape_then_cached():
    g = gf.trace(CausalLM(64), gf.TensorSpec(("batch", "seq", 4)), seed=0)
    for seq in (3, 5, 3, 5, 3):
        gf.run(g, [_x(seq)], backend="jax")
    assert jax_backend.compiled_count(g) == 2


def test_bucketing_shares_compilations_and_keeps_the_values():
    g = gf.trace(CausalLM(64), gf.TensorSpec(("batch", "seq", 4)), seed=0)
    for seq in (3, 4, 5, 7, 8, 13):
        x = _x(seq)
        got = gf.run(g, [x], backend="jax", bucket={"seq": "pow2"})[0]
        assert got.shape == (2, seq, 4)
        np.testing.assert_allclose(got, gf.run(g, [x])[0], rtol=1e-4, atol=1e-5)
    assert jax_backend.compiled_count(g) == 3  # buckets 4, 8, 16
    gf.run(g, [_x(10, batch=3)], backend="jax", bucket=8)  # every symbol to a multiple of 8: (8, 16)
    assert jax_backend.compiled_count(g) == 4


def test_a_bucket_that_breaks_a_guard_runs_at_the_exact_size():
    g = gf.trace(CausalLM(40), gf.TensorSpec(("batch", "seq", 4)), seed=0)
    x = _x(33)  # pow2 would be 64 > 40 rows of positions
    got = gf.run(g, [x], backend="jax", bucket="pow2")[0]
    np.testing.assert_allclose(got, gf.run(g, [x])[0], rtol=1e-4, atol=1e-5)


def test_bad_bucket_rules_are_input_errors():
    g = gf.trace(CausalLM(16), gf.TensorSpec(("batch", "seq", 4)), seed=0)
    with pytest.raises(gf.InputError, match="pow2"):
        gf.run(g, [_x(3)], backend="jax", bucket="big")
    with pytest.raises(gf.InputError, match="do not bind: len"):
        gf.run(g, [_x(3)], backend="jax", bucket={"len": 8})
