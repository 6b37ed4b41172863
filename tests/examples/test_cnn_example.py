"""examples/cnn.py runs end to end in quick mode: Conv+BN folded, ONNX agrees with JAX."""
from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name):
    """Import examples/<name>.py in-process (sharing the JAX import and compile caches across tests)."""
    spec = importlib.util.spec_from_file_location(f"gf_example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_example_quick(capsys, tmp_path):
    assert _load("cnn").main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch_norm 2 → 0" in out, out
    assert (tmp_path / "lenet.onnx").exists()
    acc = float(out.split("test accuracy ")[1].split(" %")[0])
    assert acc > 50.0, out
    assert "argmax agreement 100.0 %" in out
