"""gf.memory_report: liveness peak estimate, per scope, in gf.summary, against XLA's memory_analysis."""
from __future__ import annotations

import numpy as np
import optax
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import InputError


def _mlp(width=256, depth=3, d_in=64):
    net = nn.seq()
    d = d_in
    for _ in range(depth):
        net = net.add(nn.Linear(d, width)).add_fn(gf.gelu)
        d = width
    return net.add(nn.Linear(d, 10))


def test_liveness_counts_params_inputs_and_live_activations():
    g = gf.trace(_mlp(width=32, depth=1, d_in=16), gf.TensorSpec(("batch", 16)))
    r = gf.memory_report(g, batch=8)
    assert r.param_bytes == 4 * (16 * 32 + 32 + 32 * 10 + 10)
    assert r.input_bytes == 4 * 8 * 16
    # linear -> gelu -> linear: at the gelu both the linear's result and the gelu's are live
    assert r.activation_peak_bytes == 2 * 4 * 8 * 32
    assert r.peak_bytes == r.param_bytes + r.input_bytes + r.activation_peak_bytes
    assert "0" in r.by_scope and r.by_scope["0"]["params"] == 4 * (16 * 32 + 32)
    assert "peak" in str(r)
    # twice the batch: activations and inputs double, params do not
    r2 = gf.memory_report(g, batch=16)
    assert r2.activation_peak_bytes == 2 * r.activation_peak_bytes and r2.param_bytes == r.param_bytes
    assert gf.memory_report(g, batch=8, optimizer_slots=2).optimizer_bytes == 2 * r.param_bytes


def test_elementwise_chains_are_fused():
    def f(x):
        return (x * 2.0 + 1.0).relu().sum()

    g = gf.trace(f, gf.TensorSpec((1000,)))
    # mul -> add -> relu are one fused loop; only relu's result (read by the sum) is materialised
    assert gf.memory_report(g).activation_peak_bytes == 4 * 1000 + 4


def test_unbound_symbols_are_an_input_error():
    g = gf.trace(_mlp(), gf.TensorSpec(("batch", 64)))
    with pytest.raises(InputError, match="batch"):
        gf.memory_report(g)


def test_summary_shows_the_estimate():
    g = gf.trace(_mlp(), gf.TensorSpec(("batch", 64)))
    text = gf.summary(g, print_fn=None)
    assert "Act. mem" in text and "Estimated peak memory" in text


@pytest.mark.parametrize("width,depth,batch", [(512, 3, 256), (128, 5, 2048), (1024, 2, 64)])
def test_trainer_estimate_within_25_percent_of_xla(width, depth, batch):
    t = gf.Trainer(_mlp(width, depth, 128), loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-3),
                   inputs=[gf.TensorSpec(("batch", 128))], targets=gf.TensorSpec(("batch",), "int64"), progress=False)
    x = np.zeros((batch, 128), np.float32)
    y = np.zeros((batch,), np.int64)
    m = t.compiled_step(x, y).memory_analysis()
    # what the step holds at once: its arguments, its outputs not written in place, its temporaries
    xla = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    r = gf.memory_report(t, batch=batch)
    p = sum(v.nbytes for v in t.params.values())
    assert 2 * p <= r.optimizer_bytes <= 2 * p + 64  # adam: mu and nu (and a step count)
    assert abs(r.peak_bytes - xla) <= 0.25 * xla, (r.peak_bytes, xla)
