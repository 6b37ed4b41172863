"""The rewrite engine: rule sets compose, run in one engine run, count matches per run, keep the
graph in topological order without re-sorting, and stamp provenance as each rule asks."""
import pytest

import graphforge as gf
from graphforge import ops
from graphforge.passes import fusion, simplify_rules
from graphforge.passes.engine import RuleSet, apply_rules
from graphforge.passes.pattern import Op, Rule, Var
from passtest import assert_equivalent

F = gf.TensorSpec(("batch", 4), "float32")


def _relu_spelled_out(x):
    return gf.maximum(x * 1.0, 0.0) + 0.0


def test_rule_sets_compose_into_one_run():
    both = simplify_rules.RULES + fusion.RULES
    assert both.name == "simplify+fusion" and len(both) == len(simplify_rules.RULES) + len(fusion.RULES)
    assert both.get("relu") is fusion.RULES.get("relu") and both.get("mul_one") is simplify_rules.RULES.get("mul_one")
    g = gf.trace(_relu_spelled_out, F)
    work = g.copy()
    stats = {}
    assert apply_rules(work, both, stats=stats)
    work.verify()  # replacements were placed in order: no toposort needed
    assert stats == {"mul_one": 1, "add_zero": 1, "relu": 1}
    assert work.op_counts() == {"relu": 1}  # constants only the rewritten nodes read are erased too
    assert_equivalent(g, work)
    # simplification alone leaves the maximum
    work = g.copy()
    apply_rules(work, simplify_rules.RULES)
    assert "maximum" in work.op_counts() and "relu" not in work.op_counts()


def test_rule_set_checks_its_rules():
    rules = RuleSet("mine")
    rule = rules.add(Rule("r", Op("exp", Var("x")), lambda m, rw: m["x"]))
    with pytest.raises(ValueError, match="already has a rule named 'r'"):
        rules.add(Rule("r", Op("neg", Var("x")), lambda m, rw: m["x"]))
    with pytest.raises(TypeError):
        rules.add("r2")
    with pytest.raises(KeyError, match="no rule named 'q'"):
        rules.get("q")
    assert list(rules) == [rule] and rules[0] is rule and rules.names() == ["r"]


def test_provenance_merged_or_root():
    def f(x):
        e = gf.exp(x)
        n = gf.neg(e)
        return gf.neg(n)
    g = gf.trace(f, F)
    locs = [n.loc for n in g.nodes]
    for provenance, want in (("merged", ";".join(reversed(locs))), ("root", locs[-1])):
        rule = Rule("exp_neg_neg", Op("neg", Op("neg", Op("exp", Var("x")))),
                    lambda m, rw: ops.exp(rw.t(m["x"])), provenance=provenance)
        work = g.copy()
        assert apply_rules(work, [rule])
        (node,) = list(work.nodes)
        assert node.op == "exp" and sorted(node.loc.split(";")) == sorted(want.split(";")), provenance
    with pytest.raises(ValueError, match="provenance"):
        Rule("bad", Op("exp", Var("x")), lambda m, rw: m["x"], provenance="first")


def test_a_rule_that_returns_the_root_changes_nothing():
    rule = Rule("noop", Op("exp", Var("x")), lambda m, rw: m.root.outputs)
    g = gf.trace(gf.exp, F)
    work, stats = g.copy(), {}
    assert not apply_rules(work, [rule], stats=stats) and stats == {} and str(work) == str(g)
