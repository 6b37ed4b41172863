"""Minimised regressions for bugs the fuzzer and the hostile-input corpus found."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.ir.dims import check_dim


def _gather_graph():
    return gf.trace(lambda x, i: gf.gather(x, i, axis=1), gf.TensorSpec((2, 5)), gf.TensorSpec((2,), "int64"))


@pytest.mark.parametrize("bad", [-6, 5, -11])
def test_gather_reference_refuses_out_of_range_indices(bad):
    """Found by the fuzzer: indices below -n wrapped twice in the reference (np.take wraps again)
    while JAX clamps, so the back ends silently disagreed; out of range is now an error, as for
    embedding."""
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    with pytest.raises(gf.BackendError, match=r"out of range \[-5, 5\)"):
        gf.run(_gather_graph(), [x, np.array([0, bad])])
    assert gf.run(_gather_graph(), [x, np.array([-5, 4])])[0].tolist() == [[0, 4], [5, 9]]


def test_scatter_add_reference_refuses_out_of_range_indices():
    g = gf.trace(lambda b, i, u: gf.scatter_add(b, i, u, axis=0), gf.TensorSpec((3,)), gf.TensorSpec((1,), "int64"),
                 gf.TensorSpec((1,)))
    with pytest.raises(gf.BackendError, match="out of range"):
        gf.run(g, [np.zeros(3, np.float32), np.array([-4]), np.ones(1, np.float32)])


def test_dims_beyond_int64_are_a_parse_error():
    """Found by the corpus: f32[99999999999999999999999] parsed, and failed later in NumPy."""
    with pytest.raises(gf.ShapeError, match="int64"):
        check_dim(2**63)
    with pytest.raises(gf.ParseError, match="does not fit in int64"):
        gf.parse("graph g(%x: f32[99999999999999999999999]) {\n  return %x\n}\n")
    assert check_dim(2**63 - 1) == 2**63 - 1


def test_float64_erf_after_relu_loads_in_onnxruntime():
    """Found by the fuzzer (seeds 21289, 21514 of tests/fuzz/run.py)."""
    pytest.importorskip("onnxruntime")
    g = gf.trace(lambda x: gf.erf(gf.relu(x)), gf.TensorSpec((2, 3), "float64"))
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_allclose(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x])[0], rtol=1e-12, atol=1e-12)
