"""``grid_sample`` / ``affine_grid`` (graphforge/ops/vision_grid.py): every mode x padding x
align_corners against onnx's reference GridSample on the reference and JAX back ends, the
onnxruntime export (native GridSample and the decomposition), the nn.functional wrappers, a gradient
check against the analytic bilinear weights, and typed shape errors. The op-table tests run the samples."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge import nn

RNG = np.random.default_rng(19)


def _onnx_grid_sample(x, g, mode, pad, align):
    node = helper.make_node("GridSample", ["X", "G"], ["Y"], mode=mode, padding_mode=pad, align_corners=int(align))
    return ReferenceEvaluator(node).run(None, {"X": x, "G": g})[0]


CASES = [(m, p, a, k) for m, p, a, k in itertools.product(("linear", "nearest", "cubic"),
                                                          ("zeros", "border", "reflection"), (False, True), (2, 3))
         if not (m == "cubic" and k == 3)]


@pytest.mark.parametrize("mode,pad,align,k", CASES, ids=lambda v: str(v))
def test_grid_sample_matches_onnx_reference(mode, pad, align, k):
    x = RNG.standard_normal((2, 2) + (4, 5, 3)[:k]).astype(np.float32)
    g = (RNG.standard_normal((2, 3, 2) + ((2,) if k == 3 else ()) + (k,)) * 1.5).astype(np.float32)
    want = _onnx_grid_sample(x, g, mode, pad, align)
    graph = gf.trace(lambda a, b: gf.grid_sample(a, b, mode=mode, padding_mode=pad, align_corners=align),
                     gf.TensorSpec(x.shape, "float32"), gf.TensorSpec(g.shape, "float32"))
    (got,) = gf.run(graph, [x, g], backend="reference")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grid_sample_runs_on_jax_and_onnxruntime(dtype):
    """float32 exports as one GridSample, float64 through the decomposition; both agree with the reference."""
    x = RNG.standard_normal((1, 2, 4, 4)).astype(dtype)
    g = RNG.uniform(-1.2, 1.2, (1, 3, 2, 2)).astype(dtype)
    graph = gf.trace(lambda a, b: gf.grid_sample(a, b, mode="bicubic", padding_mode="reflection"),
                     gf.TensorSpec(x.shape, dtype), gf.TensorSpec(g.shape, dtype))
    (want,) = gf.run(graph, [x, g], backend="reference")
    for backend in ("jax", "onnxruntime"):
        (got,) = gf.run(graph, [x, g], backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=backend)
    ops = [n.op_type for n in gf.to_onnx(graph).graph.node]
    assert (ops == ["GridSample"]) == (dtype == "float32"), ops


def test_bicubic_border_is_exported_through_the_decomposition():
    """onnxruntime's bicubic GridSample clamps border coordinates differently from the spec."""
    x = RNG.standard_normal((1, 1, 4, 5)).astype(np.float32)
    g = (RNG.standard_normal((1, 4, 3, 2)) * 1.5).astype(np.float32)
    graph = gf.trace(lambda a, b: gf.grid_sample(a, b, mode="bicubic", padding_mode="border"),
                     gf.TensorSpec(x.shape, "float32"), gf.TensorSpec(g.shape, "float32"))
    assert "GridSample" not in [n.op_type for n in gf.to_onnx(graph).graph.node]
    (got,) = gf.run(graph, [x, g], backend="onnxruntime")
    np.testing.assert_allclose(got, _onnx_grid_sample(x, g, "cubic", "border", False), rtol=1e-5, atol=1e-5)


def test_affine_grid_then_grid_sample_identity_and_wrappers():
    """The identity affine map with align_corners samples every pixel centre: the output is the input."""
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    theta = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32), (2, 1, 1))

    def f(inp, th):
        grid = nn.functional.affine_grid(th, [2, 3, 4, 5], align_corners=True)
        return nn.functional.grid_sample(inp, grid, align_corners=True)

    graph = gf.trace(f, gf.TensorSpec(x.shape, "float32"), gf.TensorSpec(theta.shape, "float32"))
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, [x, theta], backend=backend)
        np.testing.assert_allclose(got, x, atol=1e-5, err_msg=backend)


def test_grid_sample_gradient_is_the_bilinear_weights():
    """d out / d x at one sample point is its bilinear weights; d out / d grid the weights' slope."""
    x = RNG.standard_normal((1, 1, 3, 3))
    g = np.array([[[[0.1, -0.3]]]])  # inside, align_corners=True: pixel coords (1.1, 0.7)
    graph = gf.trace(lambda a, b: gf.sum(gf.grid_sample(a, b, align_corners=True)),
                     gf.TensorSpec(x.shape, "float64"), gf.TensorSpec(g.shape, "float64"))
    gg = gf.grad(graph, wrt=["a", "b"])
    cx, cy = 1.1, 0.7
    want = np.zeros((3, 3))
    for yy, xx in itertools.product((0, 1), (1, 2)):
        want[yy, xx] = (1 - abs(cy - yy)) * (1 - abs(cx - xx))
    dx_dgx = (x[0, 0, 0, 2] - x[0, 0, 0, 1]) * (1 - 0.7) + (x[0, 0, 1, 2] - x[0, 0, 1, 1]) * 0.7
    for backend in ("reference", "jax"):
        _, ga, gb = gf.run(gg, [x, g], backend=backend)
        np.testing.assert_allclose(ga[0, 0], want, atol=1e-12, err_msg=backend)
        np.testing.assert_allclose(gb[0, 0, 0, 0], dx_dgx * 1.0, atol=1e-12, err_msg=backend)  # d px / d gx = (W-1)/2 = 1


def test_grid_sample_shape_errors_are_typed():
    with pytest.raises(gf.ShapeError, match="grid"):
        gf.trace(gf.grid_sample, gf.TensorSpec((1, 1, 3, 3), "float32"), gf.TensorSpec((1, 2, 2, 3), "float32"))
    with pytest.raises(gf.ShapeError, match="static"):
        gf.trace(gf.grid_sample, gf.TensorSpec((1, 1, "h", 3), "float32"), gf.TensorSpec((1, 2, 2, 2), "float32"))
    with pytest.raises(gf.ShapeError, match="cubic"):
        gf.trace(lambda a, b: gf.grid_sample(a, b, mode="bicubic"), gf.TensorSpec((1, 1, 2, 3, 3), "float32"),
                 gf.TensorSpec((1, 2, 2, 2, 3), "float32"))
    with pytest.raises(gf.ShapeError, match="theta"):
        gf.trace(lambda t: gf.affine_grid(t, [1, 1, 4, 4]), gf.TensorSpec((1, 3, 4), "float32"))
    with pytest.raises(gf.DTypeError):
        gf.trace(gf.grid_sample, gf.TensorSpec((1, 1, 3, 3), "int32"), gf.TensorSpec((1, 2, 2, 2), "float32"))


def test_affine_grid_refuses_a_size_batch_other_than_a_symbolic_theta_batch():
    """Found by the 10,000-graph fuzz tier: theta (batch, 2, 3) with size [1, ...] traced, the NumPy
    reference ignored size[0], and onnxruntime's AffineGrid refused it at run time with batch 2."""
    spec = gf.TensorSpec(("batch", 2, 3))
    with pytest.raises(gf.ShapeError, match="size's batch"):
        gf.trace(lambda t: gf.affine_grid(t, [1, 1, 3, 4]), spec)
    g = gf.trace(lambda t: gf.affine_grid(t, ["batch", 1, 3, 4]), spec)   # the same symbol: fine
    theta = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (2, 1, 1))
    np.testing.assert_allclose(gf.run(g, [theta], backend="onnxruntime")[0], gf.run(g, [theta])[0], atol=1e-6)
