"""The scan VJP sums a weight's per-step cotangent ``aᵀ b`` (and a bias's row sums) after the reverse
loop, with one matmul (one sum) over the stacked per-step values, instead of carrying the running sum
through the loop; other const cotangents are still carried. The forward loop stacks only the
residuals the reverse loop reads. Gradients equal those of the same
recurrence unrolled at trace time (no loop at all)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


def _reverse_scans(graph):
    return [n for n in graph.walk() if n.op == "scan" and n.attrs.get("reverse")]


def _grads_equal_unrolled(make, spec, x):
    looped = gf.grad(gf.trace(make(False), spec, seed=0))
    unrolled = gf.grad(gf.trace(make(True), spec, seed=0))
    got = gf.run(looped, [x], backend="reference")
    want = gf.run(unrolled, [x], backend="reference", params=looped.params)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    return looped


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_recurrent_weight_gradients_leave_the_reverse_loop(mode):
    cls = nn.LSTM if mode == "lstm" else nn.GRU

    def make(unroll):
        layer = cls(3, 4, num_layers=2, unroll=unroll, dtype="float64")
        return lambda x: gf.mean(layer(x)[0] ** 2)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    tg = _grads_equal_unrolled(make, gf.TensorSpec((5, 2, 3), "float64"), x)
    scans = _reverse_scans(tg)
    assert len(scans) == 2
    for scan in scans:
        # carried: the state cotangents only (LSTM dh, dc; GRU dh) — no (G·H, H) weight or bias sum
        assert scan.attrs["num_carry"] == (2 if mode == "lstm" else 1)
        carried = scan.outputs[:scan.attrs["num_carry"]]
        assert all(v.type.shape == (2, 4) for v in carried)
        # only the residuals the reverse loop reads are stacked and passed (the one unread argument
        # is h_{t-1}, a factor of the weight's cotangent, read by the matmul after the loop)
        assert sum(not a.uses for a in scan.regions[0].arguments) <= 1


def test_a_const_used_elementwise_is_still_summed_in_the_carry():
    def make(unroll):
        layer = nn.RNN(3, 4, unroll=unroll, dtype="float64")
        scale = nn.Parameter((4,), "float64", init=nn.init.ones)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn, self.scale = layer, scale

            def forward(self, x):
                def step(h, xt):
                    h = self.rnn.step(xt, gf.unsqueeze(h, [0]))[1][0] * self.scale
                    return h, h
                if unroll:
                    h, ys = gf.zeros((2, 4), "float64"), []
                    for t in range(5):
                        h, y = step(h, x[t])
                        ys.append(y)
                    return gf.mean(gf.stack(ys, 0) ** 2)
                _, ys = gf.scan(step, gf.zeros((2, 4), "float64"), x)
                return gf.mean(ys ** 2)
        return Net()
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    tg = _grads_equal_unrolled(make, gf.TensorSpec((5, 2, 3), "float64"), x)
    (scan,) = _reverse_scans(tg)
    carried = [v.type.shape for v in scan.outputs[:scan.attrs["num_carry"]]]
    assert (4,) in carried   # the elementwise scale's cotangent: carried, not an outer product


@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_forward_loop_does_not_stack_a_carry_it_already_yields(mode, bidirectional):
    """``h`` is both a carry and the y of a recurrent layer's scan: the stack of the ``h`` entering
    each step is the ys shifted by one step (the initial state first), not a second stacked output.
    (An LSTM's ``c`` is no y: its entering value is still stacked.) Gradients equal the unrolled
    recurrence's, in both directions."""
    cls = nn.LSTM if mode == "lstm" else nn.GRU

    def make(unroll):
        layer = cls(3, 4, bidirectional=bidirectional, unroll=unroll, dtype="float64")
        return lambda x: gf.mean(layer(x)[0] ** 2)
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    tg = _grads_equal_unrolled(make, gf.TensorSpec((5, 2, 3), "float64"), x)
    nodes = list(tg.nodes)
    loss_at = next(i for i, n in enumerate(nodes) if n.op == "mean")
    forward = [n for n in nodes[:loss_at] if n.op == "scan"]  # the layer's scans, before the loss
    assert len(forward) == (2 if bidirectional else 1)
    for scan in forward:
        body = scan.regions[0]
        nc = scan.attrs["num_consts"]
        stacked = list(body.terminator.inputs)[scan.attrs["num_carry"] + 1:]  # after the carries and y
        h_in = body.arguments[nc]
        assert not any(v is h_in for v in stacked)
        if mode == "lstm":
            assert any(v is body.arguments[nc + 1] for v in stacked)  # c_{t-1}
