"""gf.Trainer as a Keras user drives it: fit twice, forgotten or mismatched targets, Python lists,
empty predictions, progress in a log file (no tty), plotting without touching pyplot's backend."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

optax = pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402


def _trainer(make_mlp, progress=False):
    model = make_mlp(4, 8, 3, style="seq")
    return gf.Trainer(model, loss_fn=nn.functional.cross_entropy, optimizer=optax.sgd(0.1),
                      inputs=gf.TensorSpec(("batch", 4)), targets=gf.TensorSpec(("batch",), "int64"),
                      seed=0, progress=progress)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def trainer(make_mlp):
    return _trainer(make_mlp)


def test_a_second_fit_trains_that_many_more_epochs(data, make_mlp):
    x, y = data
    t = _trainer(make_mlp)
    t.fit(x, y, epochs=2, batch_size=20)
    assert (t.epoch, t.step) == (2, 4)
    h = t.fit(x, y, epochs=1, batch_size=20)
    assert (t.epoch, t.step) == (3, 6)
    assert len(h["loss"]) == 3  # the trainer's history keeps every epoch


def test_fit_without_targets_is_an_input_error(trainer, data):
    x, _ = data
    with pytest.raises(gf.InputError, match="targets"):
        trainer.fit(x, epochs=1)


def test_fit_with_mismatched_lengths_is_an_input_error(trainer, data):
    x, y = data
    with pytest.raises(gf.InputError, match="40.*20|20.*40"):
        trainer.fit(x, y[:20], epochs=1)


def test_fit_and_predict_accept_python_lists_for_one_input(data, make_mlp):
    x, y = data
    t = _trainer(make_mlp)
    t.fit(x.tolist(), y.tolist(), epochs=1, batch_size=20)
    assert t.step == 2
    assert t.predict(x[:3].tolist()).shape == (3, 3)


def test_predict_on_no_rows_gives_empty_outputs(trainer, data):
    x, _ = data
    out = trainer.predict(x[:0])
    assert out.shape == (0, 3) and out.dtype == np.float32


def test_progress_bar_stays_out_of_a_log_file(monkeypatch, data, make_mlp):
    x, y = data
    err, out = io.StringIO(), io.StringIO()   # StringIO.isatty() is False, like a redirected stream
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    _trainer(make_mlp, progress=True).fit(x, y, epochs=1, batch_size=10)
    assert "\r" not in err.getvalue() and "it/s" not in err.getvalue()
    assert "epoch 1/1: loss=" in out.getvalue()  # the per-epoch line is still printed


def test_plot_history_leaves_the_matplotlib_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    path = gf.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, tmp_path / "h.png")
    assert matplotlib.get_backend() == before
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]  # no temp file left behind
