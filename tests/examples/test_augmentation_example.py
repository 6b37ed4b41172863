"""examples/augmentation.py: the shift is exact, the pipeline re-iterates, and quick mode runs."""
from __future__ import annotations

import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


def test_shift_moves_pixels_and_fills_background():
    import numpy as np

    shift = load_example("augmentation").shift
    a = np.arange(2 * 64, dtype=np.float32).reshape(2, 8, 8) + 1
    s = shift(a, np.array([1, -1]), np.array([0, 1]))
    np.testing.assert_array_equal(s[0, 1:], a[0, :-1])          # down one row
    assert not s[0, 0].any()
    np.testing.assert_array_equal(s[1, :-1, 1:], a[1, 1:, :-1])  # up one row, right one column
    assert not s[1, -1].any() and not s[1, :, 0].any()
    np.testing.assert_array_equal(shift(a, np.zeros(2, int), np.zeros(2, int)), a)


def test_pipeline_is_reiterable_and_reshuffles():
    import numpy as np

    aug = load_example("augmentation")
    x = np.random.default_rng(0).uniform(0, 1, (100, 8, 8)).astype(np.float32)
    y = np.arange(100)
    pipe = aug.Augmented(x, y, batch_size=32)
    first, second = list(pipe), list(pipe)
    assert len(first) == len(pipe) == 4 and first[0][0].shape == (32, 64) and first[-1][0].shape == (4, 64)
    assert sorted(np.concatenate([b[1] for b in first]).tolist()) == list(range(100))
    assert not np.array_equal(first[0][1], second[0][1])
    assert all(b[0].dtype == np.float32 and b[0].min() >= 0 and b[0].max() <= 1 for b in first)


def test_augmentation_example_quick(capsys):
    assert load_example("augmentation").main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "plain    :" in out and "augmented:" in out and "shifted by one pixel" in out, out
