"""nn.init: one convention (every function is a factory), PyTorch's statistics, typed errors naming
the argument or the parameter; Dropout's probability is a config error."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


class One(nn.Module):
    def __init__(self, shape, init=None):
        super().__init__()
        self.w = nn.Parameter(shape, init=init)

    def forward(self, x):
        return x * self.w


def _draw(init, shape=(64, 32)):
    return gf.trace(One(shape, init), gf.TensorSpec(shape), seed=3).params["w"]


def test_every_public_function_is_a_documented_factory():
    for name in nn.init.__all__:
        fn = getattr(nn.init, name)
        assert fn.__doc__, f"nn.init.{name} has no docstring"
        if name in ("Initializer", "fans", "resolve"):
            continue
        assert getattr(fn, "_gf_init_factory", False), name
        args = {"constant": (0.5,), "uniform_fan_in": (4,)}.get(name, ())
        init = fn(*args)
        assert isinstance(init, nn.init.Initializer) and repr(init).startswith(f"nn.init.{name}(")
        out = init((3, 4), np.random.default_rng(0), "float32")
        assert out.shape == (3, 4) and out.dtype == np.float32


def test_statistics_follow_pytorch():
    w = _draw(nn.init.kaiming_uniform(), (256, 100))
    assert np.abs(w).max() <= 1 / math.sqrt(100) and np.abs(w).max() > 0.09
    assert abs(_draw(nn.init.normal(0.5, 2.0), (200, 200)).std() - 0.5) < 0.01
    assert np.all(_draw(nn.init.constant(1.5)) == 1.5)
    x = _draw(nn.init.xavier_uniform(), (30, 50))
    assert np.abs(x).max() <= math.sqrt(6 / 80)
    t = _draw(nn.init.trunc_normal(1.0, a=-0.5, b=0.5))
    assert t.min() >= -0.5 and t.max() <= 0.5
    assert abs(_draw(nn.init.kaiming_normal(), (400, 200)).std() - math.sqrt(2 / 200)) < 0.003


def test_the_default_init_is_normal_002_and_draws_per_name():
    w = _draw(None, (200, 100))
    assert abs(w.std() - 0.02) < 0.001
    np.testing.assert_array_equal(w, _draw(nn.init.normal(0.02), (200, 100)))


def test_an_uncalled_factory_with_defaults_means_its_defaults():
    np.testing.assert_array_equal(_draw(nn.init.ones), np.ones((64, 32), np.float32))
    np.testing.assert_array_equal(_draw(nn.init.kaiming_uniform), _draw(nn.init.kaiming_uniform()))


@pytest.mark.parametrize("make, match", [
    (lambda: nn.init.normal(-1.0), "nn.init.normal: std must be >= 0, got -1.0"),
    (lambda: nn.init.normal("wide"), "nn.init.normal: std must be a number"),
    (lambda: nn.init.uniform(2, 1), "low must be <= high"),
    (lambda: nn.init.xavier_uniform(gain=-2), "gain must be >= 0"),
    (lambda: nn.init.kaiming_uniform(fan_in=0), "fan_in must be > 0"),
    (lambda: nn.init.normal(0.1, 0.0, 3.0), "nn.init.normal: too many positional arguments"),
    (lambda: nn.Parameter((2,), init=nn.init.constant), "needs the argument 'value'"),
    (lambda: nn.Parameter((2,), init="zeros"), "init must be an initialiser"),
    (lambda: nn.Dropout(1.5), r"nn.Dropout: p .* must be in \[0, 1\], got 1.5"),
    (lambda: nn.Dropout("half"), "nn.Dropout"),
])
def test_wrong_calls_are_config_errors(make, match):
    with pytest.raises(gf.ConfigError, match=match) as err:
        make()
    assert isinstance(err.value, ValueError)  # a ValueError, as Python users expect
    assert not isinstance(err.value, gf.ShapeError)


def test_a_failing_custom_initialiser_names_the_parameter():
    def broken(shape, rng, dtype):
        raise RuntimeError("boom")

    with pytest.raises(gf.ConfigError, match=r"parameter 'w' \(2, 3\) failed: RuntimeError: boom"):
        gf.trace(One((2, 3), broken), gf.TensorSpec((2, 3)))
