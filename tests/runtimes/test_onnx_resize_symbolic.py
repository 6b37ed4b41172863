"""ONNX Resize on symbolic dims: integer scales whose result repeats each element (nearest upsampling,
``nn.Upsample(scale_factor=k)``) import with ``k*dim`` output dims and match onnxruntime at any size;
other nearest and linear resizes (fractional scales, align_corners, ...) compute their source rows at
run time; the few that cannot (cubic, antialias, tf_half_pixel_for_nn) are refused with a typed error naming why."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402


def _resize_model(scales, **attrs):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, "oh", "ow"])
    init = numpy_helper.from_array(np.asarray(scales, np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    m = helper.make_model(helper.make_graph([node], "r", [x], [y], [init]), opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    return m


@pytest.mark.parametrize("scales,attrs", [
    ([1, 1, 2, 2], dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
    ([1, 1, 3, 1], dict(mode="nearest")),  # half_pixel, round_prefer_floor (the defaults)
    ([1, 1, 2, 4], dict(mode="nearest", coordinate_transformation_mode="pytorch_half_pixel",
                        nearest_mode="round_prefer_ceil")),
])
@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
def test_integer_nearest_upsampling_on_symbolic_dims(scales, attrs, backend):
    model = _resize_model(scales, **attrs)
    graph = gf.from_onnx(model)
    out = graph.outputs[0].type.shape
    assert out[0] == "n" and out[1] == 2
    assert [str(d) for d in out[2:]] == [d if s == 1 else f"{s}*{d}" for s, d in zip(scales[2:], ("h", "w"))]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(1, 2, 3, 4), (2, 2, 5, 1)]:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        np.testing.assert_array_equal(gf.run(graph, {"x": x}, backend=backend)[0], want)


@pytest.mark.parametrize("scales,attrs,dims", [
    ([1, 1, 2, 2], dict(mode="linear"), ["2*h", "2*w"]),                                    # half_pixel
    ([1, 1, 1.5, 1], dict(mode="nearest"), ["floor(h/2)+h", "w"]),
    ([1, 1, 3, 1], dict(mode="nearest", coordinate_transformation_mode="asymmetric"), ["3*h", "w"]),
    ([1, 1, 0.5, 2.5], dict(mode="linear", coordinate_transformation_mode="align_corners"),
     ["floor(h/2)", "floor(w/2)+2*w"]),
    ([1, 1, 1.75, 0.6], dict(mode="nearest", coordinate_transformation_mode="pytorch_half_pixel",
                             nearest_mode="ceil"), ["floor((3*h)/4)+h", "floor((3*w)/5)"]),
])
def test_resizes_that_are_not_repeats_interpolate_at_run_time(scales, attrs, dims):
    """Fractional scales and linear modes on symbolic dims: floor(scale * dim) rows whose sources the
    graph computes with onnxruntime's coordinate arithmetic, on every back end."""
    model = _resize_model(scales, **attrs)
    graph = gf.from_onnx(model)
    assert [str(d) for d in graph.outputs[0].type.shape[2:]] == dims
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(1, 2, 3, 4), (2, 2, 6, 5)]:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        for backend in ("reference", "jax", "onnxruntime"):
            np.testing.assert_allclose(gf.run(graph, {"x": x}, backend=backend)[0], want, rtol=1e-5, atol=1e-6,
                                       err_msg=backend)


@pytest.mark.parametrize("attrs,why", [
    (dict(mode="cubic"), "mode 'cubic'"),
    (dict(mode="linear", antialias=1), "antialias"),
    (dict(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn"), "tf_half_pixel_for_nn"),
])
def test_resizes_symbolic_sizes_cannot_take_are_refused_by_name(attrs, why):
    with pytest.raises(gf.UnsupportedOpError, match=why):
        gf.from_onnx(_resize_model([1, 1, 1.5, 1], **attrs))


def test_upsample_opset9_on_symbolic_dims():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "oh", 6])
    init = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
    m = helper.make_model(helper.make_graph([node], "u", [x], [y], [init]), opset_imports=[helper.make_opsetid("", 9)])
    m.ir_version = 4
    graph = gf.from_onnx(m)
    assert [str(d) for d in graph.outputs[0].type.shape] == ["n", "1", "2*h", "6"]
    a = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 1, 5, 3)
    want = np.repeat(np.repeat(a, 2, axis=2), 2, axis=3)
    for backend in ("jax", "onnxruntime"):
        np.testing.assert_array_equal(gf.run(graph, {"x": a}, backend=backend)[0], want)


def _check_against_ort(model, shapes):
    graph = gf.from_onnx(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        for backend in ("reference", "jax", "onnxruntime"):
            np.testing.assert_allclose(gf.run(graph, {"x": x}, backend=backend)[0], want, rtol=1e-5, atol=1e-6,
                                       err_msg=backend)
    return graph


def test_upsample_opset9_linear_by_fractional_scales_on_symbolic_dims():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "oh", "ow"])
    init = numpy_helper.from_array(np.array([1, 1, 1.5, 2.5], np.float32), "scales")
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear")
    m = helper.make_model(helper.make_graph([node], "u", [x], [y], [init]), opset_imports=[helper.make_opsetid("", 9)])
    m.ir_version = 4
    graph = _check_against_ort(m, [(1, 1, 3, 4), (2, 1, 5, 3)])
    assert str(graph.outputs[0].type) == "f32[n,1,floor(h/2)+h,floor(w/2)+2*w]"


def test_a_static_axis_resized_to_a_size_computed_at_run_time():
    """sizes = Shape(x)[:3] ++ (h + 1): the static W = 5 becomes h + 1 rows, known only at run time."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0, end=3),
             helper.make_node("Shape", ["x"], ["h"], start=2, end=3),
             helper.make_node("Add", ["h", "one"], ["w2"]),
             helper.make_node("Concat", ["s", "w2"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, "h", "w2"])
    one = numpy_helper.from_array(np.array([1], np.int64), "one")
    m = helper.make_model(helper.make_graph(nodes, "r", [x], [y], [one]), opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    graph = _check_against_ort(m, [(1, 2, 3, 5), (2, 2, 7, 5)])
    assert str(graph.outputs[0].type) == "f32[n,2,h,h+1]"
