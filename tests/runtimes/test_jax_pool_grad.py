"""The JAX lowering's tiled max_pool2d_grad (non-overlapping windows, no scatter) against XLA's
select-and-scatter (JAX's own reduce-window VJP): same first-maximum rule on ties, trailing rows
dropped by floor mode get no cotangent, 1-3 spatial axes; the shapes it does not cover fall back."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from graphforge.runtimes.jax import nn_ops

__all__: list[str] = []


def _attrs(k, s=None, pads=None):
    return dict(kernel=list(k), strides=list(s or k), pads=list(pads or [0] * (2 * len(k))),
                dilations=[1] * len(k), ceil_mode=False)


def _select_and_scatter(x, g, attrs):
    _, vjp = jax.vjp(lambda t: nn_ops._max_pool_fn(t, attrs, g.shape), x)
    return vjp(g)[0]


def _jitted(fn, attrs):
    """Both sides compiled as one program each: run eagerly, every primitive compiles on its own
    (2-7 s a case); the values are the same."""
    return jax.jit(lambda x, g: fn(x, g, attrs))


@pytest.mark.parametrize("shape,k", [((2, 3, 8, 8), (2, 2)), ((2, 3, 9, 7), (2, 2)), ((2, 3, 9, 9), (3, 3)),
                                     ((2, 2, 10), (2,)), ((1, 2, 4, 6, 4), (2, 2, 2)), ((2, 3, 6, 5), (1, 1)),
                                     ((3, 2, 4, 6), (2, 3))])
def test_tiled_matches_select_and_scatter_with_ties(shape, k):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 3, shape).astype(np.float32))   # few values: many tied maxima
    out = tuple(shape[2 + i] // k[i] for i in range(len(k)))
    g = jnp.asarray(rng.standard_normal(shape[:2] + out).astype(np.float32))
    attrs = _attrs(k)
    got = _jitted(nn_ops._tiled_pool_grad, attrs)(x, g)
    assert got is not None and got.shape == x.shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(_jitted(_select_and_scatter, attrs)(x, g)))


def test_nan_takes_the_cotangent_like_the_forward_max():
    x = np.ones((1, 1, 2, 2), np.float32)
    x[0, 0, 1, 0] = np.nan
    got = _jitted(nn_ops._tiled_pool_grad, _attrs((2, 2)))(jnp.asarray(x), jnp.full((1, 1, 1, 1), 3.0, jnp.float32))
    np.testing.assert_array_equal(np.asarray(got)[0, 0], [[0.0, 0.0], [3.0, 0.0]])


@pytest.mark.parametrize("attrs,out", [(_attrs((2, 2), (1, 1)), (3, 3)),          # overlapping windows
                                       (_attrs((2, 2), None, [1, 1, 1, 1]), (3, 3)),  # padded
                                       (_attrs((5, 5)), (0, 0))])                   # window over 16 positions
def test_other_pools_fall_back(attrs, out):
    x = jnp.zeros((1, 1, 4, 4), jnp.float32)
    assert nn_ops._tiled_pool_grad(x, jnp.zeros((1, 1) + out, jnp.float32), attrs) is None


def test_ceil_mode_partial_window_falls_back():
    x = jnp.zeros((1, 1, 5, 5), jnp.float32)   # ceil mode: 3 windows of 2, the last one partial
    assert nn_ops._tiled_pool_grad(x, jnp.zeros((1, 1, 3, 3), jnp.float32), _attrs((2, 2))) is None
