"""ONNX sequences and optionals resolved at import time (runtimes/onnx_import/sequences.py): each model
is checked against onnx's reference evaluator on the reference and JAX back ends; data-dependent
lengths are typed errors naming the node."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import graphforge as gf  # noqa: E402
from graphforge.errors import LoadError, UnsupportedOpError  # noqa: E402

F = TensorProto.FLOAT
BACKENDS = ("reference", "jax")


def _i64(name, vals):
    return helper.make_tensor(name, TensorProto.INT64, [len(vals)] if isinstance(vals, list) else [],
                              vals if isinstance(vals, list) else [vals])


def _model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "seq", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _check(model, feeds):
    want = ReferenceEvaluator(model).run(None, feeds)
    g = gf.from_onnx(model)
    for backend in BACKENDS:
        got = gf.run(g, [feeds[vi.name] for vi in model.graph.input], backend=backend)
        got = got if isinstance(got, (list, tuple)) else [got]
        for w, a in zip(want, got):
            np.testing.assert_allclose(np.asarray(a), w, rtol=1e-6, err_msg=backend)
    return g


def test_split_to_sequence_and_sequence_at_like_dynamo_mha():
    # torch.onnx (dynamo) splits the packed q/k/v projection with SplitToSequence + SequenceAt
    nodes = [helper.make_node("SplitToSequence", ["x", "split"], ["s"], axis=-1),
             helper.make_node("SequenceAt", ["s", "i0"], ["q"]),
             helper.make_node("SequenceAt", ["s", "i1"], ["k"]),
             helper.make_node("SequenceAt", ["s", "im1"], ["v"]),
             helper.make_node("MatMul", ["q", "kt"], ["qk"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["qk", "v"], ["y"])]
    nodes = [nodes[0], nodes[1], nodes[2], nodes[3], nodes[5], nodes[4], nodes[6]]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3, 12])],
               [helper.make_tensor_value_info("y", F, [2, 3, 4])],
               [_i64("split", [4, 4, 4]), _i64("i0", 0), _i64("i1", 1), _i64("im1", -1)])
    g = _check(m, {"x": np.random.default_rng(0).standard_normal((2, 3, 12)).astype(np.float32)})
    assert g.op_counts().get("split") == 1


@pytest.mark.parametrize("new_axis", [0, 1])
def test_construct_insert_erase_concat(new_axis):
    nodes = [helper.make_node("SequenceConstruct", ["a", "b"], ["s0"]),
             helper.make_node("SequenceInsert", ["s0", "c", "zero"], ["s1"]),
             helper.make_node("SequenceInsert", ["s1", "a"], ["s2"]),
             helper.make_node("SequenceErase", ["s2", "one"], ["s3"]),
             helper.make_node("ConcatFromSequence", ["s3"], ["y"], axis=0, new_axis=new_axis),
             helper.make_node("SequenceLength", ["s3"], ["n"])]
    shape = [3, 2, 2] if new_axis else [6, 2]
    m = _model(nodes, [helper.make_tensor_value_info(n, F, [2, 2]) for n in "abc"],
               [helper.make_tensor_value_info("y", F, shape), helper.make_tensor_value_info("n", TensorProto.INT64, [])],
               [_i64("zero", 0), _i64("one", 1)])
    rng = np.random.default_rng(1)
    _check(m, {n: rng.standard_normal((2, 2)).astype(np.float32) for n in "abc"})


@pytest.mark.parametrize("split,keepdims,shape", [(None, 0, [5, 2]), (None, 1, [5, 2, 1]), (2, 1, [2, 5])])
def test_split_to_sequence_variants(split, keepdims, shape):
    ins = ["x"] + (["sp"] if split is not None else [])
    # chunks 2,2,1 cannot be stacked: they are concatenated back along the split axis
    cat = dict(axis=1, new_axis=0) if split is not None else dict(axis=0, new_axis=1)
    nodes = [helper.make_node("SplitToSequence", ins, ["s"], axis=1, keepdims=keepdims),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], **cat)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 5])],
               [helper.make_tensor_value_info("y", F, shape)], [_i64("sp", 2)] if split is not None else [])
    _check(m, {"x": np.arange(10, dtype=np.float32).reshape(2, 5)})


def test_sequence_map_imports_the_body_per_element():
    body = helper.make_graph([helper.make_node("Add", ["e", "t"], ["o"])], "body",
                             [helper.make_tensor_value_info("e", F, None), helper.make_tensor_value_info("t", F, None)],
                             [helper.make_tensor_value_info("o", F, None)])
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=0, keepdims=0),
             helper.make_node("SequenceMap", ["s", "t"], ["m"], body=body),
             helper.make_node("ConcatFromSequence", ["m"], ["y"], axis=0, new_axis=1)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [3, 4]), helper.make_tensor_value_info("t", F, [4])],
               [helper.make_tensor_value_info("y", F, [3, 4])])
    g = _check(m, {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "t": np.ones(4, np.float32)})
    assert g.op_counts().get("add") == 3


@pytest.mark.parametrize("present", [True, False])
def test_optional_has_and_get_element(present):
    nodes = [helper.make_node("Optional", ["x"] if present else [], ["o"],
                              **({} if present else {"type": helper.make_tensor_type_proto(F, [2])})),
             helper.make_node("OptionalHasElement", ["o"], ["h"]),
             helper.make_node("Identity", ["o"], ["o2"])]
    outs = [helper.make_tensor_value_info("h", TensorProto.BOOL, [])]
    if present:
        nodes.append(helper.make_node("OptionalGetElement", ["o2"], ["y"]))
        nodes.append(helper.make_node("Relu", ["y"], ["r"]))
        outs.append(helper.make_tensor_value_info("r", F, [2]))
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [2])], outs)
    g = gf.from_onnx(m)
    got = gf.run(g, [np.array([-1.0, 2.0], np.float32)], backend="reference")
    got = got if isinstance(got, (list, tuple)) else [got]
    assert bool(np.asarray(got[0])) is present
    if present:
        np.testing.assert_allclose(got[1], [0.0, 2.0])


def test_get_element_of_empty_optional_is_a_typed_error():
    nodes = [helper.make_node("Optional", [], ["o"], type=helper.make_tensor_type_proto(F, [2])),
             helper.make_node("OptionalGetElement", ["o"], ["y"])]
    m = _model(nodes, [], [helper.make_tensor_value_info("y", F, [2])])
    with pytest.raises(LoadError, match="empty"):
        gf.from_onnx(m, check=False)


def test_data_dependent_split_length_names_the_node():
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=0, name="split_me"),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, ["n", 2])],
               [helper.make_tensor_value_info("y", F, ["n", 2])])
    with pytest.raises(UnsupportedOpError, match="split_me"):
        gf.from_onnx(m)


def test_sequence_where_a_tensor_is_due_is_a_typed_error():
    nodes = [helper.make_node("SequenceConstruct", ["x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"], name="bad_relu")]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [2])], [helper.make_tensor_value_info("y", F, [2])])
    with pytest.raises(UnsupportedOpError, match="bad_relu"):
        gf.from_onnx(m, check=False)


def test_onnx_loop16_seq_none_case_matches_exactly():
    # onnx's own comparator cannot run this case (a 0-d sequence element): compare here instead
    from onnx.backend.test.loader import load_node_model_tests

    from graphforge.runtimes.onnx_backend import prepare

    case = next(c for c in load_node_model_tests() if c.name == "test_loop16_seq_none")
    (ins, want), = case.data_sets
    got = prepare(case.model).run(ins)
    assert len(got) == 1 and len(got[0]) == len(want[0])
    for a, w in zip(got[0], want[0]):
        assert a.dtype == w.dtype and a.shape == w.shape
        np.testing.assert_array_equal(a, w)


def test_from_onnx_structured_flattens_sequence_outputs_and_inputs():
    from graphforge.runtimes.onnx_import.importer import from_onnx_structured
    from graphforge.runtimes.onnx_import.sequences import regroup

    seq_t = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, ["N"]))
    nodes = [helper.make_node("SequenceInsert", ["s", "t"], ["o"])]
    m = _model(nodes, [helper.make_value_info("s", seq_t), helper.make_tensor_value_info("t", F, ["N"])],
               [helper.make_value_info("o", seq_t)])
    with pytest.raises(UnsupportedOpError, match="'s'"):
        gf.from_onnx(m)
    xs = [np.ones(3, np.float32), np.zeros(3, np.float32)]
    g, structure = from_onnx_structured(m, aggregate_inputs={"s": xs})
    assert g.output_names == ["o[0]", "o[1]", "o[2]"]
    out = gf.run(g, {"s__0": xs[0], "s__1": xs[1], "t": np.full(3, 2, np.float32)}, backend="reference")
    got, = regroup(structure, list(out))
    np.testing.assert_array_equal(np.stack(got), [[1, 1, 1], [0, 0, 0], [2, 2, 2]])


def test_split_to_sequence_with_empty_pieces():
    nodes = [helper.make_node("SplitToSequence", ["x", "sp"], ["s"], axis=0),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [3, 2])],
               [helper.make_tensor_value_info("n", TensorProto.INT64, []), helper.make_tensor_value_info("y", F, [3, 2])],
               [_i64("sp", [0, 3, 0])])
    _check(m, {"x": np.arange(6, dtype=np.float32).reshape(3, 2)})


@pytest.mark.parametrize("backend", ["reference", "jax", "onnxruntime"])
def test_dynamo_export_with_split_to_sequence_imports_and_matches_pytorch(backend):
    # torch.onnx dynamo, optimize=False: q/k/v come from SplitToSequence + SequenceAt
    # (fixture: tests/fixtures/make_mha_sequence_fixture.py)
    import os

    fixtures = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
    model = onnx.load(os.path.join(fixtures, "seq_mha_dynamo_noopt.onnx"))
    assert {"SplitToSequence", "SequenceAt"} <= {n.op_type for n in model.graph.node}
    with np.load(os.path.join(fixtures, "seq_mha_dynamo_noopt.npz")) as z:
        x, want = z["x"], z["y"]
    g = gf.from_onnx(model)
    assert g.op_counts().get("split") == 1
    out = gf.run(g, [x], backend=backend)
    np.testing.assert_allclose(out[0] if isinstance(out, (list, tuple)) else out, want, rtol=1e-4, atol=1e-5)
