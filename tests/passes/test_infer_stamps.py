"""infer skips nodes whose type stamp still holds, and re-checks every node that changed since."""
import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import PassError
from graphforge.guards import guards
from graphforge.ir.types import TensorType
from graphforge.ops import registry
from graphforge.passes import optimize
from graphforge.passes.infer import infer


def _traced():
    return gf.trace(lambda x: gf.sum(gf.relu(x) * 2.0, 1), gf.TensorSpec(("batch", 4), "float32"))


def _node(graph, op):
    return next(n for n in graph.nodes if n.op == op)


def test_built_nodes_carry_a_stamp_that_holds_and_survives_copy():
    g = _traced()
    assert all(n.type_stamp is not None and registry.stamp_holds(n) for n in g.nodes)
    assert all(registry.stamp_holds(n) for n in g.copy().nodes)


def test_parsed_nodes_have_no_stamp_and_are_checked():
    g = gf.parse(str(_traced()))
    assert all(n.type_stamp is None for n in g.nodes)
    out, _ = infer(g)
    assert all(registry.stamp_holds(n) for n in out.nodes)  # infer stamps what it checked


def test_a_changed_result_type_is_caught():
    g = _traced()
    _node(g, "sum").outputs[0].type = TensorType(("batch", 3), "float32")
    with pytest.raises(PassError, match="declared result types"):
        optimize(g, "infer")


def test_a_changed_attribute_is_caught_also_when_mutated_in_place():
    g = _traced()
    node = _node(g, "sum")
    node.attrs["axes"][0] = 0  # in place: the stamp froze the old list's contents
    assert not registry.stamp_holds(node)
    with pytest.raises(PassError, match="declared result types"):
        optimize(g, "infer")


def test_a_changed_input_type_is_caught():
    g = _traced()
    relu = _node(g, "relu")
    other = g.add_input("y", TensorType(("batch", 5), "float32"))
    relu.set_input(0, other)
    with pytest.raises(PassError, match="declared result types"):
        optimize(g, "infer")


def test_a_replaced_or_patched_op_definition_is_re_checked(monkeypatch):
    g = _traced()
    opdef = registry.get_op("relu")
    monkeypatch.setattr(opdef, "type_rule", lambda types, attrs: [types[0].with_dtype("float64")])
    assert not registry.stamp_holds(_node(g, "relu"))
    with pytest.raises(PassError, match="relu"):
        optimize(g, "infer")


def test_array_attributes_are_compared_by_identity():
    g = _traced()
    const = _node(g, "constant")
    assert registry.stamp_holds(const)
    const.attrs["value"] = np.array(2.0, dtype=np.float32)  # an equal but different array
    assert not registry.stamp_holds(const)
    infer(g)  # re-checked (and still valid), then stamped again
    assert registry.stamp_holds(const)


def test_tracing_asks_a_type_rule_each_question_once(monkeypatch):
    opdef = registry.get_op("tanh")
    rule, calls = opdef.type_rule, []

    def counted(types, attrs):
        calls.append(tuple(types))
        return rule(types, attrs)
    monkeypatch.setattr(opdef, "type_rule", counted)
    g = gf.trace(lambda x: gf.tanh(gf.tanh(gf.tanh(x))), gf.TensorSpec(("batch", 4), "float32"))
    assert len(calls) == 1  # one question, asked three times: answered from the memo
    assert len({id(n.type_stamp) for n in g.nodes if n.op == "tanh"}) == 1
    assert all(registry.stamp_holds(n) for n in g.nodes)
    gf.trace(lambda x: gf.tanh(x), gf.TensorSpec(("batch", 5), "float32"))
    assert len(calls) == 2  # another input type: another question


def test_the_memo_never_hides_a_guard():
    def pairs(x):
        return x.reshape(x.shape[0], -1, 2, 8)  # needs an even seq: a guard
    spec = gf.TensorSpec(("batch", "seq", 8), "float32")
    first, second = gf.trace(pairs, spec), gf.trace(pairs, spec)  # the second answered from the memo
    assert [str(g.requirement) for g in guards(first)] == [str(g.requirement) for g in guards(second)] == [
        "seq % 2 == 0"]
