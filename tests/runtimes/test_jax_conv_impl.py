"""The JAX back end's convolution strategies (runtimes/jax/conv_impl.py): every method computes
XLA's convolution (1-3 spatial axes, strides, dilations, asymmetric pads, a kernel larger than the
output), and the shape rule keeps the method that measured fastest."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from graphforge.runtimes.jax import conv_impl

__all__: list[str] = []

# (x shape, w shape, strides, padding, dilation)
CASES = [((2, 3, 9, 8), (4, 3, 3, 2), (1, 1), [(1, 1), (0, 2)], (1, 1)),
         ((2, 3, 9, 8), (4, 3, 3, 2), (2, 1), [(1, 0), (0, 1)], (1, 2)),
         ((3, 2, 7), (5, 2, 3), (2,), [(1, 2)], (2,)),
         ((1, 2, 3, 4, 3), (3, 2, 2, 1, 2), (1, 2, 1), [(1, 0), (0, 1), (1, 1)], (1, 1, 2)),
         ((2, 2, 6, 5), (3, 2, 5, 4), (1, 1), [(1, 1), (1, 1)], (1, 1)),       # kernel > output: per-output slices
         ((2, 1, 6, 6), (3, 1, 3, 3), (2, 2), [(1, 1), (1, 1)], (2, 1))]


@pytest.mark.parametrize("method", conv_impl.METHODS)
@pytest.mark.parametrize("xs,ws,strides,padding,dilation", CASES)
def test_every_method_computes_xlas_convolution(method, xs, ws, strides, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    want = lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, precision="highest")
    # jitted: one compile instead of one per eager slice
    conv = jax.jit(lambda x, w: conv_impl.conv_general(x, w, strides, padding, dilation, 1, "highest", method=method))
    got = conv(jnp.asarray(x), jnp.asarray(w))
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-4)


def test_grouped_and_negative_padding_use_xla():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((4, 2, 3, 3)).astype(np.float32))
    assert conv_impl.choose(x.shape, w.shape, (1, 1), [(1, 1), (1, 1)], (1, 1), 2) == "xla"
    for method in conv_impl.METHODS:   # a forced method that cannot apply falls back, never fails
        got = conv_impl.conv_general(x, w, (1, 1), [(-1, 1), (1, 1)], (1, 1), 2, "highest", method=method)
        want = lax.conv_general_dilated(x, w, (1, 1), [(-1, 1), (1, 1)], feature_group_count=2, precision="highest")
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("xs,ws,padding", [((128, 1, 28, 28), (6, 1, 5, 5), [(2, 2), (2, 2)]),
                                          ((1, 128, 28, 28), (6, 128, 28, 28), [(2, 2), (2, 2)]),
                                          ((16, 128, 16, 16), (16, 128, 16, 16), [(1, 1), (1, 1)])])
def test_shape_rule_keeps_xla_where_no_candidate_paid(xs, ws, padding):
    # LeNet's conv1, its weight gradient, a ResNet-8 weight gradient: docs/benchmarks.md has the numbers
    assert conv_impl.choose(xs, ws, (1, 1), padding, (1, 1), 1) == "xla"
