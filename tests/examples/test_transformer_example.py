"""examples/transformer.py runs end to end in quick mode: fused attention in the IR and in ONNX."""
from __future__ import annotations

import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


def test_transformer_example_quick(capsys, tmp_path):
    assert load_example("transformer").main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "attention 2, softmax 0" in out, out
    assert "2 attention node(s)" in out, out
    assert (tmp_path / "row_transformer.onnx").exists()
    acc = float(out.split("test accuracy ")[1].split(" %")[0])
    assert acc > 20.0, out  # 2 epochs: well above chance (10 %), nowhere near trained
