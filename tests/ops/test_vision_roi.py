"""``roi_align`` / ``max_roi_pool`` (graphforge/ops/vision_roi.py): RoiAlign against onnx's reference
for both modes, both coordinate modes and several sampling ratios on every back end (native RoiAlign
at opset 21, the decomposition at newer opsets), MaxRoiPool against onnxruntime's kernel (onnx ships
no reference or node case for it), gradients, and typed errors. The op-table tests run the samples."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge.runtimes.onnx import OrtSession, to_onnx

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 7, 8)).astype(np.float32)
ROIS = np.array([[0, 0, 3, 2.5], [1.2, 0.4, 9.6, 3.3], [-3, 2, 2.2, 5.9], [5, 5, 5.2, 5.1]], np.float32)
BATCH = np.array([0, 1, 1, 0], np.int64)


def _trace_align(mode, aligned, ratio):
    return gf.trace(lambda a, r, i: gf.roi_align(a, r, i, (3, 2), 0.8, ratio, aligned, mode),
                    gf.TensorSpec(X.shape, "float32"), gf.TensorSpec(ROIS.shape, "float32"),
                    gf.TensorSpec(BATCH.shape, "int64"))


@pytest.mark.parametrize("mode,aligned,ratio", list(itertools.product(("avg", "max"), (True, False), (1, 2))))
def test_roi_align_matches_onnx_reference(mode, aligned, ratio):
    node = helper.make_node("RoiAlign", ["X", "R", "B"], ["Y"], mode=mode, output_height=3, output_width=2,
                            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
                            sampling_ratio=ratio, spatial_scale=0.8)
    want = ReferenceEvaluator(node).run(None, {"X": X, "R": ROIS, "B": BATCH})[0]
    graph = _trace_align(mode, aligned, ratio)
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, [X, ROIS, BATCH], backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=backend)
    native = to_onnx(graph, opset=21)
    assert [n.op_type for n in native.graph.node] == ["RoiAlign"]
    np.testing.assert_allclose(OrtSession(native).run([X, ROIS, BATCH])[0], want, rtol=1e-5, atol=1e-5)


R5 = np.array([[0, 0, 0, 3, 2], [1, 1.4, 0.6, 4.5, 3.2], [1, 2, 2, 2, 2], [0, -2, 1, 12, 9],
               [1, 3.5, 2.5, 6.5, 5.5], [0, 9, 9, 12, 12]], np.float32)  # inside, across, outside, 1 pixel


@pytest.mark.parametrize("pooled,scale", [((2, 3), 1.0), ((3, 3), 0.5), ((4, 5), 1.0)])
def test_max_roi_pool_matches_onnxruntime_kernel(pooled, scale):
    graph = gf.trace(lambda a, r: gf.max_roi_pool(a, r, pooled, scale), gf.TensorSpec(X.shape, "float32"),
                     gf.TensorSpec(R5.shape, "float32"))
    native = to_onnx(graph, opset=21)
    assert [n.op_type for n in native.graph.node] == ["MaxRoiPool"]
    want = OrtSession(native).run([X, R5])[0]
    assert np.isfinite(want).all()
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, [X, R5], backend=backend)
        np.testing.assert_array_equal(got, want, err_msg=backend)


def test_roi_align_gradient_sums_to_the_sample_weights():
    """avg mode: each output is a convex combination of pixels, so d sum(out) / d x sums to the
    number of outputs for a box well inside the map."""
    x = RNG.standard_normal((1, 1, 6, 6))
    rois = np.array([[1.0, 1.0, 4.0, 4.0]])
    graph = gf.trace(lambda a, r, i: gf.sum(gf.roi_align(a, r, i, 2, sampling_ratio=2)),
                     gf.TensorSpec(x.shape, "float64"), gf.TensorSpec(rois.shape, "float64"), gf.TensorSpec((1,), "int64"))
    gg = gf.grad(graph, wrt=["a"])
    for backend in ("reference", "jax"):
        _, ga = gf.run(gg, [x, rois, np.array([0])], backend=backend)
        assert ga.sum() == pytest.approx(4.0, abs=1e-12), backend
        assert (ga >= 0).all()


def test_roi_errors_are_typed():
    specs = [gf.TensorSpec((1, 1, 4, 4), "float32"), gf.TensorSpec((2, 4), "float32"), gf.TensorSpec((2,), "int64")]
    with pytest.raises(gf.ShapeError, match="sampling_ratio"):
        gf.trace(lambda a, r, i: gf.roi_align(a, r, i, 2, sampling_ratio=0), *specs)
    with pytest.raises(gf.ShapeError, match="rois"):
        gf.trace(lambda a, r, i: gf.roi_align(a, r, i, 2), specs[0], gf.TensorSpec((2, 5), "float32"), specs[2])
    with pytest.raises(gf.ShapeError, match=r"\(R, 5\)"):
        gf.trace(lambda a, r: gf.max_roi_pool(a, r, (2, 2)), specs[0], specs[1])
