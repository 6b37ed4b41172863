"""examples/char_lm.py runs end to end in quick mode: both models train, write a loss plot, and
their in-graph generators export to ONNX files that onnxruntime runs to JAX's tokens."""
from __future__ import annotations

import numpy as np
import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")


def test_char_lm_example_quick(capsys, tmp_path):
    assert load_example("char_lm").main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("lstm", "transformer"):
        assert f"{name}: generator exported to" in out and "onnxruntime tokens equal JAX's" in out, out
        assert f"{name} sampled (temperature 0.8" in out and "DIFFER" not in out, out
        assert (tmp_path / f"{name}_generate.onnx").exists() and (tmp_path / f"{name}_loss.png").exists()
        bpc = float(out.split(f"{name}: ")[1].split("validation ")[1].split(" bits")[0])
        assert 0 < bpc < 7.5, out  # 6 steps: barely trained, but no worse than uniform over 128 (7 bits) + slack
    assert (tmp_path / "stdlib_train_quick.u8").stat().st_size == 1 << 16
    unigram = float(out.split("unigram baseline")[1].split(": ")[1].split(" bits")[0])
    assert 3.0 < unigram < 7.0, out  # character frequencies of source text: well below uniform's 7 bits
    assert "lstm times: train" in out and "transformer times: train" in out, out


def test_unigram_baseline_is_the_cross_entropy_of_smoothed_frequencies():
    mod = load_example("char_lm")
    train = np.array([97] * 6 + [98] * 2, np.uint8)  # counts + 1: a 7, b 3, the other 126 bytes 1 each
    bits = mod.unigram_bits(train, np.array([[97, 98], [99, 97]]))
    total = 8 + 128
    want = -np.mean(np.log2([7 / total, 3 / total, 1 / total, 7 / total]))
    assert bits == pytest.approx(want, rel=1e-12)


def test_tokenising_is_ascii_with_question_marks():
    mod = load_example("char_lm")
    tokens = mod.encode("aé\n")
    assert tokens.tolist() == [97, 63, 63, 10]
    assert mod.decode(mod.encode("def f():")) == "def f():"
