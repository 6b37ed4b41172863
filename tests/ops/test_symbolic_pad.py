"""``gf.pad`` with symbolic dims and amounts computed from them (issue #14): edge and reflect
padding of a run-time-sized axis run on every back end from one graph, reflect's "each pad is
smaller than the axis" is a guard checked when inputs are bound (with the user's line), and the
VJPs compute their source indices at run time."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from gf_testutil import numeric_grad

BACKENDS = ("reference", "jax", "onnxruntime")


def _padded(x, mode):
    n = x.shape[1]
    return gf.pad(x, [0, 1, 2, n - 1], mode=mode)   # the end pad of axis 1 grows with the axis


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_padding_by_a_symbolic_amount_runs_on_every_back_end(mode):
    g = gf.trace(lambda x: _padded(x, mode), gf.TensorSpec(("batch", "seq"), "float32"))
    assert str(g.outputs[0].type) == "f32[batch+1,2*seq+1]"
    for b, seq in ((2, 3), (3, 6)):
        x = np.random.default_rng(seq).standard_normal((b, seq)).astype(np.float32)
        np_mode = {"reflect": "reflect", "edge": "edge", "constant": "constant"}[mode]
        want = np.pad(x, [(0, 1), (2, seq - 1)], mode=np_mode)
        for backend in BACKENDS:
            np.testing.assert_allclose(gf.run(g, [x], backend=backend)[0], want, rtol=1e-6, err_msg=backend)


def test_reflect_padding_records_pad_below_the_dim_with_the_line():
    g = gf.trace(lambda x: _padded(x, "reflect"), gf.TensorSpec(("batch", "seq"), "float32"))
    with pytest.raises(gf.InputError, match=r"3 <= seq") as err:
        gf.run(g, [np.zeros((2, 2), np.float32)], backend="onnxruntime")
    assert "reflect padding" in str(err.value) and "test_symbolic_pad.py" in str(err.value)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_the_gradient_of_a_symbolic_pad_matches_finite_differences(mode):
    def loss(x, w):
        return gf.sum(_padded(x, mode) * w)

    g = gf.trace(loss, gf.TensorSpec(("batch", "seq"), "float64"), gf.TensorSpec(("batch+1", "2*seq+1"), "float64"))
    tg = gf.grad(g, wrt="x")
    for b, seq in ((2, 3), (3, 5)):
        rng = np.random.default_rng(seq)
        arrays = [rng.standard_normal((b, seq)), rng.standard_normal((b + 1, 2 * seq + 1))]
        want = numeric_grad(lambda xs: gf.run(g, xs)[0], arrays, 0)
        for backend in BACKENDS:   # (onnxruntime: the exported gradient graph, index arithmetic included)
            np.testing.assert_allclose(gf.run(tg, arrays, backend=backend)[1], want, rtol=1e-6, atol=1e-8)
