"""gf.Trainer(precision="bf16-mixed" | "fp16-mixed"): accuracy parity, fp16 dynamic loss scaling."""
from __future__ import annotations

import numpy as np
import optax
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError
from graphforge.train.precision import MixedPrecision


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def _trainer(precision, optimizer=None):
    net = nn.seq().add(nn.Linear(64, 64)).add_fn(gf.relu).add(nn.Linear(64, 10))
    return gf.Trainer(net, loss_fn=nn.functional.cross_entropy, optimizer=optimizer or optax.adam(3e-3),
                      inputs=[gf.TensorSpec(("batch", 64))], targets=gf.TensorSpec(("batch",), "int64"),
                      metrics={"accuracy": nn.functional.accuracy}, seed=0, progress=False, precision=precision)


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_accuracy_parity_with_float32(precision):
    (x, y), (xv, yv) = _digits()
    results = {}
    for p in ("default", precision):
        t = _trainer(p)
        t.fit(x, y, epochs=4, batch_size=64, verbose=False)
        results[p] = t.evaluate(xv, yv)["accuracy"]
    assert results["default"] > 0.9
    assert abs(results[precision] - results["default"]) <= 0.005 + 1e-9, results
    # float32 master weights, float32 optimizer state
    assert all(np.asarray(v).dtype == np.float32 for v in t.params.values())
    leaves = [np.asarray(l) for l in __import__("jax").tree_util.tree_leaves(t.opt_state)]
    assert all(l.dtype != np.float16 and l.dtype.name != "bfloat16" for l in leaves)
    # the model computes in the half type
    dtype = "bfloat16" if precision.startswith("bf") else "float16"
    assert any(n.op == "linear" and n.outputs[0].dtype == dtype for n in t.train_graph.nodes)


def test_fp16_skips_non_finite_steps_and_adapts_the_scale():
    policy = MixedPrecision("float16", init_scale=2.0 ** 10, growth_interval=2)
    t = _trainer(policy, optimizer=optax.sgd(0.1))
    (x, y), _ = _digits()
    xb, yb = x[:32], y[:32]
    before = t.params
    huge = np.full_like(xb, 6e4)  # float16 overflows to inf in the first matmul: grads are not finite
    out = t.train_step(huge, yb)
    assert float(out["skipped_steps"]) == 1.0
    assert float(t.opt_state.scale) == 2.0 ** 9  # backed off
    for k, v in t.params.items():
        np.testing.assert_array_equal(v, before[k])  # the step was skipped
    t.train_step(xb, yb)
    assert float(t.opt_state.scale) == 2.0 ** 9 and int(t.opt_state.good_steps) == 1
    out = t.train_step(xb, yb)
    assert float(out["skipped_steps"]) == 0.0
    assert float(t.opt_state.scale) == 2.0 ** 10  # grown after growth_interval finite steps
    assert any(not np.array_equal(v, before[k]) for k, v in t.params.items())


def test_fp16_gradients_match_float32_after_unscaling():
    (x, y), _ = _digits()
    a, b = _trainer("default", optax.sgd(0.1)), _trainer("fp16-mixed", optax.sgd(0.1))
    a.train_step(x[:64], y[:64])
    b.train_step(x[:64], y[:64])
    for k, v in a.params.items():
        np.testing.assert_allclose(b.params[k], v, atol=2e-3)


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="bf16-mixed"):
        _trainer("fp8")
