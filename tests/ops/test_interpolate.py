"""``gf.interpolate`` (graphforge/ops/interpolate.py): nearest and linear resizes to any size —
static, a dim expression of a symbolic input, or ``floor(n * scale)`` of a fractional scale — equal to
onnxruntime's ``Resize`` with the same coordinate transformation and rounding, on every back end from
one graph; gradients flow through the gathers (issue #14)."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from gf_testutil import numeric_grad

ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

BACKENDS = ("reference", "jax", "onnxruntime")
SPEC = gf.TensorSpec(("batch", 2, "h", "w"), "float32", name="x")


def _ort_resize(x, *, sizes=None, scales=None, mode="nearest", coord="half_pixel", nearest="round_prefer_floor"):
    """onnxruntime's Resize of ``x``: the semantics gf.interpolate follows."""
    names = ["x", "", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    while names[-1] == "":
        names.pop()
    inits = [numpy_helper.from_array(np.asarray(v, dt), n) for v, dt, n in
             ((scales, np.float32, "scales"), (sizes, np.int64, "sizes")) if v is not None]
    node = helper.make_node("Resize", names, ["y"], mode=mode, coordinate_transformation_mode=coord, nearest_mode=nearest)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


CASES = [  # (mode, coordinate transformation, nearest rounding)
    ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "asymmetric", "floor"),
    ("nearest", "pytorch_half_pixel", "round_prefer_ceil"),
    ("nearest", "align_corners", "ceil"),
    ("linear", "half_pixel", None),
    ("linear", "pytorch_half_pixel", None),
    ("linear", "align_corners", None),
    ("linear", "asymmetric", None),
]


@pytest.mark.parametrize("mode,coord,rounding", CASES, ids=["-".join(filter(None, c)) for c in CASES])
def test_sizes_and_fractional_scales_match_onnxruntime(mode, coord, rounding):
    kw = dict(mode=mode, coordinate_transformation_mode=coord, nearest_mode=rounding)
    by_size = gf.trace(lambda x: gf.interpolate(x, size=(2 * x.shape[2] + 1, x.shape[3] - 1), **kw), SPEC)
    by_scale = gf.trace(lambda x: gf.interpolate(x, scale_factor=(1.5, 0.6), **kw), SPEC)
    assert str(by_size.outputs[0].type) == "f32[batch,2,2*h+1,w-1]"
    assert str(by_scale.outputs[0].type) == "f32[batch,2,floor(h/2)+h,floor((3*w)/5)]"
    nearest = rounding or "round_prefer_floor"
    for b, h, w in ((2, 5, 7), (1, 4, 2)):
        x = np.random.default_rng(h).standard_normal((b, 2, h, w)).astype(np.float32)
        want_size = _ort_resize(x, sizes=[b, 2, 2 * h + 1, w - 1], mode=mode, coord=coord, nearest=nearest)
        want_scale = _ort_resize(x, scales=[1, 1, 1.5, 0.6], mode=mode, coord=coord, nearest=nearest)
        for backend in BACKENDS:
            np.testing.assert_allclose(gf.run(by_size, [x], backend=backend)[0], want_size, rtol=1e-5, atol=1e-6,
                                       err_msg=f"size, {backend}")
            np.testing.assert_allclose(gf.run(by_scale, [x], backend=backend)[0], want_scale, rtol=1e-5, atol=1e-6,
                                       err_msg=f"scale, {backend}")


def test_pytorch_spellings():
    """``mode="nearest"`` is PyTorch's (asymmetric, rounded down); bilinear without align_corners is
    pytorch_half_pixel; static sizes resize like symbolic ones."""
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 5)).astype(np.float32)
    g = gf.trace(lambda t: (gf.interpolate(t, size=(7, 4)), gf.interpolate(t, scale_factor=2.5, mode="bilinear"),
                            gf.interpolate(t, size=(4, 9), mode="bilinear", align_corners=True)),
                 gf.TensorSpec((1, 2, 3, 5), "float32"))
    near, lin, corners = gf.run(g, [x])
    np.testing.assert_array_equal(near, _ort_resize(x, sizes=[1, 2, 7, 4], coord="asymmetric", nearest="floor"))
    np.testing.assert_allclose(lin, _ort_resize(x, scales=[1, 1, 2.5, 2.5], mode="linear", coord="pytorch_half_pixel"),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(corners, _ort_resize(x, sizes=[1, 2, 4, 9], mode="linear", coord="align_corners"),
                               rtol=1e-5, atol=1e-6)


def test_the_gradient_of_a_bilinear_resize_matches_finite_differences():
    def loss(x, wt):
        return gf.sum(gf.interpolate(x, size=(x.shape[2] + 2, 2 * x.shape[3] - 1), mode="bilinear") * wt)

    g = gf.trace(loss, gf.TensorSpec((1, 1, "h", "w"), "float64"), gf.TensorSpec((1, 1, "h+2", "2*w-1"), "float64"))
    tg = gf.grad(g, wrt="x")
    for h, w in ((3, 4), (5, 2)):
        rng = np.random.default_rng(h)
        arrays = [rng.standard_normal((1, 1, h, w)), rng.standard_normal((1, 1, h + 2, 2 * w - 1))]
        want = numeric_grad(lambda xs: gf.run(g, xs)[0], arrays, 0)
        np.testing.assert_allclose(gf.run(tg, arrays)[1], want, rtol=1e-6, atol=1e-8)
        # the weights are float32 (onnxruntime's coordinates); XLA's float32 division may differ by an ulp
        np.testing.assert_allclose(gf.run(tg, arrays, backend="jax")[1], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "exactly one of size and scale_factor"),
    (dict(size=4, scale_factor=2.0), "exactly one of size and scale_factor"),
    (dict(size=(4, 4, 4)), "one per spatial axis"),
    (dict(size=4, mode="cubic"), "mode 'cubic'"),
    (dict(size=4, align_corners=True), "linear modes only"),
    (dict(size=4, coordinate_transformation_mode="tf_crop_and_resize"), "coordinate transformation"),
    (dict(scale_factor=0.0), "positive"),
])
def test_bad_arguments_are_shape_errors(kwargs, match):
    with pytest.raises(gf.ShapeError, match=match):
        gf.trace(lambda x: gf.interpolate(x, **kwargs), SPEC)


def test_the_docstring_example_runs_as_written():
    import inspect
    import re
    import textwrap

    (code,) = re.findall(r"```python\n(.*?)```", inspect.getdoc(gf.interpolate), re.S)
    namespace = {"gf": gf}
    exec(textwrap.dedent(code).replace("print(", "out = str("), namespace)  # noqa: S102 - our own docstring
    assert namespace["out"] == "f32[batch,3,floor(h/2)+h,floor(w/2)+w]" in code
