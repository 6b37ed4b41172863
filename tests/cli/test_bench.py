"""``graphforge bench``: a latency table (first call, median, p90) per back end, and its errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from cli_helpers import SMALL_MODEL, assert_clean_failure, write


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in ("jax", "onnxruntime", "reference"):
            rows[cells[0]] = cells[1:]
    return rows


def test_bench_prints_a_latency_table_per_backend(tmp_path, capsys):
    pytest.importorskip("jax")
    from graphforge.cli import main

    backends = "reference,jax,onnxruntime"
    small = write(tmp_path, "small.py", SMALL_MODEL)
    assert main(["bench", small, "--batch", "16", "--backends", backends, "--repeat", "5", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "inputs x: (16, 6)" in out and "5 timed calls" in out
    assert re.search(r"backend\s+first call ms\s+median ms\s+p90 ms\s+min ms\s+max \|diff\| vs reference", out)
    rows = _rows(out)
    assert set(rows) == set(backends.split(","))
    for name, (first, median, p90, low, diff) in rows.items():
        assert 0 < float(low) <= float(median) <= float(p90), (name, rows[name])
        assert float(first) > 0
        assert float(diff) <= 1e-5, (name, diff)  # every back end computes the same outputs
    assert float(rows["reference"][4]) == 0.0


def test_bench_reports_a_failing_backend_in_its_row(tmp_path, capsys, monkeypatch):
    from graphforge import runtimes
    from graphforge.cli import main

    monkeypatch.setitem(runtimes.BACKENDS, "broken", "graphforge.no_such_backend_module")
    small = write(tmp_path, "small.py", SMALL_MODEL)
    assert main(["bench", small, "--backends", "reference,broken", "--repeat", "2"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^broken\s+failed: not available \(No module named", out, re.M), out
    assert float(_rows(out)["reference"][1]) > 0  # the other back ends still get their numbers


def test_bench_bad_arguments(tmp_path, capsys):
    from graphforge.cli import main

    small = write(tmp_path, "small.py", SMALL_MODEL)
    assert main(["bench", small, "--dim", "seq"]) == 2
    assert "expected NAME=SIZE" in capsys.readouterr().err
    static = write(tmp_path, "static.py", "import graphforge as gf\nmodel = gf.relu\ninputs = gf.TensorSpec((2, 3))\n")
    assert main(["bench", static, "--batch", "4", "--backends", "reference"]) == 2
    assert "no symbolic batch dim" in capsys.readouterr().err


def test_unknown_backend_via_the_console_script(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "graphforge")
    if not os.path.exists(script):
        pytest.skip("the graphforge console script is not installed next to this interpreter")
    small = write(tmp_path, "small.py", SMALL_MODEL)
    proc = subprocess.run([script, "bench", small, "--backends", "reference,tensorrt"], capture_output=True,
                          text=True, timeout=120)
    assert_clean_failure(proc, "unknown backend(s) tensorrt", "onnxruntime", code=2)
