"""The life of a model around gf.Trainer, as a user meets it: generators and epochs, trained weights
back in the module, a Graph (imported ONNX) as the model, gf.load_params into a trainer, optimizer
names, a non-scalar loss, and the public names."""
from __future__ import annotations

import numpy as np
import pytest

optax = pytest.importorskip("optax")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402

X_SPEC, Y_SPEC = gf.TensorSpec(("batch", 6)), gf.TensorSpec(("batch",), "int64")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _trainer(model, optimizer=None, **kw):
    return gf.Trainer(model, nn.functional.cross_entropy, optimizer or optax.sgd(0.1), inputs=X_SPEC,
                      targets=Y_SPEC, progress=False, **kw)


def _batches(x, y, n=16):
    for i in range(0, len(x), n):
        yield x[i:i + n], y[i:i + n]


def test_a_one_shot_generator_for_several_epochs_is_refused_up_front(mlp_module, data):
    t = _trainer(mlp_module)
    with pytest.raises(gf.InputError, match=r"fit\(epochs=3\) got a one-shot iterator \(generator\)") as err:
        t.fit(_batches(*data), epochs=3)
    assert "steps_per_epoch" in err.value.hint and t.step == 0 and t.epoch == 0
    t.fit(_batches(*data), epochs=1)  # one epoch of a generator is fine
    assert (t.step, t.epoch) == (3, 1)


def test_steps_per_epoch_splits_one_stream_into_epochs(mlp_module, data):
    x, y = data
    t = _trainer(mlp_module)
    h = t.fit(_batches(np.concatenate([x] * 2), np.concatenate([y] * 2), 8), epochs=3, steps_per_epoch=4)
    assert (t.step, t.epoch, len(h["loss"])) == (12, 3, 3)
    with pytest.raises(gf.InputError, match="ran out after 2 of steps_per_epoch=4 batches in epoch 5"):
        t.fit(_batches(x, y, 8), epochs=2, steps_per_epoch=4)  # 6 batches cannot fill 2 epochs of 4
    t2 = _trainer(mlp_module)
    t2.fit([(x[:8], y[:8]), (x[8:16], y[8:16])], epochs=2, steps_per_epoch=3)  # a list restarts
    assert t2.step == 6
    with pytest.raises(gf.ConfigError, match="steps_per_epoch must be a positive int"):
        t2.fit(_batches(x, y), steps_per_epoch=0)


def test_an_epoch_without_batches_is_an_error_not_a_silent_epoch(mlp_module):
    t = _trainer(mlp_module)
    with pytest.raises(gf.InputError, match="epoch 1 got no batches"):
        t.fit([], epochs=1)
    assert t.epoch == 0 and "loss" not in (getattr(t, "history", None) or {})


def test_fit_writes_the_trained_weights_back_into_the_module(mlp_module, data):
    x, y = data
    before = mlp_module.state_dict()
    t = _trainer(mlp_module)
    t.fit(x, y, epochs=2, batch_size=16)
    after = mlp_module.state_dict()
    assert not np.allclose(after["layer1.weight"], before["layer1.weight"])
    for name, value in t.state_dict().items():
        np.testing.assert_array_equal(after[name], value)
    # the one obvious way to deploy: trace the module again; it predicts what the trainer predicts
    g = gf.trace(mlp_module, X_SPEC)
    np.testing.assert_allclose(gf.run(g, {"x": x[:5]})[0], t.predict(x[:5]), rtol=1e-5, atol=1e-6)
    # and the state dict moves to a fresh copy of the model
    fresh = type(mlp_module)()
    fresh.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(fresh.state_dict()["layer2.bias"], after["layer2.bias"])


def test_a_graph_imported_from_onnx_trains_like_a_module(tmp_path, mlp_graph, data):
    x, y = data
    path = str(tmp_path / "mlp.onnx")
    gf.save_onnx(mlp_graph, path)
    graph = gf.from_onnx(path)
    start = {k: np.array(v) for k, v in graph.params.items()}
    t = _trainer(graph)
    first = t.evaluate(x, y)["loss"]
    t.fit(x, y, epochs=3, batch_size=16)
    assert t.evaluate(x, y)["loss"] < first
    moved = [k for k in graph.trainable_names if not np.array_equal(graph.params[k], start[k])]
    assert moved, "the trained weights did not reach the imported graph"
    np.testing.assert_allclose(gf.run(graph, {"x": x[:4]})[0], t.predict(x[:4]), rtol=1e-5, atol=1e-6)


def test_gf_load_params_into_a_trainers_graph_reaches_the_trainer(tmp_path, mlp_module, data):
    x, _ = data
    t = _trainer(mlp_module)
    other = {k: v * 0.5 for k, v in t.state_dict().items()}
    path = str(tmp_path / "w.safetensors")
    gf.save_params(other, path)
    gf.load_params(path, t.graph)
    np.testing.assert_array_equal(t.state_dict()["layer1.weight"], other["layer1.weight"])
    np.testing.assert_allclose(t.predict(x[:3]), gf.run(t.graph, {"x": x[:3]})[0], rtol=1e-5, atol=1e-6)
    t2 = _trainer(type(mlp_module)())
    gf.load_params(path, t2)  # the trainer itself is accepted too
    np.testing.assert_array_equal(t2.state_dict()["layer2.bias"], other["layer2.bias"])
    with pytest.raises(gf.StateDictError, match="layer1.weight: shape"):
        t2.load_state_dict({**other, "layer1.weight": np.zeros((2, 2), np.float32)})


def test_optimizer_names_and_wrong_optimizers(mlp_module, data):
    x, y = data
    t = _trainer(mlp_module, optimizer="adam")
    t.fit(x, y, epochs=1, batch_size=16)
    assert t.step == 3
    with pytest.raises(gf.ConfigError, match="unknown optimizer name 'adamm' \\(did you mean 'adam'") as err:
        _trainer(mlp_module, optimizer="adamm")
    assert "optax.adam" in err.value.hint
    with pytest.raises(gf.ConfigError, match="optax GradientTransformation"):
        _trainer(mlp_module, optimizer=0.01)


def test_a_non_scalar_loss_is_explained_in_trainer_terms(mlp_module):
    def per_example(logits, y):
        return gf.mean(logits, axis=1)

    with pytest.raises(gf.ShapeError, match=r"loss_fn returned f32\[batch\], but the loss must be one number") as err:
        gf.Trainer(mlp_module, per_example, "sgd", inputs=X_SPEC, targets=Y_SPEC)
    assert "gf.mean" in err.value.hint


def test_the_training_names_are_public():
    names = dir(gf)
    for name in ("Trainer", "plot_history", "save_params", "load_params", "ConfigError", "StateDictError"):
        assert name in names and name in gf.__all__


def test_compiled_step_is_a_trainer_method_that_takes_no_step(mlp_module, data):
    x, y = data
    t = _trainer(mlp_module)
    before = t.state_dict()
    compiled = t.compiled_step(x[:16], y[:16])
    assert "HloModule" in compiled.as_text()
    assert t.step == 0 and all(np.array_equal(v, t.state_dict()[k]) for k, v in before.items())
    assert set(t.device_params) == set(before) and t.opt_state is not None
