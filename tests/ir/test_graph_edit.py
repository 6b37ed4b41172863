"""Graph editing through the IR's own methods, toposort, verify() and networkx export."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import VerifyError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.ir.types import TensorType
from graphforge.trace.builder import Builder

F = TensorType((2, 3), "float32")


def small_graph():
    """x -> a = exp(x) -> b = neg(a) -> c = add(a, b); outputs c."""
    g = Graph("small")
    x = g.add_input("x", F)
    b = Builder(g, capture_locations=False)
    a = b.emit1("exp", [x])
    n = b.emit1("neg", [a])
    c = b.emit1("add", [a, n])
    g.set_outputs([c], ["c"])
    return g, x, a, n, c


def test_values_know_producer_and_uses():
    g, x, a, n, c = small_graph()
    assert a.producer is g.nodes[0] and a.index == 0 and a.kind == "node"
    assert x.producer is None and x.kind == "input"
    assert [(u.op, i) for u, i in a.uses] == [("neg", 0), ("add", 0)]
    assert [u.op for u in x.users()] == ["exp"]
    g.verify()


def test_replace_all_uses_with_redirects_uses_and_outputs():
    g, x, a, n, c = small_graph()
    b = Builder(g, capture_locations=False)
    t = b.emit1("tanh", [x])
    g.replace_all_uses_with(a, t)
    assert a.uses == []
    assert [(u.op, i) for u, i in t.uses] == [("neg", 0), ("add", 0)]
    g.replace_all_uses_with(c, n)
    assert g.outputs == [n]
    # The new node was appended after its users: restore order, then the graph is valid.
    with pytest.raises(VerifyError, match="before it is defined"):
        g.verify()
    g.toposort()
    g.verify()
    g.remove_nodes([node for node in g.nodes if node.op in ("exp", "add")])
    g.verify()
    assert [node.op for node in g.nodes] == ["tanh", "neg"]
    out = gf.run(g, [np.ones((2, 3), np.float32)])[0]
    np.testing.assert_allclose(out, -np.tanh(np.ones((2, 3))), rtol=1e-6)


def test_replace_with_itself_is_a_no_op():
    g, x, a, n, c = small_graph()
    before = list(a.uses)
    g.replace_all_uses_with(a, a)
    assert a.uses == before


def test_remove_nodes_detaches_their_uses():
    g, x, a, n, c = small_graph()
    g.set_outputs([a], ["a"])
    g.remove_nodes([g.nodes[1], g.nodes[2]])
    assert a.uses == []
    assert [node.op for node in g.nodes] == ["exp"]
    g.verify()


def test_remove_nodes_refuses_to_leave_dangling_uses():
    g, x, a, n, c = small_graph()
    with pytest.raises(VerifyError, match="still used by add"):
        g.remove_nodes([g.nodes[1]])  # neg is read by add
    with pytest.raises(VerifyError, match="graph output"):
        g.remove_nodes([g.nodes[2]])  # add is the output
    assert len(g.nodes) == 3
    g.verify()


def test_set_input_keeps_use_lists_consistent():
    g, x, a, n, c = small_graph()
    add = g.nodes[2]
    add.set_input(1, x)
    assert (add, 1) in x.uses and (add, 1) not in n.uses
    g.verify()


def test_toposort_is_stable_for_a_valid_order():
    g, *_ = small_graph()
    before = list(g.nodes)
    g.toposort()
    assert g.nodes == before


def test_toposort_moves_only_what_must_move():
    g = Graph("g")
    x = g.add_input("x", F)
    b = Builder(g, capture_locations=False)
    p = b.emit1("exp", [x])
    q = b.emit1("sin", [x])
    r = b.emit1("cos", [x])
    late = b.emit1("neg", [x])  # appended last, then made an input of 'sin'
    g.nodes[1].set_input(0, late)
    g.toposort()
    assert [n.op for n in g.nodes] == ["exp", "neg", "sin", "cos"]
    g.set_outputs([p, q, r])
    g.verify()


def test_toposort_detects_cycles():
    g, x, a, n, c = small_graph()
    g.nodes[0].set_input(0, n)  # exp reads neg, which reads exp
    with pytest.raises(VerifyError, match="cycle"):
        g.toposort()


def test_toposort_detects_nodes_outside_the_graph():
    g, x, a, n, c = small_graph()
    stray = Node("tanh", [x], {}, [F])
    g.nodes[1].set_input(0, stray.outputs[0])
    with pytest.raises(VerifyError):
        g.toposort()


# ---- verify() catches each broken invariant ------------------------------------------------

def test_verify_dangling_use():
    g, x, a, n, c = small_graph()
    other = Graph("other").add_input("y", F)
    g.nodes[1].set_input(0, other)
    with pytest.raises(VerifyError, match="dangling"):
        g.verify()


def test_verify_wrong_declared_type():
    g, x, a, n, c = small_graph()
    n.type = TensorType((3, 2), "float32")
    with pytest.raises(VerifyError, match="declared result types f32\\[3,2\\]"):
        g.verify()


def test_verify_order():
    g, *_ = small_graph()
    g.nodes.move_before(g.nodes.first, g.nodes.last)  # the add before what it reads
    with pytest.raises(VerifyError, match="before it is defined"):
        g.verify()


def test_verify_duplicate_names():
    g, x, a, n, c = small_graph()
    a.name = "x"
    with pytest.raises(VerifyError, match="defined twice"):
        g.verify()


def test_verify_duplicate_output_names():
    g, x, a, n, c = small_graph()
    g.set_outputs([a, c], ["y", "y"])
    with pytest.raises(VerifyError, match="duplicate output names"):
        g.verify()


def test_verify_stale_use():
    g, x, a, n, c = small_graph()
    a.uses.append((g.nodes[2], 1))  # add's input 1 is neg's result, not a
    with pytest.raises(VerifyError, match="stale use"):
        g.verify()


def test_verify_use_by_a_removed_node():
    g, x, a, n, c = small_graph()
    g.set_outputs([n], ["n"])
    g.nodes._unlink(g.nodes[2])  # dropped by hand, without detach()
    with pytest.raises(VerifyError, match="not in the graph"):
        g.verify()


def test_verify_missing_use():
    g, x, a, n, c = small_graph()
    a.uses.clear()
    with pytest.raises(VerifyError, match="does not list this node"):
        g.verify()


def test_verify_unknown_op_and_bad_attrs():
    g, x, a, n, c = small_graph()
    g.nodes[1].op = "frobnicate"
    with pytest.raises(VerifyError, match="unknown op"):
        g.verify()
    g, *_ = small_graph()
    g.nodes[0].attrs["axes"] = [0]
    with pytest.raises(VerifyError, match="unknown attribute"):
        g.verify()


def test_verify_output_not_in_graph():
    g, *_ = small_graph()
    g.set_outputs([Value(F, name="ghost")], ["ghost"])
    with pytest.raises(VerifyError, match="not defined"):
        g.verify()


def test_verify_param_arrays_match_their_types():
    g = Graph("p")
    x = g.add_input("x", F)
    w = g.add_param("w", F, np.zeros((2, 3), np.float32))
    b = Builder(g, capture_locations=False)
    g.set_outputs([b.emit1("add", [x, w])])
    g.verify()
    g.params["w"] = np.zeros((3, 2), np.float32)
    with pytest.raises(VerifyError, match="parameter w"):
        g.verify()
    g.params["w"] = np.zeros((2, 3), np.float64)
    with pytest.raises(VerifyError, match="parameter w"):
        g.verify()
    g.params["w"] = np.zeros((2, 3), np.float32)
    g.params["stray"] = np.zeros(1)
    with pytest.raises(VerifyError, match="stray"):
        g.verify()


@pytest.mark.parametrize("name", ["", "two words", "12", "a%b", "a,b", None])
def test_invalid_value_names_are_refused(name):
    with pytest.raises(VerifyError, match="invalid value name"):
        Graph("g").add_input(name, F)


def test_duplicate_input_and_param_names_are_refused():
    g = Graph("g")
    g.add_input("x", F)
    with pytest.raises(VerifyError, match="already has"):
        g.add_input("x", F)
    with pytest.raises(VerifyError, match="already has"):
        g.add_param("x", F)


# ---- copy, networkx, counts ------------------------------------------------------------------

def test_copy_is_structural_and_independent(mlp_graph):
    c = mlp_graph.copy()
    assert str(c) == str(mlp_graph)
    assert all(a is not b for a, b in zip(c.nodes, mlp_graph.nodes))
    c.nodes[0].op = "changed"
    assert mlp_graph.nodes[0].op == "linear"
    x = np.ones((2, 6), np.float32)
    mlp_graph.verify()
    np.testing.assert_array_equal(gf.run(mlp_graph.copy(), [x])[0], gf.run(mlp_graph, [x])[0])


def test_to_networkx(mlp_graph):
    import networkx as nx

    g = mlp_graph.to_networkx()
    assert isinstance(g, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g)
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(1 for k in kinds.values() if k == "node") == len(mlp_graph.nodes)
    assert sum(1 for k in kinds.values() if k == "param") == len(mlp_graph.param_values)
    assert "input:x" in g and "output:output" in g
    order = [n for n in nx.topological_sort(g) if kinds[n] == "node"]
    ops = nx.get_node_attributes(g, "op")
    assert [ops[n] for n in order] == [n.op for n in mlp_graph.nodes]
    assert g.edges["input:x", "n0:linear"]["type"] == "f32[batch,6]"
    assert nx.get_node_attributes(g, "scope")["n0:linear"] == "layer1"


def test_op_counts_and_state_updates(mlp_graph):
    assert mlp_graph.op_counts() == {"linear": 2, "relu": 1}
    assert mlp_graph.state_updates == {}
    assert mlp_graph.trainable_names == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"]


def test_values_normalise_spec_types():
    g = Graph("g")
    x = g.add_input("x", gf.TensorSpec((2, 3), "float32", name="x"))
    assert type(x.type) is TensorType and x.type == F
    b = Builder(g, capture_locations=False)
    g.set_outputs([b.emit1("scatter_add", [x, b.emit1("constant", [], {"value": np.array([0])}),
                                          b.emit1("constant", [], {"value": np.ones((1, 3), np.float32)})])])
    g.verify()
    grads = gf.grad(g, wrt=["x"], cotangent_input=True, optimize=False)
    assert str(grads.outputs[1].type) == "f32[2,3]"


def test_dtype_none_is_refused():
    with pytest.raises(gf.DTypeError, match="required"):
        TensorType((2,), None)


def test_reference_results_are_checked_against_the_types():
    """A reference that disagrees with its type rule is reported at the node, not downstream."""
    from graphforge.ops.registry import OpDef, Sample, register_op, unregister_op

    register_op(OpDef(name="test_liar", type_rule=lambda ts, a: [ts[0]],
                      reference=lambda xs, a, env=None: [xs[0].astype(np.float64)], flops=lambda i, o, a: 0,
                      vjp=None, samples=[Sample([F]), Sample([F])]))
    try:
        g = Graph("g")
        x = g.add_input("x", F)
        g.set_outputs([Builder(g).emit1("test_liar", [x])])
        with pytest.raises(gf.BackendError, match="returned float64\\[2, 3\\]") as err:
            gf.run(g, [np.ones((2, 3), np.float32)])
        assert err.value.op == "test_liar" and "test_graph_edit.py:" in str(err.value)
    finally:
        unregister_op("test_liar")


def test_replace_all_uses_with_requires_the_same_type():
    g, x, a, n, c = small_graph()
    other = g.add_input("y", TensorType((2, 3), "float64"))
    with pytest.raises(VerifyError, match="types differ"):
        g.replace_all_uses_with(a, other)
    assert [u.op for u, _ in a.uses] == ["neg", "add"] and other.uses == []


def test_verify_refuses_digit_names():
    g, x, a, n, c = small_graph()
    a.name = "7"
    with pytest.raises(VerifyError, match="invalid value name"):
        g.verify()
