"""Rematerialisation: nn.remat / gf.checkpoint / gf.grad(remat=...) keep gradients, cut the peak."""
from __future__ import annotations

import numpy as np
import optax
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError
from graphforge.passes.remat import fit_memory_budget


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return x + self.fc2(gf.gelu(self.fc1(x)))


class Net(nn.Module):
    def __init__(self, d=32, n=4, remat=None):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) if remat is None else nn.remat(Block(d), remat) for _ in range(n)])
        self.head = nn.Linear(d, 1)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return gf.mean(self.head(x) ** 2)


X = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)


def _grads(g, backend="jax"):
    return gf.run(g, {"x": X}, backend=backend)


def _trace(**kw):
    return gf.trace(Net(**kw), gf.TensorSpec(("batch", 32)), seed=0)


@pytest.mark.parametrize("policy", ["nothing", "dots"])
def test_nn_remat_keeps_gradients_and_cuts_the_estimated_peak(policy):
    plain, marked = _trace(), _trace(remat=policy)
    assert marked.remat_scopes == {f"blocks.{i}": policy for i in range(4)}
    a, b = gf.grad(plain), gf.grad(marked)
    assert "optimization_barrier" in b.op_counts() and "optimization_barrier" not in a.op_counts()
    for backend in ("reference", "jax", "onnxruntime"):
        for u, v in zip(_grads(a, backend), _grads(b, backend)):
            np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
    pa = gf.memory_report(a, batch=1024).activation_peak_bytes
    pb = gf.memory_report(b, batch=1024).activation_peak_bytes
    assert pb < (0.6 if policy == "nothing" else 0.9) * pa, (pa, pb)


def test_grad_remat_option_and_checkpoint_function():
    g = _trace()
    a = gf.grad(g)
    b = gf.grad(g, remat={f"blocks.{i}": "nothing" for i in range(4)})
    for u, v in zip(_grads(a), _grads(b)):
        np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
    w = np.random.default_rng(1).standard_normal((32, 128)).astype(np.float32)

    def f(x):
        h = x
        for _ in range(3):
            h = gf.checkpoint(lambda t: gf.tanh(t @ w) @ w.T)(h)
        return gf.mean(h * h)

    gc = gf.trace(f, gf.TensorSpec(("batch", 32)))
    assert sorted(gc.remat_scopes) == ["checkpoint0", "checkpoint1", "checkpoint2"]
    gx = gf.grad(gc, wrt=["x"])
    plain = gf.trace(f, gf.TensorSpec(("batch", 32)))
    plain.remat_scopes.clear()
    # float32, recomputed in another kernel: equal to rounding relative to the gradient's scale (XLA's
    # LLVM -O0 in the test suite contracts multiply-adds differently in the two kernels)
    want = _grads(gf.grad(plain, wrt=["x"]))[1]
    np.testing.assert_allclose(_grads(gx)[1], want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    assert (gf.memory_report(gx, batch=512).activation_peak_bytes
            < gf.memory_report(gf.grad(plain, wrt=["x"]), batch=512).activation_peak_bytes)


def test_fit_memory_budget_picks_the_fewest_regions():
    g = _trace()
    full = gf.memory_report(gf.grad(g), batch=1024).peak_bytes
    every = gf.memory_report(gf.grad(g, remat={f"blocks.{i}": "nothing" for i in range(4)}), batch=1024).peak_bytes
    budget = (full + every) // 2
    gg, regions = fit_memory_budget(g, budget, {"batch": 1024},
                                    candidates=[f"blocks.{i}" for i in range(4)])
    assert 0 < len(regions) < 4
    assert gf.memory_report(gg, batch=1024).peak_bytes <= budget
    with pytest.raises(ConfigError, match="budget"):
        fit_memory_budget(g, every // 4, {"batch": 1024}, candidates=[f"blocks.{i}" for i in range(4)])


def test_trainer_with_remat_trains_like_without():
    def trainer(**kw):
        net = nn.seq().add(nn.Linear(16, 64)).add_fn(gf.tanh).add(nn.Linear(64, 3))
        return gf.Trainer(net, loss_fn=nn.functional.cross_entropy, optimizer=optax.sgd(0.1),
                          inputs=[gf.TensorSpec(("batch", 16))], targets=gf.TensorSpec(("batch",), "int64"),
                          progress=False, **kw)

    x = np.random.default_rng(2).standard_normal((32, 16)).astype(np.float32)
    y = np.arange(32) % 3
    a, b = trainer(), trainer(remat="nothing")
    for _ in range(3):
        la, lb = float(a.train_step(x, y)["loss"]), float(b.train_step(x, y)["loss"])
        assert abs(la - lb) < 1e-5
    assert "optimization_barrier" in b.grad_graph.op_counts()


def test_bad_policies_are_config_errors():
    with pytest.raises(ConfigError):
        nn.remat(Block(4), "everything")
    with pytest.raises(ConfigError):
        gf.grad(_trace(), remat={"blocks.0": "some"})


def test_trainer_remat_budget_fits_the_estimated_step_peak():
    from graphforge.passes.remat import RematBudget

    def trainer(remat=None):
        return gf.Trainer(Net(), loss_fn=lambda out: out, optimizer=optax.adam(1e-3),
                          inputs=[gf.TensorSpec(("batch", 32))], targets=[], progress=False, remat=remat)

    full = gf.memory_report(trainer(), batch=1024).peak_bytes
    budget = int(full * 0.8)
    t = trainer(RematBudget(budget, {"batch": 1024}))
    assert t.remat_regions and gf.memory_report(t, batch=1024).peak_bytes <= budget
    x = X[:16]
    np.testing.assert_allclose(float(t.train_step(x, [])["loss"]), float(trainer().train_step(x, [])["loss"]),
                               rtol=1e-6)


def test_remat_composes_with_mixed_precision():
    def trainer(**kw):
        return gf.Trainer(Net(), loss_fn=lambda out: out, optimizer=optax.adam(1e-3),
                          inputs=[gf.TensorSpec(("batch", 32))], targets=[], progress=False, precision="bf16-mixed",
                          **kw)

    a, b = trainer(), trainer(remat={f"blocks.{i}": "nothing" for i in range(4)})
    for _ in range(2):
        assert float(a.train_step(X, [])["loss"]) == float(b.train_step(X, [])["loss"])
    assert gf.memory_report(b, batch=1024).peak_bytes < 0.7 * gf.memory_report(a, batch=1024).peak_bytes
