"""``gf.Trainer(xla_options=...)``: XLA compiler options per executable — the remat default on the
CPU reaches the compiled step (the recomputation survives and XLA's reported temporaries drop), a
user's options update or remove the defaults, and what XLA refuses is a ConfigError."""
from __future__ import annotations

import re

import jax
import numpy as np
import optax
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError
from graphforge.runtimes.jax.xla_options import REMAT_CPU_OPTIONS

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the remat default is XLA:CPU's")


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return x + self.fc2(gf.gelu(self.fc1(x)))


class Net(nn.Module):
    def __init__(self, remat=None, d=32, n=4):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) if remat is None else nn.remat(Block(d), remat) for _ in range(n)])
        self.head = nn.Linear(d, 1)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return gf.mean(self.head(x) ** 2)


X = np.random.default_rng(0).standard_normal((256, 32)).astype(np.float32)


def _trainer(remat=None, **kw):
    return gf.Trainer(Net(remat), loss_fn=lambda out: out, optimizer=optax.adam(1e-3),
                      inputs=[gf.TensorSpec(("batch", 32))], targets=[], progress=False, **kw)


def _compiled(t):
    c = t.compiled_step(X, [])
    return len(re.findall(r" dot\(", c.as_text())), c.memory_analysis().temp_size_in_bytes


@pytest.fixture(scope="module")
def plain():
    t = _trainer()
    return t, _compiled(t)


def test_remat_compiles_with_the_memory_options_and_keeps_the_recomputation(plain):
    base, (dots, temp) = plain
    t = _trainer("nothing")
    assert base.xla_options == {} and t.xla_options == REMAT_CPU_OPTIONS
    rdots, rtemp = _compiled(t)
    # XLA:CPU's own pipeline would merge the recomputed forward back (as many dots as without remat)
    assert rdots > dots, (rdots, dots)
    assert rtemp < 0.7 * temp, (rtemp, temp)
    for _ in range(2):
        assert float(t.train_step(X, [])["loss"]) == pytest.approx(float(base.train_step(X, [])["loss"]), rel=1e-6)


def test_user_options_override_and_remove_the_defaults(plain):
    _, (dots, temp) = plain
    t = _trainer("nothing", xla_options={"xla_disable_hlo_passes": None, "xla_cpu_scheduler_type": None})
    assert t.xla_options == {}
    assert _compiled(t) == (dots, temp)   # the default options are what made the difference


def test_user_options_reach_the_eval_step():
    t = _trainer(xla_options={"xla_cpu_enable_fast_min_max": False})
    assert t.xla_options == {"xla_cpu_enable_fast_min_max": False}
    # the train step's compile with user options is the override test's; here the eval step's
    assert np.isfinite(t.evaluate(X, [])["loss"])
    with pytest.raises(ConfigError, match="Trainer"):
        _trainer(xla_options={"xla_no_such_option": 1})
