"""Pooling over symbolic H and W (issue #14): floor and ceil mode, max and avg, output lengths as dim
expressions; one ONNX export serves every size (ceil_mode's extra rows and avg's divisor are computed
in the model); gradients through a symbolic-size avg pool compute their windows at run time."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

SPEC = gf.TensorSpec(("batch", 2, "h", "w"), "float32", name="x")


def _pools(x):
    return (gf.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            gf.max_pool2d(x, 3, stride=2, ceil_mode=True),
            gf.avg_pool2d(x, 2))


def test_output_lengths_are_expressions():
    g = gf.trace(_pools, SPEC)
    assert [str(o.type) for o in g.outputs] == [
        "f32[batch,2,floor(h/2)+1,floor(w/2)+1]",
        "f32[batch,2,min(floor((h+1)/2),floor(h/2)),min(floor((w+1)/2),floor(w/2))]",
        "f32[batch,2,floor(h/2),floor(w/2)]"]


def test_one_export_runs_every_size():
    g = gf.trace(_pools, SPEC)
    from graphforge.runtimes.onnx import OrtSession

    session = OrtSession(g)
    for h, w in ((3, 4), (6, 5), (9, 8)):
        x = np.random.default_rng(h).standard_normal((2, 2, h, w)).astype(np.float32)
        want = gf.run(g, [x])
        got = session.run({"x": x})
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_window_larger_than_the_input_breaks_a_named_guard():
    g = gf.trace(lambda x: gf.max_pool2d(x, 3, stride=2, ceil_mode=True), SPEC)
    with pytest.raises(gf.InputError, match="max_pool2d"):
        gf.run(g, [np.zeros((1, 2, 2, 5), np.float32)])


def test_gradients_at_symbolic_sizes_compute_their_windows_at_run_time():
    """The avg-pool VJP at symbolic sizes builds its window indices and divisor in the graph (no
    constant index table), so one gradient graph serves every size (finite differences in
    tests/ops/test_symbolic_conv_pool_grad.py)."""
    def loss(x):
        return (gf.avg_pool2d(x, 2) * gf.avg_pool2d(x, 2)).sum()

    tg = gf.grad(gf.trace(loss, SPEC), wrt=["x"])
    assert "arange" in tg.op_counts()      # window starts: arange(out) * stride
    for h, w in ((3, 4), (6, 5)):
        x = np.random.default_rng(h).standard_normal((1, 2, h, w)).astype(np.float32)
        (gx,) = gf.run(tg, [x])[1:]
        want = np.zeros_like(x)
        pooled = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(1, 2, h // 2, 2, w // 2, 2).mean((3, 5))
        want[:, :, : h // 2 * 2, : w // 2 * 2] = np.repeat(np.repeat(pooled / 2, 2, 2), 2, 3)
        np.testing.assert_allclose(gx, want, rtol=1e-5, atol=1e-6)
