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
         ((2, 1, 6, 6), (3, 1, 3, 3), (2, 2), [(1, 1), (1, 1)], (2, 1)),
         ((1, 5, 9, 10), (2, 5, 6, 7), (2, 1), [(2, 1), (1, 2)], (1, 2)),      # weight-gradient shape, strided, dilated
         ((3, 2, 11), (4, 2, 8), (1,), [(2, 0)], (1,)),                        # 1-D, kernel > output
         ((4, 1, 12, 12), (3, 1, 5, 5), (1, 1), [(2, 2), (2, 2)], (1, 1))]     # LeNet's conv1, small


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


@pytest.mark.parametrize("xs,ws,padding,method", [
    ((128, 1, 28, 28), (6, 1, 5, 5), [(2, 2), (2, 2)], "banded"),      # LeNet's conv1
    ((1, 128, 28, 28), (6, 128, 28, 28), [(2, 2), (2, 2)], "banded"),  # ... its weight gradient
    ((128, 1, 16, 16), (16, 1, 3, 3), [(1, 1), (1, 1)], "banded"),     # ResNet-8's stem
    ((1, 128, 16, 16), (16, 128, 16, 16), [(1, 1), (1, 1)], "banded"),  # ... its weight gradient
    ((128, 3, 32, 32), (32, 3, 5, 5), [(2, 2), (2, 2)], "banded"),     # an RGB 5x5 stem (0.58x of XLA)
    ((128, 6, 14, 14), (16, 6, 5, 5), [(0, 0), (0, 0)], "xla"),        # LeNet's conv2: six channels
    ((6, 128, 14, 14), (16, 128, 10, 10), [(0, 0), (0, 0)], "xla"),    # ... its weight gradient
    ((128, 16, 10, 10), (6, 16, 5, 5), [(4, 4), (4, 4)], "xla"),       # ... its input gradient
    ((16, 128, 16, 16), (16, 128, 16, 16), [(1, 1), (1, 1)], "xla"),   # a ResNet-8 weight gradient
    ((128, 3, 32, 32), (64, 3, 7, 7), [(3, 3), (3, 3)], "xla"),        # 7x7 RGB stem: 147 terms (1.5x)
    ((32, 1, 28, 28), (32, 1, 3, 3), [(1, 1), (1, 1)], "xla"),         # band waste 9.3 (1.6x)
    ((128, 2, 8, 8), (16, 2, 1, 1), [(0, 0), (0, 0)], "xla"),          # a 1x1 convolution is a matmul already
    ((8, 1, 48, 48), (8192, 1, 8, 8), [(0, 0), (0, 0)], "xla"),        # a 129 M-element band: too big
])
def test_shape_rule_picks_what_measured_faster(xs, ws, padding, method):
    # docs/benchmarks.md has the numbers behind each row
    assert conv_impl.choose(xs, ws, (1, 1), padding, (1, 1), 1, platform="cpu") == method


def test_other_platforms_keep_xlas_convolution():
    # measured on XLA:CPU only; a GPU's convolutions are cuDNN's
    assert conv_impl.choose((128, 1, 28, 28), (6, 1, 5, 5), (1, 1), [(2, 2), (2, 2)], (1, 1), 1, platform="gpu") == "xla"
    assert conv_impl.choose((128, 1, 28, 28), (6, 1, 5, 5), (1, 1), [(2, 2), (2, 2)], (1, 1), 1, platform="cpu") == "banded"


def test_symbolic_sizes_use_xla():
    class Dim:   # stands in for a jax.export symbolic dimension: not an int
        pass
    assert conv_impl.choose((Dim(), 1, 28, 28), (6, 1, 5, 5), (1, 1), [(2, 2), (2, 2)], (1, 1), 1) == "xla"


def test_banded_gradients_match_xlas():
    # the banded lowering is differentiated by JAX too (the back end's own jax.grad path)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((3, 1, 10, 9)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((4, 1, 3, 3)).astype(np.float32))
    pad = [(1, 1), (2, 0)]

    def loss(method):
        return lambda x, w: jnp.sum(jnp.sin(conv_impl.conv_general(x, w, (1, 2), pad, (1, 1), 1, "highest", method=method)))
    got = jax.grad(loss("banded"), argnums=(0, 1))(x, w)
    want = jax.grad(loss("xla"), argnums=(0, 1))(x, w)
    for g, h in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-5, atol=1e-5)
