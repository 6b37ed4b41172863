"""examples/cnn.py runs end to end in quick mode: Conv+BN folded, ONNX agrees with JAX."""
from __future__ import annotations

import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


def test_cnn_example_quick(capsys, tmp_path):
    assert load_example("cnn").main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch_norm 2 → 0" in out, out
    assert (tmp_path / "lenet.onnx").exists()
    acc = float(out.split("test accuracy ")[1].split(" %")[0])
    assert acc > 50.0, out
    assert "argmax agreement 100.0 %" in out
