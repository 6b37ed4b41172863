"""gf.profile: a planted heavy layer ranks first on both back ends; table, Chrome trace, PNG."""
from __future__ import annotations

import json

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError


class Planted(nn.Module):
    """Cheap layers around one deliberately heavy block (64 -> 2048 -> 64: ~250x the FLOPs)."""

    def __init__(self):
        super().__init__()
        self.light1 = nn.Linear(64, 64)
        self.heavy = nn.seq().add(nn.Linear(64, 2048)).add_fn(gf.relu).add(nn.Linear(2048, 64))
        self.light2 = nn.Linear(64, 10)

    def forward(self, x):
        h = self.light1(x).relu()
        h = self.heavy(h)  # HEAVY LINE
        return self.light2(h)


X = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)


@pytest.mark.parametrize("backend", ["jax", "onnxruntime"])
def test_heavy_layer_ranks_first(backend, tmp_path):
    report = gf.profile(Planted(), X, backend=backend, repeat=5)
    scopes = report.by_scope(depth=1)
    assert scopes[0][0] == "heavy", scopes
    assert scopes[0][1] > 0.5 * report.measured_us
    # rows carry the user's file:line: the heavy block's line ranks first
    heavy_line = next(i for i, line in enumerate(open(__file__), 1) if "# HEAVY LINE" in line)
    assert report.by_location()[0][0] == f"test_profiling.py:{heavy_line}", report.by_location()
    assert "heavy" in str(report) and report.total_ms > 0
    assert sum(r.bytes for r in report.rows if r.scope.startswith("heavy")) >= 256 * 2048 * 4  # its hidden layer
    trace = json.loads(open(report.chrome_trace(str(tmp_path / "trace.json"))).read())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert events and all({"ts", "dur", "name"} <= set(e) for e in events)
    assert any(e["args"]["scope"].startswith("heavy") for e in events)
    png = report.plot(str(tmp_path / "bars.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_profile_a_graph_with_named_inputs():
    g = gf.trace(Planted(), gf.TensorSpec(("batch", 64)))
    report = gf.profile(g, {"x": X[:8]}, backend="jax", repeat=2, warmup=1)
    assert {r.scope.split(".")[0] for r in report.rows} >= {"light1", "heavy", "light2"}


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError):
        gf.profile(Planted(), X, backend="reference")
