"""gf.Trainer: loss decreases, metrics, BatchNorm running stats, dropout determinism, custom optax
transformations, bitwise checkpoint resume, wrong-model checkpoints, export, plots."""
from __future__ import annotations

import os

import numpy as np
import pytest

optax = pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402


class Net(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear: exercises buffers and the rng input."""

    def __init__(self, hidden=16, p=0.2):
        super().__init__()
        self.fc1 = nn.Linear(8, hidden)
        self.bn = nn.BatchNorm2d(hidden)
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(hidden, 3)
        self.hidden = hidden

    def forward(self, x):
        h = self.fc1(x).reshape([-1, self.hidden, 1, 1])
        h = self.bn(h).reshape([-1, self.hidden])
        return self.fc2(self.drop(h.relu()))


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)).astype(np.int64)
    return x, y


def make_trainer(optimizer=None, hidden=16, seed=0, p=0.2):
    return gf.Trainer(Net(hidden, p), loss_fn=nn.functional.cross_entropy,
                      optimizer=optimizer or optax.adam(1e-2),
                      inputs=[gf.TensorSpec(("batch", 8))], targets=gf.TensorSpec(("batch",), "int64"),
                      metrics={"accuracy": nn.functional.accuracy}, seed=seed, progress=False)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def trained(data):
    x, y = data
    t = make_trainer()
    before = t.params
    history = t.fit(x, y, epochs=4, batch_size=32, validation_data=(x, y))
    return t, history, before


def test_loss_decreases_and_metrics_recorded(trained):
    t, history, _ = trained
    assert set(history) == {"loss", "accuracy", "examples_per_s", "step_time_ms", "val_loss",
                            "val_accuracy"}  # no "lr": optax.adam(1e-2) does not expose it; no grad_norm unless asked
    assert all(len(v) == 4 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] * 0.9
    assert 0.0 <= history["val_accuracy"][-1] <= 1.0
    ev = t.evaluate(*_data())
    assert ev["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-6)
    assert t.step == 4 * 3


def test_batchnorm_running_stats_update_in_training(trained):
    t, _, before = trained
    assert "bn.running_mean" in t.buffers and "bn.running_var" in t.buffers
    after = t.params
    assert not np.allclose(after["bn.running_mean"], before["bn.running_mean"])
    assert not np.allclose(after["bn.running_var"], before["bn.running_var"])


def test_predict_and_export_graph_agree(trained, data):
    t, _, _ = trained
    x, _ = data
    pred = t.predict(x, batch_size=40)
    assert pred.shape == (len(x), 3)
    g = t.export_graph()
    assert "rng" not in [v.name for v in g.inputs]  # eval mode: no dropout
    ref = gf.run(g, x, backend="reference")[0]
    np.testing.assert_allclose(pred, ref, rtol=1e-4, atol=1e-5)


def test_dropout_is_deterministic_in_seed_and_step(data):
    from graphforge.train.trainer import step_key
    assert step_key(0, 1) != step_key(0, 2) and step_key(0, 1) != step_key(1, 1)
    x, y = data
    a, b = make_trainer(), make_trainer()
    la = [float(a.train_step(x[:32], y[:32])["loss"]) for _ in range(3)]
    lb = [float(b.train_step(x[:32], y[:32])["loss"]) for _ in range(3)]
    assert la == lb
    # dropout is really active: same params and batch, different step key -> different loss
    c = make_trainer()
    c.step = 1
    assert float(c.train_step(x[:32], y[:32])["loss"]) != la[0]


def test_custom_optax_transformation_works_unchanged(data):
    x, y = data

    def sign_sgd(lr):
        def init(params):
            return optax.EmptyState()

        def update(grads, state, params=None):
            import jax
            import jax.numpy as jnp
            return jax.tree_util.tree_map(lambda g: -lr * jnp.sign(g), grads), state
        return optax.GradientTransformation(init, update)

    opt = optax.chain(optax.clip_by_global_norm(1.0), sign_sgd(0.05))
    t = make_trainer(opt)
    h = t.fit(x, y, epochs=3, batch_size=48)
    assert h["loss"][-1] < h["loss"][0]


def test_checkpoint_resume_is_bitwise(tmp_path, data):
    x, y = data
    full = make_trainer(optax.adamw(1e-2))
    full.fit(x, y, epochs=3, batch_size=32)
    first = make_trainer(optax.adamw(1e-2))
    first.fit(x, y, epochs=1, batch_size=32, checkpoint_dir=str(tmp_path))
    assert os.listdir(tmp_path) == ["ckpt-00000003"]
    resumed = make_trainer(optax.adamw(1e-2))
    resumed.fit(x, y, epochs=3, batch_size=32, checkpoint_dir=str(tmp_path), resume=True)
    assert resumed.step_losses == full.step_losses  # exact float equality, every step
    for name, value in full.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000003", "ckpt-00000006", "ckpt-00000009"]
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".tmp")]


def test_wrong_model_checkpoint_is_a_load_error(tmp_path, trained):
    t, _, _ = trained
    t.save_checkpoint(str(tmp_path))
    other = make_trainer(hidden=12)
    with pytest.raises(gf.LoadError, match="does not match"):
        other.load_checkpoint(str(tmp_path))
    with pytest.raises(gf.LoadError, match="no checkpoint"):
        other.load_checkpoint(str(tmp_path / "missing"))


def test_fit_accepts_an_iterable_of_batches(data):
    x, y = data
    t = make_trainer()
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    h = t.fit(batches, epochs=2)
    assert len(h["loss"]) == 2 and t.step == 6


def test_plot_history_writes_a_png(tmp_path, trained):
    _, history, _ = trained
    path = gf.plot_history(history, str(tmp_path / "h.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
