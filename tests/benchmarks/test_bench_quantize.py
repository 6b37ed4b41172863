"""Smoke test of benchmarks/bench_quantize.py through the runner (tiny: one epoch, 256 training rows):
every contender's file is written, run and measured; the quantize targets are checked. No timing
or accuracy bound is asserted here (tiny training, shared box) — only what the numbers rest on."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime.quantization")


def test_quantize_step_runs_tiny(tmp_path, capsys):
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "quantize", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    with open(res) as f:
        data = json.load(f)
    assert data["errors"] == {}
    rows = {r["name"]: r for r in data["quantize"]}
    assert set(rows) == {"float32", "gf-int8-static", "gf-int8-dynamic", "ort-static", "ort-dynamic"}
    for name, r in rows.items():
        assert r["bytes"] > 0 and 0.0 <= r["accuracy"] <= 1.0
        assert set(r["latency"]) == {"1", "64"} and set(r["cpu_latency"]) == {"1", "64"}
        if name != "float32":
            assert r["size_ratio"] > 2.0, name  # int8 weights: far smaller than the float file
    assert rows["gf-int8-static"]["vs"] == "ort-static"
    assert rows["gf-int8-dynamic"]["cpu_ratio_b64"] > 0
    targets = [t["target"] for t in data["targets"]]
    assert any(t.startswith("quantize gf-int8-static: float32 bytes") for t in targets)
    assert "Quantization (LeNet on digits" in capsys.readouterr().out


@pytest.mark.slow
def test_quantize_transformer_example_runs_tiny(tmp_path, capsys):
    """``make bench``'s ``quantize_transformer`` step (``bench_quantize.py --model transformer``): the
    issue's second anchor through the same contenders and targets; tiny training, so only the files and
    their sizes are asserted (the sizes do not depend on training: >= 3.5x already)."""
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "quantize_transformer", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    with open(res) as f:
        data = json.load(f)
    assert data["errors"] == {}
    rows = {r["name"]: r for r in data["quantize_transformer"]}
    assert set(rows) == {"float32", "gf-int8-static", "gf-int8-dynamic", "ort-static", "ort-dynamic",
                         "gf-int8-static-contrib", "gf-int8-dynamic-contrib", "float32-contrib", "ort-dynamic-contrib"}
    assert rows["gf-int8-dynamic-contrib"]["vs"] == "ort-dynamic-contrib"  # the same (contrib) float export
    assert rows["gf-int8-static-contrib"]["vs"] == "ort-static"
    assert all(r["model"] == "transformer" for r in rows.values())
    assert rows["gf-int8-static"]["size_ratio"] >= 3.5 and rows["gf-int8-dynamic"]["size_ratio"] >= 3.5
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["quantize transformer gf-int8-static: float32 bytes / bytes"]["met"]
    assert "Quantization (Transformer example" in capsys.readouterr().out


def test_contrib_contenders_are_not_target_rows():
    from benchmarks.run import _quantize_targets

    base = {"name": "float32", "accuracy": 0.9}
    row = {"size_ratio": 3.6, "accuracy": 0.9, "vs": "ort-dynamic", "latency_ratio_b1": 0.9, "model": "transformer"}
    targets = _quantize_targets([base, dict(row, name="gf-int8-dynamic"), dict(row, name="gf-int8-dynamic-contrib")])
    assert targets and all("contrib" not in t["target"] for t in targets)
    assert any(t["target"] == "quantize transformer gf-int8-dynamic b1: latency / ort-dynamic" for t in targets)
