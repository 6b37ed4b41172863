"""``make bench``'s ``soak`` step (issue 18): benchmarks/run.py runs bench_serve.py's bounded soak —
a real server on a free loopback port, stopped at the end — and turns it into a target row. Tiny:
300 requests at 4 clients; what is asserted is that every answer was checked and right. Slow tier
(a server start and a 300-request soak: ~1 min on the loaded 2-core box); the soak machinery itself
has a fast test in tests/serve/test_serve_bench.py."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("onnxruntime")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")


@pytest.mark.slow
def test_soak_step_runs_tiny(tmp_path):
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "soak", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    with open(res) as f:
        data = json.load(f)
    assert data["errors"] == {}
    soak = data["soak"]
    assert soak["requests"] >= 1 and soak["wrong"] == 0 and soak["errors"] == 0
    (row,) = [t for t in data["targets"] if t["target"].startswith("serve soak")]
    assert row["value"] == 0
