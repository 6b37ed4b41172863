"""Issue 23: the JAX back end turned SqueezeNet's softmax into NaN. These are the reduced reproductions.

Upstream behaviour (XLA's CPU code generator, seen with jax/jaxlib 0.10 on an FMA-capable x86 CPU): when a
softmax input is a cheap elementwise product, e.g. ``x * c`` (a mean's ``sum * 1/n`` — XLA rewrites the
division by the constant ``n`` into a multiplication — or attention's ``scores * scale``), XLA duplicates
the multiplication into both consumers: the fusion that reduces ``max(x * c)`` and the fusion that computes
``exp(x * c - max)``. In the second one the multiplication and the subtraction are contracted into one fused
multiply-add, which does not round the product. The max is taken over rounded products, the subtraction uses
the exact ones, so ``x * c - max`` is the rounding error of the product instead of 0: up to half an ulp of
the value (512 at 1e10). With SqueezeNet's logits (all ≈ 9.48e9, the pooled sum 1.6013913e12 times
float32(1/169)) it is -179.4 for every entry, every ``exp`` underflows to 0 and the row is 0/0 = NaN; a
positive error above 88.7 overflows instead (inf/inf). ``jax.nn.softmax`` on the same logits passed in as
an argument is fine (nothing to contract), and so is the eager, unjitted chain (no fusion).

graphforge's lowering pins the maximum with a comparison (``runtimes/jax/lower.py: softmax_shift``), which
is never contracted, so these inputs give the exact answer whatever XLA fuses.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import graphforge as gf  # noqa: E402

POOLED_SUM = np.float32(1.6013913e12)   # SqueezeNet's pooled sum for its test image
INV_169 = np.float32(1 / 169)           # what XLA multiplies by instead of dividing by 13 * 13


def test_the_reproduction_input_has_a_large_product_rounding_error():
    # The premise of the reductions below: the exact product (a float32 times a float32 is exact in
    # float64) differs from the rounded one by far more than exp can absorb (it underflows below -103.9).
    rounded = np.float32(POOLED_SUM * INV_169)
    exact = np.float64(POOLED_SUM) * np.float64(INV_169)
    assert exact - np.float64(rounded) == pytest.approx(-179.40966796875)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_of_a_scaled_input_is_exact(op):
    """The two-op reduction: ``softmax(x * c)`` (``jax.nn.softmax(x * c)`` jitted gives NaN everywhere)."""
    fn = getattr(gf, op)
    g = gf.trace(lambda x: fn(x * INV_169, -1), gf.TensorSpec((2, 8), "float32"))
    x = np.stack([np.full(8, POOLED_SUM), POOLED_SUM * np.float32([1, 1, 0.5, -1, 0, 1, 0.999, 2e-12])])
    x = x.astype(np.float32)
    got = gf.run(g, x, backend="jax")[0]
    want = gf.run(g, x, backend="reference")[0]
    assert np.isfinite(got).all(), got
    # row 0: eight equal logits; row 1: three tied maxima, the rest more than 1e6 below them
    probs = np.exp(got) if op == "log_softmax" else got
    np.testing.assert_allclose(probs, [[1 / 8] * 8, [1 / 3, 1 / 3, 0, 0, 0, 1 / 3, 0, 0]], rtol=1e-6, atol=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _pooled_logits(channels: int = 16) -> np.ndarray:
    # all of a channel's mass in one pixel, so the pooled sum is POOLED_SUM in any summation order
    x = np.zeros((1, channels, 13, 13), np.float32)
    x[0, :, 0, 0] = POOLED_SUM
    return x


def test_squeezenet_head_reduced_to_pool_flatten_softmax():
    """SqueezeNet's head, traced: global_avg_pool2d → flatten → softmax, every logit ≈ 9.48e9."""
    g = gf.trace(lambda x: gf.softmax(gf.flatten(gf.global_avg_pool2d(x)), -1),
                 gf.TensorSpec((1, 16, 13, 13), "float32"))
    for backend in ("jax", "reference", "onnxruntime"):
        got = gf.run(g, _pooled_logits(), backend=backend)[0]
        np.testing.assert_allclose(got, np.full((1, 16), 1 / 16, np.float32), rtol=1e-6, err_msg=backend)


def test_attention_with_large_equal_scores_is_exact():
    """attention's ``scores * scale`` meets the same contraction; equal keys must give the mean of v."""
    g = gf.trace(lambda q, k, v: gf.attention(q, k, v, scale=float(INV_169)),
                 *(gf.TensorSpec((1, 2, 3, 4), "float32") for _ in range(3)))
    q = np.full((1, 2, 3, 4), 1.0, np.float32)
    k = np.full((1, 2, 3, 4), POOLED_SUM / 4, np.float32)   # every score is POOLED_SUM * 1/169
    v = np.random.default_rng(0).normal(size=(1, 2, 3, 4)).astype(np.float32)
    for backend in ("jax", "reference", "onnxruntime"):
        got = gf.run(g, [q, k, v], backend=backend)[0]
        np.testing.assert_allclose(got, np.broadcast_to(v.mean(axis=2, keepdims=True), got.shape), rtol=1e-5,
                                   atol=1e-6, err_msg=backend)
