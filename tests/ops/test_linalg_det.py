"""``det`` (graphforge/ops/linalg_det.py): values on every back end, the cofactor VJP (also at a
singular matrix, where an inverse-based gradient breaks), shape errors, and the float64 ONNX export
(the Leibniz sum for small n, a typed refusal beyond it). The op-table tests run its samples."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf

RNG = np.random.default_rng(11)
BACKENDS = ("reference", "jax", "onnxruntime")


@pytest.mark.parametrize("shape,dtype", [((4, 4), "float64"), ((2, 3, 3), "float32"), ((5, 5), "float64")])
def test_det_matches_numpy_on_every_backend(shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    g = gf.trace(gf.det, gf.TensorSpec(shape, dtype))
    rtol = 1e-11 if dtype == "float64" else 1e-5
    for backend in BACKENDS:
        (out,) = gf.run(g, [x], backend=backend)
        assert out.dtype == np.dtype(dtype), backend
        np.testing.assert_allclose(out, np.linalg.det(x.astype(np.float64)), rtol=rtol, atol=rtol, err_msg=backend)


def test_det_gradient_is_the_cofactor_matrix_even_when_singular():
    g = gf.trace(lambda a: gf.sum(gf.det(a)), gf.TensorSpec((3, 3), "float64"))
    gg = gf.grad(g, wrt=["a"])
    x = RNG.standard_normal((3, 3))
    for backend in ("reference", "jax"):
        _, ga = gf.run(gg, [x], backend=backend)
        np.testing.assert_allclose(ga, np.linalg.det(x) * np.linalg.inv(x).T, rtol=1e-10, err_msg=backend)
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 5.0]])
    _, ga = gf.run(gg, [singular], backend="reference")
    cof = np.array([[14.0, -10.0, 2.0], [-7.0, 5.0, -1.0], [0.0, 0.0, 0.0]])  # hand-computed cofactors
    np.testing.assert_allclose(ga, cof, atol=1e-12)


def test_det_refuses_non_square_and_vectors():
    with pytest.raises(gf.ShapeError, match="square"):
        gf.trace(gf.det, gf.TensorSpec((2, 3), "float32"))
    with pytest.raises(gf.ShapeError, match="rank >= 2"):
        gf.trace(gf.det, gf.TensorSpec((3,), "float32"))
    with pytest.raises(gf.DTypeError):
        gf.trace(gf.det, gf.TensorSpec((2, 2), "int32"))


def test_float64_det_beyond_the_leibniz_limit_is_a_typed_export_error():
    from graphforge.runtimes.onnx import to_onnx

    g = gf.trace(gf.det, gf.TensorSpec((6, 6), "float64"))
    with pytest.raises(gf.GraphforgeError, match="det"):
        to_onnx(g)
