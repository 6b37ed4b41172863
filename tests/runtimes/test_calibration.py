"""runtimes/calibration.py: min-max, percentile and entropy ranges on values with known distributions."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.runtimes.calibration import as_batches, calibrate, collect_ranges, percentile_range

pytest.importorskip("onnxruntime")


def _identityish():
    # y = relu(x) * 1: the relu output is a value the calibration can read back
    return gf.trace(lambda x: gf.relu(x) * 1.0, gf.TensorSpec(("n", 4)))


def _keys(g):
    from graphforge.passes.quantize import value_key

    return ["x", value_key(g, g.nodes[0].outputs[0])]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 4)).astype(np.float32)
    x[0, 0], x[1, 1] = 40.0, -30.0  # two outliers
    return [x[:2500], x[2500:]]


def test_minmax_sees_the_outliers():
    g = _identityish()
    r = collect_ranges(g, _keys(g), _data(), method="minmax")
    assert r["x"] == (-30.0, 40.0)
    assert r[_keys(g)[1]][0] == 0.0 and r[_keys(g)[1]][1] == 40.0


def test_percentile_clips_the_outliers():
    g = _identityish()
    r = collect_ranges(g, _keys(g), _data(), method="percentile", percentile=99.9)
    lo, hi = r["x"]
    assert -5.0 < lo < -2.5 and 2.5 < hi < 5.0  # N(0, 1): the 0.1 % tails are near ±3.1
    assert percentile_range(np.array([0, 10, 0, 0]), np.arange(5.0), 99.0) == (1.0, 2.0)


def test_entropy_range_is_inside_minmax_and_holds_most_mass():
    g = _identityish()
    r = collect_ranges(g, _keys(g), _data(), method="entropy")
    lo, hi = r["x"]
    assert -10.0 < lo < -1.5 and 1.5 < hi < 10.0  # the outliers are clipped, the bulk is kept


def test_ranges_hold_zero_and_runs_on_jax_too():
    g = gf.trace(lambda x: x + 5.0, gf.TensorSpec(("n", 2)))
    x = np.full((4, 2), 1.0, np.float32)
    from graphforge.passes.quantize import value_key

    key = value_key(g, g.nodes[-1].outputs[0])
    assert collect_ranges(g, [key], [x], backend="jax")[key] == (0.0, 6.0)


def test_calibrate_names_every_root_of_the_plan():
    from graphforge import nn

    g = gf.trace(nn.Linear(4, 3), gf.TensorSpec(("n", 4)), seed=0)
    ranges = calibrate(gf.optimize(g), np.ones((2, 4), np.float32))
    assert list(ranges) == ["x"]  # the linear's output is the graph output: not quantized


def test_bad_arguments_are_config_errors():
    g = _identityish()
    with pytest.raises(gf.ConfigError, match="unknown calibration method"):
        collect_ranges(g, ["x"], _data(), method="mse")
    with pytest.raises(gf.ConfigError, match="percentile"):
        collect_ranges(g, ["x"], _data(), method="percentile", percentile=30)
    with pytest.raises(gf.ConfigError, match="empty"):
        as_batches([])
    with pytest.raises(gf.ConfigError, match="needs calibration"):
        as_batches(None)
    with pytest.raises(gf.ConfigError, match="no value"):
        collect_ranges(g, ["nope"], _data())
