"""Importing dynamic-shape ONNX: shape tensors computed from ``Shape`` at run time (the
``Shape → Gather → Concat → Reshape`` pattern of dynamic-batch exports) import with symbolic dims
and run at sizes other than any fixed one on every back end."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphforge as gf

BACKENDS = ("reference", "jax", "onnxruntime")


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "dynamic", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _batch_model():
    """x: (N, 32) -> reshape to (N, 4, 8); bias expanded to (N, 8); ones of (N, 3)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["bu"]),
        helper.make_node("Concat", ["bu", "four", "eight"], ["shape3"], axis=0),
        helper.make_node("Reshape", ["x", "shape3"], ["y"]),
        helper.make_node("Concat", ["bu", "eight"], ["shape2"], axis=0),
        helper.make_node("Expand", ["bias", "shape2"], ["e"]),
        helper.make_node("Concat", ["bu", "three"], ["shape_ones"], axis=0),
        helper.make_node("ConstantOfShape", ["shape_ones"], ["ones"],
                         value=numpy_helper.from_array(np.array([1.0], np.float32))),
        helper.make_node("Mul", ["b", "two"], ["b2"]),                     # shape arithmetic
        helper.make_node("Unsqueeze", ["b2", "axes0"], ["b2u"]),
        helper.make_node("Concat", ["b2u", "sixteen"], ["shape_half"], axis=0),
        helper.make_node("Reshape", ["x", "shape_half"], ["h"]),
    ]
    inits = [_i64("zero", 0), _i64("axes0", [0]), _i64("four", [4]), _i64("eight", [8]), _i64("three", [3]),
             _i64("two", 2), _i64("sixteen", [16]),
             numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(1, 8), "bias")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8]),
                   helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 8]),
                   helper.make_tensor_value_info("ones", TensorProto.FLOAT, ["N", 3]),
                   helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, 16])], inits)


def _length_model():
    """x: (N, S) -> Range(0, S), x[:, :S-1]."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Sub", ["n", "one"], ["n1"]),
        helper.make_node("Unsqueeze", ["n1", "axes0"], ["ends"]),
        helper.make_node("Slice", ["x", "starts", "ends", "axes1"], ["sl"]),
    ]
    inits = [_i64("zero", 0), _i64("one", 1), _i64("axes0", [0]), _i64("starts", [0]), _i64("axes1", [1])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"])],
                  [helper.make_tensor_value_info("r", TensorProto.INT64, ["S"]),
                   helper.make_tensor_value_info("sl", TensorProto.FLOAT, ["N", None])], inits)


def test_shape_gather_concat_reshape_expand_constantofshape_import_symbolically():
    g = gf.from_onnx(_batch_model())
    assert [str(o.type) for o in g.outputs] == ["f32[N,4,8]", "f32[N,8]", "f32[N,3]", "f32[2*N,16]"]
    for n in (1, 3, 6):
        x = np.random.default_rng(n).standard_normal((n, 32)).astype(np.float32)
        want = [x.reshape(n, 4, 8), np.broadcast_to(np.arange(8, dtype=np.float32), (n, 8)),
                np.ones((n, 3), np.float32), x.reshape(2 * n, 16)]
        for backend in BACKENDS:
            for got, exp in zip(gf.run(g, [x], backend=backend), want):
                np.testing.assert_allclose(got, exp)


def test_range_and_slice_bounds_from_run_time_shapes():
    g = gf.from_onnx(_length_model())
    assert [str(o.type) for o in g.outputs] == ["i64[S]", "f32[N,S-1]"]
    for n, s in ((2, 5), (1, 9)):
        x = np.random.default_rng(s).standard_normal((n, s)).astype(np.float32)
        for backend in BACKENDS:
            r, sl = gf.run(g, [x], backend=backend)
            np.testing.assert_array_equal(r, np.arange(s))
            np.testing.assert_array_equal(sl, x[:, : s - 1])


def test_min_and_max_of_run_time_dims_import_as_dim_expressions():
    """Found by the fuzz tier's import(export(g)) oracle (seed 58): graphforge writes a bound like
    ``min(floor((S+1)/2), floor(S/2)+1)`` as Shape → Div/Add → Min; Min and Max of dims fold too."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Add", ["n", "one"], ["n1"]),
        helper.make_node("Div", ["n1", "two"], ["a"]),
        helper.make_node("Div", ["n", "two"], ["b0"]),
        helper.make_node("Add", ["b0", "one"], ["b"]),
        helper.make_node("Min", ["a", "b"], ["lo"]),
        helper.make_node("Max", ["a", "b", "three"], ["hi"]),
        helper.make_node("Unsqueeze", ["lo", "axes0"], ["ends"]),
        helper.make_node("Slice", ["x", "starts", "ends", "axes1"], ["head"]),
        helper.make_node("Unsqueeze", ["hi", "axes0"], ["hi1"]),
        helper.make_node("Concat", ["hi1", "hi1"], ["shape"], axis=0),
        helper.make_node("ConstantOfShape", ["shape"], ["square"],
                         value=numpy_helper.from_array(np.array([2.0], np.float32))),
    ]
    inits = [_i64("one", 1), _i64("two", 2), _i64("three", 3), _i64("axes0", [0]), _i64("starts", [0]),
             _i64("axes1", [1])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"])],
                   [helper.make_tensor_value_info("head", TensorProto.FLOAT, ["N", None]),
                    helper.make_tensor_value_info("square", TensorProto.FLOAT, [None, None])], inits)
    g = gf.from_onnx(model)
    assert "S" in str(g.outputs[0].type) and "min" in str(g.outputs[0].type)
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for s in (1, 4, 7):
        x = np.random.default_rng(s).standard_normal((2, s)).astype(np.float32)
        want = sess.run(None, {"x": x})
        for backend in BACKENDS:
            for got, exp in zip(gf.run(g, [x], backend=backend), want):
                np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("op,attrs", [("GatherElements", {"axis": 1}), ("GatherElements", {"axis": 0}),
                                      ("ScatterElements", {"axis": 1}),
                                      ("ScatterElements", {"axis": 1, "reduction": "add"}),
                                      ("ScatterElements", {"axis": 0, "reduction": "mul"}),
                                      ("ScatterElements", {"axis": -1, "reduction": "max"})])
def test_gather_and_scatter_elements_with_symbolic_shapes(op, attrs):
    """Found by the fuzz tier's import(export(g)) oracle (seeds 154, 159, …): graphforge's own
    ``scatter_add`` on a symbolic batch exports as ScatterElements, which imported only with static
    shapes (its index grid was a constant). The grid is built at run time from ``arange`` now."""
    import onnxruntime as ort

    gather = op == "GatherElements"
    ins = ["x", "i"] if gather else ["x", "i", "u"]
    specs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"]),
             helper.make_tensor_value_info("i", TensorProto.INT64, ["N", 3])]
    if not gather:
        specs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, ["N", 3]))
    model = _model([helper.make_node(op, ins, ["y"], **attrs)], specs,
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3] if gather else ["N", "S"])], [])
    g = gf.from_onnx(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, s in ((2, 4), (5, 3)):
        rng = np.random.default_rng(n)
        axis = attrs["axis"] % 2
        size = (n, s)[axis]
        if gather or attrs.get("reduction"):
            i = rng.integers(-size, size, (n, 3))
        else:  # without a reduction, ONNX leaves duplicate indices undefined: distinct ones per row
            i = np.stack([rng.permutation(size)[:3] for _ in range(n)])
        feeds = {"x": rng.standard_normal((n, s)).astype(np.float32), "i": i.astype(np.int64)}
        if not gather:
            feeds["u"] = rng.standard_normal((n, 3)).astype(np.float32)
        want = sess.run(None, feeds)[0]
        for backend in BACKENDS:
            np.testing.assert_allclose(gf.run(g, feeds, backend=backend)[0], want, rtol=1e-6, err_msg=backend)


@pytest.mark.parametrize("op,attrs", [("GatherND", {}), ("GatherND", {"batch_dims": 1}), ("ScatterND", {}),
                                      ("ScatterND", {"reduction": "add"}), ("ScatterND", {"reduction": "max"})])
def test_gather_and_scatter_nd_with_symbolic_shapes(op, attrs):
    """PyTorch's dynamic-shape exports of advanced indexing and ``index_put`` give GatherND/ScatterND
    on a symbolic batch: they import (index depth static, everything else symbolic)."""
    import onnxruntime as ort

    gather = op == "GatherND"
    b = attrs.get("batch_dims", 0)
    idx_shape = ["N", 2, 1] if b else ["K", 2]
    specs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S", 3]),
             helper.make_tensor_value_info("i", TensorProto.INT64, idx_shape)]
    ins = ["x", "i"]
    if not gather:
        specs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, ["K", 3]))
        ins.append("u")
    out_shape = (["N", 2, 3] if b else ["K", 3]) if gather else ["N", "S", 3]
    model = _model([helper.make_node(op, ins, ["y"], **attrs)], specs,
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], [])
    g = gf.from_onnx(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, s, k in ((2, 4, 3), (4, 3, 5)):
        rng = np.random.default_rng(n)
        feeds = {"x": rng.standard_normal((n, s, 3)).astype(np.float32)}
        if b:
            feeds["i"] = rng.integers(-s, s, (n, 2, 1))
        elif gather or attrs.get("reduction"):
            feeds["i"] = np.stack([rng.integers(-n, n, k), rng.integers(-s, s, k)], axis=1)
        else:  # without a reduction, duplicate index tuples are undefined: distinct ones
            cells = rng.permutation(n * s)[:k]
            feeds["i"] = np.stack([cells // s, cells % s], axis=1)
        feeds["i"] = feeds["i"].astype(np.int64)
        if not gather:
            feeds["u"] = rng.standard_normal((k, 3)).astype(np.float32)
        want = sess.run(None, feeds)[0]
        for backend in BACKENDS:
            np.testing.assert_allclose(gf.run(g, feeds, backend=backend)[0], want, rtol=1e-6, err_msg=backend)


def test_a_shape_used_as_data_is_computed_at_run_time():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Mul", ["s", "two"], ["s2"]),
             helper.make_node("Cast", ["s2"], ["f"], to=TensorProto.FLOAT)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                   [helper.make_tensor_value_info("f", TensorProto.FLOAT, [2])], [_i64("two", 2)])
    g = gf.from_onnx(model)
    for backend in BACKENDS:
        np.testing.assert_array_equal(gf.run(g, [np.zeros((5, 3), np.float32)], backend=backend)[0], [10.0, 6.0])


def test_ops_that_need_a_static_value_still_say_so():
    # TopK's k sizes its output: a k computed from a symbolic dim would need a data-dependent length
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["k"]),
             helper.make_node("TopK", ["x", "k"], ["t", "i"], axis=1)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [None, None])],
                   [_i64("zero", [0]), _i64("one", [1])])
    from graphforge.runtimes.onnx_import import NeedsConstantError

    with pytest.raises(NeedsConstantError, match="K"):
        gf.from_onnx(model)
