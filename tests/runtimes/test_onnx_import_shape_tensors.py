"""ONNX ops that take a shape or a count as a tensor (Tile repeats, Resize sizes) import symbolically
when that tensor is computed from ``Shape`` at run time, as dynamic-batch PyTorch exports spell
``cls.repeat(x.shape[0], 1, 1)`` or ``F.interpolate(x, size=(2 * h, 2 * w))`` (issue #14). Each model is
checked against onnxruntime running the original file, at sizes no export fixed."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402

BACKENDS = ("reference", "jax", "onnxruntime")


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "shape_tensors", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _check(model, feeds_list, types):
    g = gf.from_onnx(model)
    assert [str(o.type) for o in g.outputs] == types
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        want = sess.run(None, feeds)
        for backend in BACKENDS:
            got = gf.run(g, feeds, backend=backend)
            assert len(got) == len(want)
            for a, b in zip(got, want):
                np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6, err_msg=backend)
    return g


def _feeds(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def test_tile_by_a_run_time_batch_broadcasts_a_class_token():
    """``cls.repeat(b, 1, 1)`` then concat in front of the tokens (ViT)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
             helper.make_node("Concat", ["b", "one", "one"], ["reps"], axis=0),
             helper.make_node("Tile", ["cls", "reps"], ["c"]),
             helper.make_node("Concat", ["c", "x"], ["y"], axis=1)]
    cls = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 1, 4), "cls")
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S", 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None, 4])],
                   [_i64("zero", [0]), _i64("one", [1]), cls])
    _check(model, [_feeds({"x": (n, s, 4)}, n) for n, s in ((1, 2), (3, 5))], ["f32[N,S+1,4]"])


def test_tile_of_a_symbolic_tensor_by_its_own_shape():
    """Tile(x, Shape(x)): every axis repeated by its own run-time length (no axis of size 1)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Tile", ["x", "s"], ["t"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [None, None])], [])
    _check(model, [_feeds({"x": (n, 3)}, n) for n in (1, 2, 4)], ["f32[N*N,9]"])


def _resize_to_sizes(op, mode="nearest", **attrs):
    """Resize x (N, 2, H, W) to sizes = [N, 2, op(H), op(W)] computed from Shape (F.interpolate(size=...))."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two"], ["nc"]),
             helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
             helper.make_node(op, ["hw", "k"], ["hw2"]),
             helper.make_node("Concat", ["nc", "hw2"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode, **attrs)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, None, None])],
                  [_i64("zero", [0]), _i64("two", [2]), _i64("four", [4]), _i64("k", [2])], opset=19)


@pytest.mark.parametrize("attrs", [{}, dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor")])
def test_resize_to_sizes_computed_from_shape(attrs):
    _check(_resize_to_sizes("Mul", **attrs), [_feeds({"x": (n, 2, h, w)}, h) for n, h, w in ((1, 3, 4), (2, 5, 2))],
           ["f32[N,2,2*H,2*W]"])


@pytest.mark.parametrize("mode,attrs", [
    ("nearest", {}),                                                       # half_pixel, round_prefer_floor
    ("nearest", dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
    ("linear", dict(coordinate_transformation_mode="pytorch_half_pixel")),
    ("linear", dict(coordinate_transformation_mode="align_corners")),
])
def test_resize_to_a_size_that_is_no_multiple_interpolates_at_run_time(mode, attrs):
    """sizes = (H + 2, W + 2) from Shape: no repeat, so the source rows are computed in the graph from
    the run-time scale (H + 2) / H, as onnxruntime does."""
    g = _check(_resize_to_sizes("Add", mode, **attrs),
               [_feeds({"x": (n, 2, h, w)}, h) for n, h, w in ((1, 3, 4), (2, 5, 2), (1, 1, 7))], ["f32[N,2,H+2,W+2]"])
    assert "gather" in g.op_counts()


def test_a_cubic_resize_to_a_run_time_size_is_refused_by_name():
    with pytest.raises(gf.UnsupportedOpError, match="mode 'cubic'"):
        gf.from_onnx(_resize_to_sizes("Add", "cubic"))


def test_split_by_sizes_computed_from_shape():
    """Split x (N, T) into [2, T-2] along axis 1, the second size computed from Shape(x)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "one", "two_end"], ["t"]),
             helper.make_node("Sub", ["t", "two"], ["rest"]),
             helper.make_node("Concat", ["two", "rest"], ["sizes"], axis=0),
             helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T"])],
                   [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", None])],
                   [_i64("one", [1]), _i64("two_end", [2]), _i64("two", [2])])
    g = gf.from_onnx(model)
    assert [str(o.type) for o in g.outputs] == ["f32[N,2]", "f32[N,T-2]"]
    for n, t in ((1, 3), (2, 6)):
        feeds = _feeds({"x": (n, t)}, t)
        for backend in BACKENDS:
            a, b = gf.run(g, feeds, backend=backend)
            np.testing.assert_array_equal(a, feeds["x"][:, :2])
            np.testing.assert_array_equal(b, feeds["x"][:, 2:])


def test_pad_to_a_multiple_computed_from_shape():
    """Swin's pad to a multiple of the window: pads = [0, 0, 1, 0, 0, 0, (4 - H % 4) % 4, (4 - W % 4) % 4]."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
             helper.make_node("Mod", ["hw", "win"], ["r"]),
             helper.make_node("Sub", ["win", "r"], ["d"]),
             helper.make_node("Mod", ["d", "win"], ["ends"]),
             helper.make_node("Concat", ["begins", "zeros2", "ends"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode="constant")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, None, None])],
                   [_i64("two", [2]), _i64("four", [4]), _i64("win", [4]), _i64("begins", [0, 0, 1, 0]),
                    _i64("zeros2", [0, 0]), numpy_helper.from_array(np.array(-1.5, np.float32), "value")])
    g = _check(model, [_feeds({"x": (n, 2, h, w)}, h) for n, h, w in ((1, 3, 4), (2, 5, 7))],
               ["f32[N,2,4*H-4*floor((3*H)/4)+1,4*W-4*floor((3*W)/4)]"])  # H + (4 - H % 4) % 4, canonical
    assert g.outputs[0].producer.op == "concat"


def _pad_by_shape_model(mode):
    """pads = [0, 0, 1, 2, 0, 0, H // 2, W - 1] computed from Shape (ends from the input's own size)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
             helper.make_node("Div", ["hw", "div"], ["q"]),
             helper.make_node("Sub", ["q", "sub"], ["ends"]),
             helper.make_node("Concat", ["begins", "zeros2", "ends"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, None, None])],
                  [_i64("two", [2]), _i64("four", [4]), _i64("div", [2, 1]), _i64("sub", [0, 1]),
                   _i64("begins", [0, 0, 1, 2]), _i64("zeros2", [0, 0])])


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_edge_and_reflect_pad_by_amounts_computed_from_shape(mode):
    """Pad mode=edge/reflect fed by Shape arithmetic imports as one ``pad`` node with dim amounts and
    runs at sizes the model never saw, like onnxruntime on the original file."""
    g = _check(_pad_by_shape_model(mode), [_feeds({"x": (n, 2, h, w)}, h) for n, h, w in ((1, 3, 4), (2, 6, 5))],
               ["f32[N,2,H+floor(H/2)+1,2*W+1]"])
    (node,) = [n for n in g.nodes if n.op == "pad"]
    assert node.attrs["mode"] == mode and node.attrs["pads"] == [0, 0, 0, 0, 1, "floor(H/2)", 2, "W-1"]


def test_reflect_pad_by_a_run_time_amount_guards_pad_below_the_dim():
    """Reflect needs each pad smaller than its axis: with W = 2 the begin pad 2 is not, and binding says
    so, naming the constraint (ONNX would fail inside the kernel)."""
    g = gf.from_onnx(_pad_by_shape_model("reflect"))
    with pytest.raises(gf.InputError, match=r"3 <= W.*W = 2"):
        gf.run(g, _feeds({"x": (1, 2, 4, 2)}), backend="reference")
