"""fit(callbacks=[...]) as a Keras user drives it: LR schedules logged per step, early stopping (with
best weights restored), keep-best checkpoints, CSV and TensorBoard logs, grad norm and throughput
in the history, custom callbacks, and no per-step hook for per-epoch callbacks."""
from __future__ import annotations

import csv
import os
import struct

import numpy as np
import pytest

optax = pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402
from graphforge.train import callbacks as cbs  # noqa: E402

X_SPEC, Y_SPEC = gf.TensorSpec(("batch", 6)), gf.TensorSpec(("batch",), "int64")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def _trainer(make_mlp, optimizer="sgd", **kw):
    return gf.Trainer(make_mlp(), nn.functional.cross_entropy, optimizer, inputs=X_SPEC, targets=Y_SPEC,
                      metrics={"accuracy": nn.functional.accuracy}, progress=False, **kw)


def test_history_has_grad_norm_throughput_and_the_scheduled_lr_per_step(make_mlp, data):
    x, y = data
    schedule = optax.linear_schedule(0.1, 0.0, transition_steps=8)
    t = _trainer(make_mlp, "adam", learning_rate=schedule, grad_norm=True)
    h = t.fit(x, y, epochs=2, batch_size=16)
    np.testing.assert_allclose(t.step_history["lr"], [float(schedule(i)) for i in range(8)], rtol=1e-6)
    assert h["lr"] == pytest.approx([float(schedule(3)), float(schedule(7))])
    assert len(t.step_history["grad_norm"]) == 8 and all(g > 0 for g in t.step_history["grad_norm"])
    assert h["grad_norm"][0] == pytest.approx(np.mean(t.step_history["grad_norm"][:4]), rel=1e-5)
    assert all(v > 0 for v in h["examples_per_s"] + h["step_time_ms"])
    assert t.step_losses == t.step_history["loss"]


def test_grad_norm_is_off_unless_asked(make_mlp, data):
    x, y = data
    t = _trainer(make_mlp, "sgd", learning_rate=0.05)
    out = t.train_step(x[:16], y[:16])
    h = t.fit(x, y, epochs=1, batch_size=16)
    assert "grad_norm" not in out and "grad_norm" not in h and "grad_norm" not in t.step_history


def test_grad_norm_is_the_global_l2_norm_of_the_gradients(make_mlp, data):
    x, y = data
    t = _trainer(make_mlp, optax.sgd(0.0), grad_norm=True)  # lr 0: the weights stay, so the gradient can be recomputed
    out = t.train_step(x[:16], y[:16])
    g = gf.grad(t.train_graph, wrt="params")
    grads = gf.run(g, {"x": x[:16], "y": y[:16]}, backend="reference")[1:]
    assert float(out["grad_norm"]) == pytest.approx(float(np.sqrt(sum((a.astype(np.float64) ** 2).sum()
                                                                       for a in grads))), rel=1e-4)


def test_any_optax_optimizer_built_with_inject_hyperparams_logs_its_lr(make_mlp, data):
    x, y = data
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.exponential_decay(0.1, 1, 0.5))
    t = _trainer(make_mlp, opt)
    t.fit(x, y, epochs=1, batch_size=32)
    assert t.step_history["lr"] == pytest.approx([0.1, 0.05])
    with pytest.raises(gf.ConfigError, match="learning_rate= goes with an optimizer name"):
        _trainer(make_mlp, optax.sgd(0.1), learning_rate=0.1)


def test_early_stopping_stops_and_restores_the_best_weights(make_mlp, data):
    x, y = data
    seen = []

    class Spy(cbs.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append((epoch, logs["val_loss"], trainer.state_dict()))

    stop = cbs.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    t = _trainer(make_mlp, optax.sgd(3.0))  # a step size this large makes val_loss bounce
    t.fit(x, y, epochs=30, batch_size=16, validation_data=(x, y), callbacks=[Spy(), stop])
    assert stop.stopped_epoch is not None and t.epoch == stop.stopped_epoch + 1 < 30
    losses = [v for _, v, _ in seen]
    best = int(np.argmin(losses))
    assert stop.best == losses[best] and all(v >= stop.best for v in losses[best + 1:])
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(v, seen[best][2][k])  # restored, and written back to the module too
    with pytest.raises(gf.ConfigError, match="(?s)EarlyStopping monitors 'val_acc'.*validation_data"):
        _trainer(make_mlp).fit(x, y, epochs=1, batch_size=32, callbacks=[cbs.EarlyStopping("val_acc")])


def test_best_checkpoint_keeps_only_the_best_epoch(tmp_path, make_mlp, data):
    x, y = data
    best = cbs.BestCheckpoint(str(tmp_path / "best"), monitor="accuracy")
    t = _trainer(make_mlp, optax.sgd(0.5))
    h = t.fit(x, y, epochs=4, batch_size=16, callbacks=[best])
    assert best.best == max(h["accuracy"]) and best.best_epoch == int(np.argmax(h["accuracy"]))
    assert len(os.listdir(tmp_path / "best")) == 1
    back = _trainer(make_mlp, optax.sgd(0.5))
    back.load_checkpoint(str(tmp_path / "best"))
    assert back.epoch == best.best_epoch + 1


def test_csv_logger_writes_the_whole_history_each_epoch(tmp_path, make_mlp, data):
    x, y = data
    path = tmp_path / "h.csv"
    t = _trainer(make_mlp)
    t.fit(x, y, epochs=2, batch_size=32, callbacks=[cbs.CSVLogger(str(path))])
    t.fit(x, y, epochs=1, batch_size=32, validation_data=(x, y), callbacks=[cbs.CSVLogger(str(path))])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [float(r["loss"]) for r in rows] == pytest.approx(t.history["loss"])
    assert rows[0]["val_loss"] == "" and float(rows[2]["val_loss"]) == pytest.approx(t.history["val_loss"][0])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def _events(log_dir):
    """(tag, step, value) of every scalar in the TFRecord event files (no TensorFlow needed)."""
    from tensorboardX.proto import event_pb2

    out = []
    for name in sorted(os.listdir(log_dir)):
        data = open(os.path.join(log_dir, name), "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            ev = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in ev.summary.value:
                out.append((v.tag, ev.step, v.simple_value))
    return out


def test_tensorboard_event_files_hold_epoch_and_step_scalars(tmp_path, make_mlp, data):
    pytest.importorskip("tensorboardX")
    x, y = data
    t = _trainer(make_mlp, "sgd", learning_rate=0.05, grad_norm=True)
    t.fit(x, y, epochs=2, batch_size=16, callbacks=[cbs.TensorBoard(str(tmp_path / "tb"), update_freq=2)])
    ev = _events(tmp_path / "tb")
    epoch_loss = [(s, v) for tag, s, v in ev if tag == "epoch/loss"]
    assert epoch_loss == [(1, pytest.approx(t.history["loss"][0])), (2, pytest.approx(t.history["loss"][1]))]
    step_lr = [(s, v) for tag, s, v in ev if tag == "step/lr"]
    assert step_lr == [(2, pytest.approx(0.05)), (4, pytest.approx(0.05)), (6, pytest.approx(0.05)),
                       (8, pytest.approx(0.05))]
    assert {"epoch/grad_norm", "epoch/examples_per_s", "step/loss", "step/grad_norm"} <= {e[0] for e in ev}


def test_per_epoch_callbacks_add_no_step_hook_and_custom_ones_can_stop(make_mlp, data):
    x, y = data
    t = _trainer(make_mlp)
    assert not cbs.CallbackList([cbs.CSVLogger("u.csv"), cbs.EarlyStopping(), cbs.BestCheckpoint("b")], t).per_step
    if cbs._tensorboardx_available():
        assert not cbs.CallbackList([cbs.TensorBoard("tb")], t).per_step  # update_freq="epoch"
        assert cbs.CallbackList([cbs.TensorBoard("tb", update_freq=5)], t).per_step
    steps = []
    stopper = cbs.LambdaCallback(on_step_end=lambda tr, step, logs: (steps.append(float(logs["loss"])),
                                                                     setattr(tr, "stop_training", step >= 3)))
    t.fit(x, y, epochs=5, batch_size=16, callbacks=[stopper])
    assert t.step == 3 and len(steps) == 3 and t.epoch == 1  # stopped mid-epoch; that epoch is recorded
    with pytest.raises(gf.ConfigError, match="Callback instances, got function"):
        t.fit(x, y, callbacks=[lambda *a: None])
