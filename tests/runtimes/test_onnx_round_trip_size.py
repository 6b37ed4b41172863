"""Round trips stay small: a model imported and exported again has no more nodes than it had, for the
ONNX ops that map onto one registry op each (Clip, IsNaN, IsInf, Floor, Round, Mod, Bitwise*, ...),
and the re-exported model computes what the original does in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphforge as gf  # noqa: E402

OPSET = 21
F, I32, U8 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.UINT8


def _model(nodes, inputs, outputs, inits=()):
    m = helper.make_model(helper.make_graph(nodes, "t", inputs, outputs, list(inits)),
                          opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 10
    return m


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def _float_chain():
    inits = [numpy_helper.from_array(np.array(-1.5, np.float32), "lo"),
             numpy_helper.from_array(np.array(2.5, np.float32), "hi"),
             numpy_helper.from_array(np.array(0.75, np.float32), "d")]
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
             helper.make_node("Floor", ["c"], ["f"]),
             helper.make_node("Ceil", ["f"], ["g"]),
             helper.make_node("Round", ["x"], ["r"]),
             helper.make_node("Mod", ["r", "d"], ["m"], fmod=1),
             helper.make_node("Atan", ["m"], ["t"]),
             helper.make_node("Sinh", ["t"], ["s"]),
             helper.make_node("Add", ["g", "s"], ["y"]),
             helper.make_node("IsNaN", ["y"], ["nan"]),
             helper.make_node("IsInf", ["x"], ["inf"], detect_negative=0)]
    return _model(nodes, [_vi("x", F, [3, 4])],
                  [_vi("y", F, [3, 4]), _vi("nan", TensorProto.BOOL, [3, 4]), _vi("inf", TensorProto.BOOL, [3, 4])],
                  inits)


def _int_chain():
    nodes = [helper.make_node("BitwiseAnd", ["a", "b"], ["x"]),
             helper.make_node("BitwiseXor", ["x", "a"], ["y"]),
             helper.make_node("BitwiseOr", ["y", "b"], ["z"]),
             helper.make_node("BitwiseNot", ["z"], ["w"]),
             helper.make_node("Mod", ["w", "k"], ["out"])]
    k = numpy_helper.from_array(np.array([3, -4, 5, 7, -2], np.int32), "k")  # a constant, non-zero divisor
    return _model(nodes, [_vi("a", I32, [2, 5]), _vi("b", I32, [2, 5])], [_vi("out", I32, [2, 5])], [k])


def _shift_chain():
    nodes = [helper.make_node("BitShift", ["a", "k"], ["x"], direction="LEFT"),
             helper.make_node("BitShift", ["x", "k"], ["out"], direction="RIGHT")]
    k = numpy_helper.from_array(np.array([0, 1, 2, 3, 5, 7], np.uint8), "k")  # constant, in-range amounts
    return _model(nodes, [_vi("a", U8, [6])], [_vi("out", U8, [6])], [k])


def _feeds(model):
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == F:
            x = (rng.standard_normal(shape) * 3).astype(np.float32)
            x.flat[0], x.flat[1] = np.inf, -np.inf
            feeds[vi.name] = x
        elif vi.type.tensor_type.elem_type == U8:
            feeds[vi.name] = rng.integers(0, 9 if vi.name == "b" else 255, size=shape).astype(np.uint8)
        else:
            feeds[vi.name] = rng.integers(1, 50, size=shape).astype(np.int32)
    return feeds


def _ort_run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("make", [_float_chain, _int_chain, _shift_chain], ids=["float", "int", "shift"])
def test_import_export_does_not_grow(make):
    model = make()
    graph = gf.from_onnx(model)
    again = gf.to_onnx(graph, opset=OPSET)
    before = [n.op_type for n in model.graph.node]
    after = [n.op_type for n in again.graph.node]
    assert len(after) <= len(before), (before, after)
    # op for op where onnxruntime has the kernel: nothing was spelled with other ops
    assert sorted(after) == sorted(before), (before, after)
    feeds = _feeds(model)
    for got, want in zip(_ort_run(again, feeds), _ort_run(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_clip_exports_as_one_clip_node():
    g = gf.trace(lambda x: gf.clip(x, -1.0, 1.0), gf.TensorSpec(("n", 4)))
    proto = gf.to_onnx(g)
    assert [n.op_type for n in proto.graph.node] == ["Clip"]
    g1 = gf.trace(lambda x: gf.clip(x, min=0.5), gf.TensorSpec((4,)))
    assert [n.op_type for n in gf.to_onnx(g1).graph.node] == ["Clip"]
    x = np.array([-3.0, 0.2, 0.9, 5.0], np.float32)
    np.testing.assert_array_equal(gf.run(g1, {"x": x}, backend="onnxruntime")[0], np.maximum(x, 0.5))


def test_isnan_and_isinf_export_natively():
    g = gf.trace(lambda x: (gf.isnan(x), gf.isinf(x, detect_positive=False)), gf.TensorSpec((3,)))
    assert sorted(n.op_type for n in gf.to_onnx(g).graph.node) == ["IsInf", "IsNaN"]
    x = np.array([np.nan, -np.inf, np.inf], np.float32)
    nan, inf = gf.run(g, {"x": x}, backend="onnxruntime")
    np.testing.assert_array_equal(nan, [True, False, False])
    np.testing.assert_array_equal(inf, [False, True, False])
