"""MultiTrainer as a GAN author uses it: each task updates its own model only, checkpoints cover every
model and optimizer (a resumed run is bitwise equal), trained weights return to the modules."""
from __future__ import annotations

import numpy as np
import pytest

optax = pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402
from graphforge.train import MultiTrainer, Task  # noqa: E402

Z, X = gf.TensorSpec((8, 2), name="z"), gf.TensorSpec((8, 2), name="real")


def d_loss(m, real, z):
    return gf.softplus(-m.discriminator(real)).mean() + gf.softplus(m.discriminator(m.generator(z))).mean()


def g_loss(m, z):
    return gf.softplus(-m.discriminator(m.generator(z))).mean()


def _gan(seed=0):
    G, D = nn.seq().add(nn.Linear(2, 4)).add_fn(gf.tanh).add(nn.Linear(4, 2)), nn.seq().add(nn.Linear(2, 1))
    mt = MultiTrainer({"generator": G, "discriminator": D},
                      {"discriminator": Task(d_loss, [X, Z], optax.adam(1e-2)),
                       "generator": Task(g_loss, [Z], "sgd")}, seed=seed)
    return mt, G, D


def _batches(n):
    rng = np.random.default_rng(0)
    return [(rng.normal(2, 0.5, (8, 2)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32))
            for _ in range(n)]


def test_each_task_updates_only_its_model():
    mt, _, _ = _gan()
    real, z = _batches(1)[0]
    for task, inputs in (("discriminator", (real, z)), ("generator", (z,))):
        before = mt.state_dict()
        assert np.isfinite(float(mt.step(task, *inputs)))
        changed = {k for k, v in mt.state_dict().items() if not np.array_equal(v, before[k])}
        assert changed and all(k.startswith(task + ".") for k in changed), (task, changed)
    assert mt.steps == {"discriminator": 1, "generator": 1}


def test_checkpoints_cover_both_models_and_optimizers(tmp_path):
    data = _batches(4)
    full, _, _ = _gan()
    for real, z in data:
        full.step("discriminator", real, z)
        full.step("generator", z)
    half, _, _ = _gan()
    for real, z in data[:2]:
        half.step("discriminator", real, z)
        half.step("generator", z)
    half.save_checkpoint(str(tmp_path / "ckpt"))
    resumed, G, _ = _gan()
    resumed.load_checkpoint(str(tmp_path / "ckpt"))
    assert resumed.steps == {"discriminator": 2, "generator": 2}
    for real, z in data[2:]:
        resumed.step("discriminator", real, z)
        resumed.step("generator", z)
    for k, v in full.state_dict().items():
        assert resumed.state_dict()[k].tobytes() == v.tobytes(), k  # adam moments restored too
    other = MultiTrainer({"generator": nn.seq().add(nn.Linear(2, 2)), "discriminator": nn.seq().add(nn.Linear(2, 1))},
                         {"discriminator": Task(d_loss, [X, Z], "adam")})
    with pytest.raises(gf.LoadError, match="not one of this MultiTrainer's models"):
        other.load_checkpoint(str(tmp_path / "ckpt"))


def test_write_back_puts_the_trained_weights_into_the_modules():
    mt, G, _ = _gan()
    real, z = _batches(1)[0]
    mt.step("generator", z)
    mt.write_back()
    g = gf.trace(G, gf.TensorSpec(("batch", 2)))
    sd = mt.state_dict()
    for name, value in g.params.items():
        np.testing.assert_array_equal(value, sd["generator." + name])


def test_wrong_tasks_and_inputs_are_typed_errors():
    mt, G, D = _gan()
    with pytest.raises(gf.InputError, match="no task 'critic'"):
        mt.step("critic", np.zeros((8, 2), np.float32))
    with pytest.raises(gf.InputError):
        mt.step("generator", np.zeros((3, 5), np.float32))
    with pytest.raises(gf.ConfigError, match="trains model 'critic'"):
        MultiTrainer({"generator": G, "discriminator": D}, {"x": Task(g_loss, [Z], "sgd", model="critic")})
    with pytest.raises(gf.ShapeError, match="Task loss returned"):
        MultiTrainer({"generator": G, "discriminator": D}, {"generator": Task(lambda m, z: m.generator(z), [Z], "sgd")})
