"""Import of Det, the cosine windows, GlobalLpPool and ReverseSequence (runtimes/onnx_import/
linalg_det.py, signal_misc.py) against onnxruntime / onnx's reference, on every back end."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402
from gf_testutil import one_node_onnx_model as _model, onnx_value_info as _vi  # noqa: E402

RNG = np.random.default_rng(23)
BACKENDS = ("reference", "jax", "onnxruntime")


def _check(model, feeds, rtol=1e-5, atol=1e-6):
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    g = gf.from_onnx(model)
    for backend in BACKENDS:
        got = gf.run(g, feeds, backend=backend)
        for a, b in zip(got, want):
            assert a.shape == b.shape and a.dtype == b.dtype, backend
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=backend)
    return g


@pytest.mark.parametrize("p", [1, 2, 3])
def test_global_lp_pool(p):
    m = _model(helper.make_node("GlobalLpPool", ["x"], ["y"], p=p), [_vi("x", [2, 3, 4, 5])],
               [_vi("y", [2, 3, 1, 1])])
    _check(m, {"x": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)}, rtol=1e-5)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows_match_onnxruntime(op, periodic):
    size = numpy_helper.from_array(np.array(10, np.int64), "n")
    m = _model(helper.make_node(op, ["n"], ["y"], periodic=periodic), [], [_vi("y", [10])], inits=[size])
    g = _check(m, {})
    assert len(g.inputs) == 0


def test_window_size_must_be_a_constant():
    m = _model(helper.make_node("HannWindow", ["n"], ["y"]), [_vi("n", [], TensorProto.INT64)], [_vi("y", [None])])
    with pytest.raises(gf.GraphforgeError, match="size"):
        gf.from_onnx(m)


@pytest.mark.parametrize("time_axis,batch_axis", [(0, 1), (1, 0)])
def test_reverse_sequence_with_run_time_lengths(time_axis, batch_axis):
    shape = [5, 3, 2] if time_axis == 0 else [3, 5, 2]
    node = helper.make_node("ReverseSequence", ["x", "l"], ["y"], time_axis=time_axis, batch_axis=batch_axis)
    m = _model(node, [_vi("x", shape), _vi("l", [3], TensorProto.INT64)], [_vi("y", shape)])
    x = RNG.standard_normal(shape).astype(np.float32)
    for lens in ([5, 1, 3], [2, 4, 0]):
        _check(m, {"x": x, "l": np.array(lens, np.int64)})


def test_det_imports_and_round_trips_as_det():
    m = _model(helper.make_node("Det", ["x"], ["y"]), [_vi("x", [2, 3, 3])], [_vi("y", [2])])
    g = _check(m, {"x": RNG.standard_normal((2, 3, 3)).astype(np.float32)}, rtol=1e-5, atol=1e-5)
    from graphforge.runtimes.onnx import to_onnx

    assert [n.op_type for n in to_onnx(g).graph.node] == ["Det"]


def _dft_model(x_shape, y_shape, opset, length=None, **attrs):
    inputs, inits = ["x"], []
    if length is not None:
        inits.append(numpy_helper.from_array(np.array(length, np.int64), "n"))
        inputs.append("n")
    return _model(helper.make_node("DFT", inputs, ["y"], **attrs), [_vi("x", x_shape)], [_vi("y", y_shape)],
                  inits=inits, opset=opset)


def _complex(x):
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]


@pytest.mark.parametrize("case", ["fft", "fft_trunc", "fft_pad", "rfft", "ifft", "irfft", "irfft_odd"])
def test_dft_matches_numpy_float64(case):
    x = RNG.standard_normal((2, 6, 3, 2))
    axis = 1
    c = _complex(x)
    length, attrs = None, {}
    if case == "fft":
        want = np.fft.fft(c, axis=axis)
    elif case == "fft_trunc":
        length, want = 4, np.fft.fft(c, n=4, axis=axis)
    elif case == "fft_pad":
        length, want = 9, np.fft.fft(c, n=9, axis=axis)
    elif case == "rfft":
        x = x[..., :1]
        attrs, want = dict(onesided=1), np.fft.rfft(x[..., 0], axis=axis)
    elif case == "ifft":
        attrs, want = dict(inverse=1), np.fft.ifft(c, axis=axis)
    else:
        length = 10 if case == "irfft" else 11
        attrs, want = dict(inverse=1, onesided=1), np.fft.irfft(c, n=length, axis=axis)
    want = want[..., None] if want.dtype.kind == "f" else np.stack([want.real, want.imag], -1)
    xf = x.astype(np.float32)
    m = _dft_model(list(x.shape), list(want.shape), 17, length, axis=axis, **attrs)
    g = gf.from_onnx(m)
    for backend in BACKENDS:
        (got,) = gf.run(g, [xf], backend=backend)
        assert got.shape == want.shape and got.dtype == np.float32, backend
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=backend)


def test_dft_opset20_takes_the_axis_as_an_input():
    x = RNG.standard_normal((3, 5, 1)).astype(np.float32)
    ax = numpy_helper.from_array(np.array(0, np.int64), "ax")
    m = _model(helper.make_node("DFT", ["x", "", "ax"], ["y"]), [_vi("x", [3, 5, 1])], [_vi("y", [3, 5, 2])],
               inits=[ax], opset=20)
    want = np.fft.fft(x[..., 0].astype(np.float64), axis=0)
    (got,) = gf.run(gf.from_onnx(m), [x], backend="jax")
    np.testing.assert_allclose(got, np.stack([want.real, want.imag], -1), rtol=1e-5, atol=1e-5)


def test_dft_refuses_a_last_axis_that_is_not_real_imaginary():
    m = _dft_model([2, 4, 3], [2, 4, 2], 17, axis=1)
    with pytest.raises(gf.GraphforgeError, match="real"):
        gf.from_onnx(m)


def test_stft_with_a_run_time_window_matches_onnxruntime():
    step = numpy_helper.from_array(np.array(3, np.int64), "step")
    node = helper.make_node("STFT", ["x", "step", "w"], ["y"])
    m = _model(node, [_vi("x", [2, 20, 1]), _vi("w", [8])], [_vi("y", [2, 5, None, 2])], inits=[step], opset=17)
    feeds = {"x": RNG.standard_normal((2, 20, 1)).astype(np.float32), "w": RNG.random(8).astype(np.float32)}
    _check(m, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mels,dft,rate,lo,hi", [(8, 16, 8192, 0.0, 4096.0), (5, 64, 16000, 100.0, 6000.0)])
def test_mel_weight_matrix_matches_onnxruntime(mels, dft, rate, lo, hi):
    vals = [np.array(mels, np.int64), np.array(dft, np.int64), np.array(rate, np.int64), np.array(lo, np.float32),
            np.array(hi, np.float32)]
    names = ["m", "d", "r", "lo", "hi"]
    inits = [numpy_helper.from_array(v, n) for v, n in zip(vals, names)]
    m = _model(helper.make_node("MelWeightMatrix", names, ["y"]), [], [_vi("y", [dft // 2 + 1, mels])],
               inits=inits, opset=17)
    _check(m, {})


@pytest.mark.parametrize("pads", [[1, 2, 3, 1], [0, 5, 0, 0], [-1, 1, 2, -2]])
def test_wrap_pad_matches_onnxruntime(pads):
    p = numpy_helper.from_array(np.array(pads, np.int64), "p")
    out = [3 + pads[0] + pads[2], 4 + pads[1] + pads[3]]
    m = _model(helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap"), [_vi("x", [3, 4])], [_vi("y", out)],
               inits=[p])
    _check(m, {"x": RNG.standard_normal((3, 4)).astype(np.float32)})


@pytest.mark.parametrize("size,axes", [([2, 7], None), ([5], [-1]), ([4, 4], [0, 1])])
def test_center_crop_pad_matches_onnx_reference(size, axes):
    from onnx.reference import ReferenceEvaluator

    s = numpy_helper.from_array(np.array(size, np.int64), "s")
    kw = {} if axes is None else {"axes": axes}
    out = [None, None]
    m = _model(helper.make_node("CenterCropPad", ["x", "s"], ["y"], **kw), [_vi("x", [5, 3])], [_vi("y", out)],
               inits=[s], opset=18)
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    (want,) = ReferenceEvaluator(m).run(None, {"x": x})
    g = gf.from_onnx(m)
    for backend in BACKENDS:
        (got,) = gf.run(g, [x], backend=backend)
        np.testing.assert_array_equal(got, want, err_msg=backend)


def test_training_mode_batch_norm_matches_onnx_reference():
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1,
                            momentum=0.8, epsilon=1e-3)
    m = _model(node, [_vi("x", [4, 3, 5]), _vi("s", [3]), _vi("b", [3]), _vi("m", [3]), _vi("v", [3])],
               [_vi("y", [4, 3, 5]), _vi("rm", [3]), _vi("rv", [3])], opset=15)
    feeds = {"x": RNG.standard_normal((4, 3, 5)).astype(np.float32) * 3 + 1,
             **{k: RNG.random(3).astype(np.float32) + 0.5 for k in "sbmv"}}
    want = ReferenceEvaluator(m).run(None, feeds)
    g = gf.from_onnx(m)
    for backend in BACKENDS:
        got = gf.run(g, feeds, backend=backend)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=backend)


def test_swiglu_matches_onnx_reference():
    from onnx.reference import ReferenceEvaluator
    from graphforge.runtimes.onnx_import.importer import max_import_opset

    m = _model(helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=1.7), [_vi("a", [2, 5]), _vi("b", [2, 5])],
               [_vi("y", [2, 5])], opset=max_import_opset())
    feeds = {"a": RNG.standard_normal((2, 5)).astype(np.float32), "b": RNG.standard_normal((2, 5)).astype(np.float32)}
    (want,) = ReferenceEvaluator(m).run(None, feeds)
    g = gf.from_onnx(m)
    for backend in BACKENDS:
        (got,) = gf.run(g, feeds, backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=backend)
