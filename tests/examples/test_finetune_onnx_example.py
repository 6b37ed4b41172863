"""examples/finetune_onnx.py runs end to end in quick mode (import → Trainer → export → onnxruntime)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_finetune_onnx_example_quick(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "finetune_onnx.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "imported" in out and "argmax agreement with JAX 1.000" in out
    after = float(out.split("before fine-tuning -> ")[1].split()[0])
    assert after > 0.5, out
    assert (tmp_path / "digits_mlp_finetuned.onnx").exists()
