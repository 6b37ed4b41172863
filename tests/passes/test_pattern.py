"""The pattern API: Var/Const/Op/Assoc/AnyOf matching and Rule bookkeeping."""
import pytest

import graphforge as gf
from graphforge import ops
from graphforge.passes.fuse import fuse
from graphforge.passes.pattern import AnyOf, Assoc, Const, Op, Rule, Var


def _root(fn, *specs):
    g = gf.trace(fn, *specs)
    return g, g.outputs[0].producer


F4 = gf.TensorSpec((4,), "float32")


def test_var_binding_must_be_consistent():
    p = Op("sub", Var("x"), Op("exp", Var("x")))
    g, root = _root(lambda a, b: a - gf.exp(a), F4, F4)
    m = next(p.match_node(root, g))
    assert m["x"] is g.inputs[0]
    g, root = _root(lambda a, b: a - gf.exp(b), F4, F4)
    assert list(p.match_node(root, g)) == []


def test_const_value_tolerance_and_capture():
    g, root = _root(lambda a: a * 0.70710678, F4)
    assert next(Op("mul", Var(), Const(2 ** -0.5)).match_node(root, g))
    assert not list(Op("mul", Var(), Const(0.7)).match_node(root, g))
    m = next(Op("mul", Var(), Const(name="c", where=lambda c: c > 0)).match_node(root, g))
    assert m["c"] == pytest.approx(0.70710678)


def test_commutative_ops_match_either_order_and_others_do_not():
    g, root = _root(lambda a: 2.0 + a, F4)
    assert next(Op("add", Var("x"), Const(2.0)).match_node(root, g))["x"] is g.inputs[0]
    g, root = _root(lambda a: 2.0 - a, F4)
    assert not list(Op("sub", Var("x"), Const(2.0)).match_node(root, g))


def test_attribute_values_and_predicates():
    g, root = _root(lambda a: gf.sum(a, -1, keepdims=True), gf.TensorSpec((2, 3), "float32"))
    assert next(Op("sum", Var(), attrs={"keepdims": True, "axes": lambda ax: ax == [-1]}).match_node(root, g))
    assert not list(Op("sum", Var(), attrs={"keepdims": False}).match_node(root, g))


def test_one_use_constraint():
    g, root = _root(lambda a: gf.exp(a) * gf.exp(a).sum(), F4)  # two distinct exps: fine
    p = Op("mul", Op("exp", Var(), one_use=True), Var())
    assert next(p.match_node(root, g))

    def shared(a):
        e = gf.exp(a)
        return e * e.sum()
    g, root = _root(shared, F4)
    assert not list(p.match_node(root, g))


@pytest.mark.parametrize("fn", [
    lambda x, y: 0.5 * x * y, lambda x, y: x * (y * 0.5), lambda x, y: (x * 0.5) * y,
    lambda x, y: y * (0.5 * x),
])
def test_assoc_matches_any_grouping_and_order(fn):
    g, root = _root(fn, F4, F4)
    m = next(Assoc("mul", Const(0.5), Var("a", where=lambda v: v.name == "x"), Var("b")).match_node(root, g))
    assert m["a"].name == "x" and m["b"].name == "y"
    assert len(m.nodes) == 2


def test_assoc_leaf_may_itself_be_a_product():
    def fn(x, y):
        xy = x * y          # a leaf that is a product used twice
        return 0.5 * xy * gf.exp(xy)
    g, root = _root(fn, F4, F4)
    m = next(Assoc("mul", Const(0.5), Var("v"), Op("exp", Var("v"))).match_node(root, g))
    assert m["v"].producer.op == "mul"


def test_anyof_tries_alternatives():
    p = AnyOf(Op("exp", Var("x")), Op("log", Var("x")))
    assert p.root_ops() == {"exp", "log"}
    g, root = _root(lambda a: gf.log(a), F4)
    assert next(p.match_node(root, g))["x"] is g.inputs[0]


def test_rule_counts_matches_and_respects_internal_uses_and_requirements():
    rule = Rule("test_double_neg_exp", Op("neg", Op("neg", Op("exp", Var("x")))),
                lambda m, rw: ops.exp(rw.t(m["x"])))
    g = gf.trace(lambda a: gf.neg(gf.neg(gf.exp(a))), F4)
    stats = {}
    out, changed = fuse(g.copy(), rules=[rule], stats=stats)
    assert changed and out.op_counts() == {"exp": 1}
    assert stats == {"test_double_neg_exp": 1}

    def shared(a):
        e = gf.exp(a)
        return gf.neg(gf.neg(e)) + e
    g = gf.trace(shared, F4)
    stats = {}
    out, changed = fuse(g.copy(), rules=[rule], stats=stats)
    assert not changed and stats == {}

    missing = Rule("test_needs_op", Op("exp", Var("x")), lambda m, rw: None, requires=("no_such_op",))
    assert not missing.available
    assert fuse(gf.trace(gf.exp, F4), rules=[missing])[1] is False


def test_refused_replacement_leaves_graph_intact():
    # A replacement whose types do not check is skipped and its partial nodes are removed.
    rule = Rule("test_bad", Op("exp", Var("x")), lambda m, rw: ops.matmul(rw.t(m["x"]), rw.t(m["x"])))
    g = gf.trace(gf.exp, gf.TensorSpec((2, 3), "float32"))
    stats = {}
    out, changed = fuse(g.copy(), rules=[rule], stats=stats)
    assert not changed and str(out) == str(g) and stats == {}
