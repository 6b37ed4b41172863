"""runtimes/onnx/export.py: nodes that separate lowerings emitted twice (same op, inputs and
attributes) are written once; random ops and nodes with subgraphs never merge."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from onnx import helper

import graphforge as gf
from graphforge import nn
from graphforge.runtimes.onnx import to_onnx
from graphforge.runtimes.onnx.export import _merge_duplicates


def _node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def test_duplicates_merge_and_their_readers_follow():
    nodes = [_node("Shape", ["x"], ["s1"]), _node("Shape", ["x"], ["s2"]),
             _node("Cast", ["s2"], ["c1"], to=1), _node("Cast", ["s1"], ["c2"], to=1),
             _node("Cast", ["s1"], ["c3"], to=7),  # another attribute: another value
             _node("Add", ["c1", "c2"], ["y"])]
    kept, same = _merge_duplicates(nodes)
    assert [n.output[0] for n in kept] == ["s1", "c1", "c3", "y"]
    assert same == {"s2": "s1", "c2": "c1"}
    assert list(kept[-1].input) == ["c1", "c1"]


def test_random_ops_and_subgraph_nodes_never_merge():
    body = helper.make_graph([_node("Identity", ["s2"], ["o"])], "body", [], [])
    nodes = [_node("RandomNormal", [], ["r1"], shape=[2]), _node("RandomNormal", [], ["r2"], shape=[2]),
             _node("Shape", ["x"], ["s1"]), _node("Shape", ["x"], ["s2"]),
             _node("If", ["cond"], ["i1"], then_branch=body, else_branch=body),
             _node("If", ["cond"], ["i2"], then_branch=body, else_branch=body)]
    kept, same = _merge_duplicates(nodes)
    assert [n.op_type for n in kept] == ["RandomNormal", "RandomNormal", "Shape", "If", "If"]
    assert same == {"s2": "s1"}
    # the subgraphs' outer read of the merged value is renamed too
    assert all(list(n.attribute[0].g.node[0].input) == ["s1"] for n in kept if n.op_type == "If")


def test_training_encoder_writes_each_dropout_helper_once():
    pytest.importorskip("onnxruntime")
    enc = nn.TransformerEncoder(num_layers=2, d_model=16, nhead=2, dim_feedforward=32, dropout=0.1)
    g = gf.trace(enc, gf.TensorSpec(("batch", 5, 16)), seed=0)  # training mode: dropout draws
    ops = collections.Counter(n.op_type for n in to_onnx(g).graph.node)
    dropouts = [n for n in g.nodes if n.op == "dropout"]
    shapes = {tuple(map(str, n.inputs[0].type.shape)) for n in dropouts}
    # 8 dropouts over 3 shapes: one element counter (Range + Cast) per shape, not per dropout
    assert len(dropouts) == 8 and ops["Range"] == ops["Cast"] == len(shapes) == 3, ops
    x = np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x], backend="reference")[0],
                               rtol=1e-4, atol=1e-4)  # the same dropout draws on both
