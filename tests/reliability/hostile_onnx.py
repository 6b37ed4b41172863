"""Hostile ONNX files for the corpus in test_hostile_inputs.py: memory bombs the import budget must
refuse, external data that lies about its size, opsets graphforge does not know, protobuf fields that
contradict each other. Each builder returns the bytes of a model (and writes side files itself)."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["model_bytes", "BUDGET_BOMBS", "external_model", "write_sparse", "MUTATIONS", "TIB"]

TIB = 1 << 40
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def model_bytes(nodes, inputs, outputs, inits=(), opset=21) -> bytes:
    g = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _f32(name, values):
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


M = 1 << 20  # a 2**20 x 2**20 float32 tensor is 4 TiB
# name -> (model bytes, words the error must contain). Every one asks the importer to build a
# terabyte-scale NumPy array that no run-time op can stand in for.
BUDGET_BOMBS = {
    "eyelike": (lambda: model_bytes([helper.make_node("EyeLike", ["x"], ["y"], name="bomb")],
                                    [("x", F, [M, M])], [("y", F, [M, M])]), ("bomb", "EyeLike", "TiB", "budget")),
    "trilu": (lambda: model_bytes([helper.make_node("Trilu", ["x"], ["y"], name="bomb")],
                                  [("x", F, [M, M])], [("y", F, [M, M])]), ("bomb", "Trilu", "TiB", "budget")),
    "gather-elements": (lambda: model_bytes(
        [helper.make_node("GatherElements", ["x", "i"], ["y"], name="bomb", axis=0)],
        [("x", F, [M, M]), ("i", I64, [M, M])], [("y", F, [M, M])]), ("bomb", "index grid", "budget")),
    "scatter-elements": (lambda: model_bytes(
        [helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], name="bomb", axis=0)],
        [("x", F, [M, M]), ("i", I64, [M, M]), ("u", F, [M, M])], [("y", F, [M, M])]),
        ("bomb", "index grid", "budget")),
    "gather-nd": (lambda: model_bytes(
        [helper.make_node("GatherND", ["x", "i"], ["y"], name="bomb", batch_dims=1)],
        [("x", F, [M, M]), ("i", I64, [M, M, 1])], [("y", F, [M, M])]), ("bomb", "index grid", "budget")),
    "attention-bias": (lambda: model_bytes(
        [helper.make_node("Attention", ["q", "k", "v", "m"], ["y"], name="bomb", is_causal=1)],
        [("q", F, [1, 1, M, 8]), ("k", F, [1, 1, M, 8]), ("v", F, [1, 1, M, 8]), ("m", TensorProto.BOOL, [1, 1, M, M])],
        [("y", F, [1, 1, M, 8])],
        opset=23), ("bomb", "attention bias", "budget")),
    "resize-weights": (lambda: model_bytes(
        [helper.make_node("Resize", ["x", "", "", "s"], ["y"], name="bomb", mode="linear")],
        [("x", F, [1, 1, 4, M])], [("y", F, [1, 1, 8, 2 * M])], [_i64("s", [1, 1, 8, 2 * M])]),
        ("bomb", "resize weights", "budget")),
    "reduce-max-empty": (lambda: model_bytes(
        [helper.make_node("ReduceMax", ["x", "a"], ["y"], name="bomb", keepdims=1)],
        [("x", F, [0, M, M])], [("y", F, [1, M, M])], [_i64("a", [0])]), ("bomb", "empty-reduction", "budget")),
    "range-infinite": (lambda: model_bytes(
        [helper.make_node("Range", ["a", "b", "d"], ["y"], name="bomb")], [("x", F, [1])], [("y", F, [None])],
        [_f32("a", 0.0), _f32("b", np.inf), _f32("d", 1.0)]), ("bomb", "finite")),
    "range-nan-delta": (lambda: model_bytes(
        [helper.make_node("Range", ["a", "b", "d"], ["y"], name="bomb")], [("x", F, [1])], [("y", F, [None])],
        [_f32("a", 0.0), _f32("b", 5.0), _f32("d", np.nan)]), ("bomb", "finite")),
    "constant-of-shape-negative": (lambda: model_bytes(
        [helper.make_node("ConstantOfShape", ["s"], ["c"], name="bomb"), helper.make_node("Add", ["c", "x"], ["y"])],
        [("x", F, [1])], [("y", F, [4, 3])], [_i64("s", [-4, 3])]), ("negative",)),
    "tile-negative": (lambda: model_bytes(
        [helper.make_node("Tile", ["x", "r"], ["y"], name="bomb")], [("x", F, [3])], [("y", F, [3])],
        [_i64("r", [-(1 << 40)])]), ("bomb",)),
}


def write_sparse(path: str, size: int) -> None:
    """A file of ``size`` bytes that uses no disk (a hole): a 6 GiB weights file costs nothing."""
    with open(path, "wb") as f:
        f.truncate(size)


def external_model(location="w.bin", *, dims=(3, 4), dtype=F, offset=None, length=None) -> bytes:
    """A model whose (3, 4) weight lives in external data with the given entries."""
    t = TensorProto(name="w", data_type=dtype, dims=list(dims))
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            t.external_data.add(key=k, value=str(v))
    return model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [("x", F, list(dims))],
                       [("y", F, list(dims))], [t])


def _good():
    return onnx.load_model_from_string(model_bytes(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="act")],
        [("x", F, [2, 4])], [("y", F, [2, 3])], [_f32("w", np.ones((4, 3)))]))


def _mutated(fn):
    def build():
        m = _good()
        fn(m)
        return m.SerializeToString()
    return build


def _truncate(m):
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:20]


def _dims(m):
    m.graph.initializer[0].dims[:] = [4, 4]


def _elem(m):
    m.graph.input[0].type.tensor_type.elem_type = 999


def _cycle(m):
    m.graph.node[0].input[0] = "y"


def _dup_output(m):
    m.graph.node[0].output[0] = "y"


def _rank(m):
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 7


def _attr_type(m):
    m.graph.node[0].attribute.add(name="alpha", type=onnx.AttributeProto.STRING, s=b"x")


def _bad_data_type(m):
    m.graph.initializer[0].data_type = 77


# name -> (model bytes, words): protobuf fields flipped so the file contradicts itself
MUTATIONS = {
    "truncated-initializer": (_mutated(_truncate), ("onnx",)),
    "initializer-dims-disagree": (_mutated(_dims), ("onnx",)),
    "element-type-999": (_mutated(_elem), ("999",)),
    "node-cycle": (_mutated(_cycle), ("onnx",)),
    "duplicate-output": (_mutated(_dup_output), ("onnx",)),
    "declared-shape-disagrees": (_mutated(_rank), ("onnx",)),
    "unknown-attribute": (_mutated(_attr_type), ("alpha",)),
    "initializer-data-type-77": (_mutated(_bad_data_type), ("onnx",)),
}


def opset_model(version: int) -> bytes:
    return model_bytes([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])], opset=version)


def tiny_eyelike(n=64) -> bytes:
    return model_bytes([helper.make_node("EyeLike", ["x"], ["y"], name="eye")], [("x", F, [n, n])], [("y", F, [n, n])])


def mkdir_for(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
