"""examples/mlp.py runs end to end in quick mode."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from example_helpers import ROOT

pytest.importorskip("jax")
pytest.importorskip("sklearn")


def test_mlp_example_quick():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mlp.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "layer1" in out and "Trainable params" in out
    assert "test accuracy" in out
    acc = float(out.split("test accuracy ")[1].split(" %")[0])
    assert acc > 50.0, out[-1000:]
