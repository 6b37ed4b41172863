"""The mutated-ONNX campaign (issue 20): a bounded CI sample, and proof that its oracle can fail."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from fuzz import onnx_mutate

HERE = os.path.dirname(os.path.abspath(__file__))


def test_ci_sample_of_mutated_onnx_files_under_a_memory_limit():
    """300 mutated files through gf.from_onnx in a child capped at 4 GiB: each ends in a typed error
    or a graph equal to onnxruntime; no crash, hang, MemoryError or mismatch."""
    proc = subprocess.run([sys.executable, os.path.join(HERE, "onnx_mutate.py"), "--cases", "300", "--seed", "0",
                           "--memory-limit", "4G", "--json"], capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    assert not result["findings"], json.dumps(result["findings"][:10], indent=1)
    counts = result["counts"]
    assert counts["typed"] > 50 and counts["correct"] > 10, counts
    assert set(result["by_mutator"]) == set(onnx_mutate.MUTATORS), result["by_mutator"]
    assert proc.returncode == 0


def test_the_oracle_reports_crashes_and_mismatches(monkeypatch):
    import graphforge as gf

    data = onnx_mutate.seed_models(1, 0)[0]
    rng = np.random.default_rng(0)
    assert onnx_mutate.check_bytes(data, rng)[0] == "correct"
    real = gf.run
    monkeypatch.setattr(gf, "run", lambda g, ins, backend: [np.asarray(o) + 1 for o in real(g, ins, backend=backend)])
    assert onnx_mutate.check_bytes(data, rng)[0] == "mismatch"
    monkeypatch.setattr(gf, "from_onnx", lambda data: {}["missing"])
    assert onnx_mutate.check_bytes(data, rng) == ("crash", "KeyError: 'missing'")
