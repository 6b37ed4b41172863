"""runtimes/jax/xla_options.py: XLA compiler options per executable — validation by XLA itself
(unknown names and bad values are ConfigErrors), the merge of graphforge's defaults with a user's,
and the remat default reaching ``gf.run``'s compiled graph on XLA:CPU."""
from __future__ import annotations

import re

import jax
import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import ConfigError
from graphforge.runtimes.jax import compile_graph, x64
from graphforge.runtimes.jax.xla_options import (CONV_CPU_OPTIONS, REMAT_CPU_OPTIONS, check_xla_options, graph_options,
                                                  has_remat, is_convnet_step, step_options)


@pytest.mark.parametrize("options, match", [
    ({"xla_cpu_use_onedn": True}, "did you mean xla_cpu_use_onednn"),
    ({"xla_cpu_scheduler_type": "FASTEST"}, "not a valid enum"),
    ({"xla_cpu_use_onednn": "yes"}, "not a valid bool"),
    ({"xla_cpu_use_onednn": [True]}, "bool/int/float/str"),
    ({"xla_cpu_use_onednn": None}, "none of them"),
    ("xla_cpu_use_onednn=true", "must be a dict"),
])
def test_options_xla_refuses_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        check_xla_options(options, "xla_options")


def test_accepted_options_come_back_as_a_dict():
    assert check_xla_options(None) == {}
    opts = {"xla_cpu_enable_fast_min_max": False, "xla_cpu_scheduler_type": None}
    assert check_xla_options(opts) == opts


def test_user_options_update_or_remove_the_defaults():
    assert step_options({}, remat=False, platform="cpu") == {}
    assert step_options({}, remat=True, platform="cpu") == REMAT_CPU_OPTIONS
    assert step_options({}, remat=True, platform="gpu") == {}   # not measured on GPU: no default there
    opts = step_options({"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_DEFAULT", "xla_cpu_use_onednn": False},
                        remat=True, platform="cpu")
    assert opts == {"xla_disable_hlo_passes": "cse_barrier_expander",
                    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_DEFAULT", "xla_cpu_use_onednn": False}
    assert step_options({"xla_disable_hlo_passes": None}, remat=True, platform="cpu") == {
        "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
    assert step_options({}, remat=True, platform="cpu", convnet=True) == {**REMAT_CPU_OPTIONS, **CONV_CPU_OPTIONS}
    assert step_options({}, remat=False, platform="gpu", convnet=True) == {}
    assert step_options({"xla_cpu_experimental_ynn_fusion_type": None}, remat=False, platform="cpu",
                        convnet=True) == {}


class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return gf.mean(self.conv(x))


class _ConvAttention(nn.Module):   # a convolution stem feeding self-attention
    def __init__(self, by_hand=False):
        super().__init__()
        self.by_hand = by_hand
        self.conv = nn.Conv2d(1, 8, 2, stride=2)
        self.attn = nn.MultiheadAttention(8, 2)

    def forward(self, x):
        h = gf.transpose(gf.reshape(self.conv(x), (-1, 8, 9)), (0, 2, 1))
        if self.by_hand:   # matmul + softmax, no attention op
            return gf.mean(gf.matmul(gf.softmax(gf.matmul(h, gf.transpose(h, (0, 2, 1))), axis=-1), h))
        return gf.mean(self.attn(h, h, h))


def test_a_convolution_graph_gets_the_conv_defaults_and_a_user_can_drop_them():
    conv = gf.trace(_Conv(), gf.TensorSpec(("batch", 1, 6, 6)), seed=0)
    plain = gf.trace(_Net(), gf.TensorSpec(("batch", 8)), seed=0)
    step = gf.grad(conv)
    # a train step (gradient outputs) gets them; forward graphs keep XLA's defaults (inference
    # measured mixed: LeNet 0.82x, ResNet-8 1.17x)
    assert is_convnet_step(step) and not is_convnet_step(conv) and not is_convnet_step(gf.grad(plain))
    assert graph_options(step, platform="cpu") == CONV_CPU_OPTIONS
    assert graph_options(conv, platform="cpu") == {}
    # attention keeps XLA's YNNPACK fusions (measured: conv-stem + encoder hybrids 1.01-1.16x slower without)
    hybrid = gf.optimize(gf.trace(_ConvAttention(), gf.TensorSpec(("batch", 1, 6, 6)), seed=0))
    assert not is_convnet_step(gf.grad(hybrid))
    assert not is_convnet_step(gf.grad(gf.trace(_ConvAttention(by_hand=True), gf.TensorSpec(("batch", 1, 6, 6)), seed=0)))
    assert graph_options(plain, platform="cpu") == {}
    assert graph_options(step, check_xla_options({"xla_cpu_experimental_ynn_fusion_type": None}), platform="cpu") == {}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the convolution default is XLA:CPU's")
def test_trainer_of_a_convolution_model_compiles_without_ynn_fusions():
    import optax
    x = np.random.default_rng(0).standard_normal((4, 1, 6, 6)).astype(np.float32)
    spec = gf.TensorSpec(("batch", 1, 6, 6))
    t = gf.Trainer(_Conv(), loss_fn=lambda out: out, optimizer=optax.sgd(0.1), inputs=[spec], targets=[],
                   seed=0, progress=False)
    assert t.xla_options == CONV_CPU_OPTIONS
    hlo = t.compiled_step(x, []).as_text()
    assert "__ynn_fusion" not in hlo   # with XLA's defaults the convolution's reductions become YNN fusions
    back = gf.Trainer(_Conv(), loss_fn=lambda out: out, optimizer=optax.sgd(0.1), inputs=[spec], targets=[],
                      seed=0, progress=False, xla_options={"xla_cpu_experimental_ynn_fusion_type": None})
    assert back.xla_options == {}
    assert "__ynn_fusion" in back.compiled_step(x, []).as_text()   # jax 0.10's XLA:CPU default


class _Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x):
        return x + self.fc2(gf.tanh(self.fc1(x)))


class _Net(nn.Module):
    def __init__(self, remat=None):
        super().__init__()
        self.blocks = nn.ModuleList([_Block(8) if remat is None else nn.remat(_Block(8), remat) for _ in range(2)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return gf.mean(x * x)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the remat default is XLA:CPU's")
def test_gf_run_of_a_remat_gradient_keeps_the_recomputation():
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    plain = gf.grad(gf.trace(_Net(), gf.TensorSpec(("batch", 8)), seed=0))
    remat = gf.grad(gf.trace(_Net("nothing"), gf.TensorSpec(("batch", 8)), seed=0))
    assert has_remat(remat) and not has_remat(plain)
    dots = []
    for g in (plain, remat):
        fn = compile_graph(g, [x], {"batch": 16})
        with x64():
            text = fn.lower(dict(g.params), (x,)).compile().as_text()
        dots.append(len(re.findall(r" dot\(", text)))
    # without the options XLA:CPU would CSE the recomputed dots away (as many as without remat)
    assert dots[1] > dots[0], dots
    for a, b in zip(gf.run(plain, {"x": x}, backend="jax"), gf.run(remat, {"x": x}, backend="jax")):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
