"""gf.from_onnx: import → run → match onnxruntime; validation of untrusted files; provenance."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conformance.light import light_case, light_models  # noqa: E402
from conformance.models import mlp_classifier, small_cnn  # noqa: E402


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    m = helper.make_model(helper.make_graph(nodes, "t", inputs, outputs, list(inits)),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("backend", ["reference", "jax"])
def test_small_cnn_matches_onnxruntime(backend):
    model = small_cnn()
    g = gf.from_onnx(model)
    assert g.inputs[0].type.shape == ("N", 3, 16, 16)  # dim_param -> symbolic dim
    counts = g.op_counts()
    assert counts["conv2d"] == 2 and counts["batch_norm"] == 1 and counts["max_pool2d"] == 1
    assert counts["global_avg_pool2d"] == 1 and counts["linear"] == 1 and counts["softmax"] == 1
    x = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    out = gf.run(g, {"x": x}, backend=backend)[0]
    np.testing.assert_allclose(out, _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_params_kinds_and_provenance():
    g = gf.from_onnx(small_cnn())
    assert set(g.trainable_names) >= {"conv1.w", "fc.w", "fc.b"}
    assert {n.scope for n in g.nodes} >= {"conv1", "bn1", "pool1", "fc", "softmax"}
    assert "@conv1" in str(g)
    gf.parse(str(g), params=g.params)  # the imported graph round-trips through the text format


def test_gemm_alpha_beta_and_transposes():
    rng = np.random.default_rng(1)
    a, b, c = (rng.normal(size=s).astype(np.float32) for s in ((4, 3), (5, 4), (1, 5)))
    m = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=1, transB=1)],
               [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
               [numpy_helper.from_array(b, "b"), numpy_helper.from_array(c, "c")])
    out = gf.run(gf.from_onnx(m), {"a": a})[0]
    np.testing.assert_allclose(out, 0.5 * a.T @ b.T + 2.0 * c, rtol=1e-5)


def test_shape_arithmetic_folds_at_import():
    """Shape → Gather → Unsqueeze → Concat → Reshape on a static shape leaves one reshape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "ax"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12])], inits)
    g = gf.from_onnx(m)
    assert g.op_counts() == {"reshape": 1}
    assert not g.params  # the shape constants were consumed at import time
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(gf.run(g, {"x": x})[0], x.reshape(2, 12))


def test_softmax_opset11_coerces_to_2d():
    x = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)
    m = _model([helper.make_node("Softmax", ["x"], ["y"], axis=1)],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], opset=11)
    np.testing.assert_allclose(gf.run(gf.from_onnx(m), {"x": x})[0], _ort(m, {"x": x})[0], rtol=1e-5, atol=1e-7)


def test_unsupported_ops_listed_at_once():
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk_a"),
             helper.make_node("Resize", ["x", "", "sc"], ["r"], name="resize_1"),
             helper.make_node("Resize", ["r", "", "sc"], ["r2"], name="resize_2"),
             helper.make_node("Relu", ["r2"], ["y"], name="ok")]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "k"),
             numpy_helper.from_array(np.array([1, 1, 1, 1], np.float32), "sc")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2]),
                helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 1, 2, 1])], inits)
    with pytest.raises(gf.UnsupportedOpError) as exc:
        gf.from_onnx(m)
    msg = str(exc.value)
    assert "Resize (node 'resize_1', 2 nodes)" in msg and "TopK (node 'topk_a', 1 node)" in msg
    assert "2 op type(s)" in msg


def test_invalid_model_is_a_load_error(tmp_path):
    bad = _model([helper.make_node("Relu", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])  # shape clash
    with pytest.raises(gf.LoadError, match="validation"):
        gf.from_onnx(bad)
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x08\x07garbage\xff\xff")
    with pytest.raises(gf.LoadError):
        gf.from_onnx(str(p))
    with pytest.raises(gf.LoadError, match="not found"):
        gf.from_onnx(str(tmp_path / "missing.onnx"))


def _external_model(tmp_path, location, offset=0, length=None, write=True):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    if write:
        (tmp_path / "w.bin").write_bytes(b"\0" * 16 + w.tobytes())
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4])
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length or w.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [t])
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return str(path), w


def test_external_data_inside_model_dir(tmp_path):
    path, w = _external_model(tmp_path, "w.bin", offset=16)
    g = gf.from_onnx(path)
    np.testing.assert_array_equal(g.params["w"], w)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(gf.run(g, {"x": x})[0], x @ w)


@pytest.mark.parametrize("location,why", [("../w.bin", "'..'"), ("/etc/passwd", "relative"),
                                          ("sub/../../w.bin", "'..'")])
def test_external_data_escaping_paths_rejected(tmp_path, location, why):
    d = tmp_path / "model"
    d.mkdir()
    path, _ = _external_model(d, location)
    with pytest.raises(gf.LoadError, match=why):
        gf.from_onnx(path)


def test_external_data_symlink_escape_and_bounds(tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 64)
    d = tmp_path / "model"
    d.mkdir()
    os.symlink(outside, d / "link.bin")
    path, _ = _external_model(d, "link.bin", write=False)
    with pytest.raises(gf.LoadError, match="outside"):
        gf.from_onnx(path)
    path, _ = _external_model(d, "w.bin", offset=40)  # 40 + 48 > 64 bytes
    with pytest.raises(gf.LoadError, match="exceeds"):
        gf.from_onnx(path)
    path, _ = _external_model(d, "w.bin", offset=1000)
    with pytest.raises(gf.LoadError, match="offset"):
        gf.from_onnx(path)


def test_backend_specialises_constant_inputs():
    """A Reshape whose shape is a graph input: the backend imports once per distinct shape value."""
    from graphforge.runtimes.onnx_backend import GraphforgeBackend

    m = _model([helper.make_node("Reshape", ["x", "s"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
                helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["r", "c"])])
    rep = GraphforgeBackend.prepare(m)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert rep.run([x, np.array([3, 4])])[0].shape == (3, 4)
    assert rep.run([x, np.array([4, -1])])[0].shape == (4, 3)
    with pytest.raises(gf.UnsupportedOpError, match="constant known at import time"):
        gf.from_onnx(m)


def test_graph_module_finetunes_only_chosen_params():
    from graphforge.runtimes.onnx_import import GraphModule

    g = gf.from_onnx(mlp_classifier())
    mod = GraphModule(g, trainable=["fc2.weight", "fc2.bias"])
    traced = gf.trace(mod, gf.TensorSpec(("batch", 64), "float32", name="x"))
    assert sorted(traced.trainable_names) == ["fc2.bias", "fc2.weight"]
    x = np.random.default_rng(3).normal(size=(5, 64)).astype(np.float32)
    np.testing.assert_allclose(gf.run(traced, {"x": x})[0], gf.run(g, {"x": x})[0], rtol=1e-6)
    with pytest.raises(gf.InputError):
        GraphModule(g, trainable=["nope"])


FAST_LIGHT = ("resnet50", "shufflenet")


def _check_light(name, backend):
    model, feeds, expected = light_case(name)
    g = gf.from_onnx(model)
    from graphforge.runtimes.onnx_import.importer import sanitize
    outs = gf.run(g, {sanitize(k): v for k, v in feeds.items()}, backend=backend)
    for o, e in zip(outs, expected):
        np.testing.assert_allclose(o, e, rtol=1e-3, atol=1e-7)  # onnx's model-test tolerances


def test_light_models_are_shipped():
    assert set(light_models()) >= {"bvlc_alexnet", "resnet50", "vgg19", "squeezenet", "densenet121"}


@pytest.mark.parametrize("name", FAST_LIGHT)
def test_light_model_fast(name):
    _check_light(name, "jax")


@pytest.mark.slow
@pytest.mark.parametrize("name", light_models())
def test_light_model_all_jax(name):
    if name == "squeezenet":
        pytest.xfail("JAX back end yields NaN on squeezenet (reference back end matches); reported to the JAX owner")
    _check_light(name, "jax")


@pytest.mark.slow
@pytest.mark.parametrize("name", light_models())
def test_light_model_all_reference(name):
    _check_light(name, "reference")
