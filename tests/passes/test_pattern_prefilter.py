"""The rewrite engine's structural pre-checks are sound: neither ``pattern._may_match`` (and its
compiled form, ``pattern.compile_prefilter``) nor the engine's operand-signature gate
(``engine.gate``) rejects a node that a rule's pattern matches, so pruning with them leaves every
rewrite unchanged; and the two forms of the first agree on every node."""
import math

import numpy as np
import pytest

import graphforge as gf
from graphforge.passes import engine, fusion, pattern, simplify_rules
from graphforge.passes.pattern import AnyOf, Assoc, Const, Op, Var

F = gf.TensorSpec(("b", 3, 8), "float32")


def _erf_gelu(x):
    return 0.5 * x * (1 + gf.erf(x / math.sqrt(2.0)))


def _tanh_gelu(x):
    return x * (1 + gf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x))) / 2


def _layer_norm(x):
    mu = gf.mean(x, -1, keepdims=True)
    d = x - mu
    return d / gf.sqrt(gf.mean(d * d, -1, keepdims=True) + 1e-5) * 2.0 + 1.0


def _softmaxes(x):
    e = gf.exp(x - gf.max(x, -1, keepdims=True))
    s = e / gf.sum(e, -1, keepdims=True)
    return s + (x - gf.log(gf.sum(gf.exp(x), -1, keepdims=True))) + x * gf.sigmoid(x) + gf.maximum(x, 0.0)


def _linear(x):
    w = gf.constant(np.ones((8, 8), dtype=np.float32))
    h = x @ w.T + gf.constant(np.ones((8,), dtype=np.float32))
    return gf.tanh(h) + _erf_gelu(h)


@pytest.mark.parametrize("fn", [_erf_gelu, _tanh_gelu, _layer_norm, _softmaxes, _linear])
def test_no_matching_node_is_rejected(fn):
    g = gf.trace(fn, F)
    checked = 0
    for rule in simplify_rules.RULES + fusion.RULES:
        for pat in rule.patterns:
            compiled = {depth: pattern.compile_prefilter(pat, depth) for depth in range(0, 5)}
            for node in g.nodes:
                matches = any(True for _ in pat.match_node(node, g))
                checked += matches
                assert engine.gate(pat, *engine.signature(node)) or not matches, (rule.name, node.op)
                for depth in range(0, 5):
                    slow = pattern._may_match(pat, node.outputs[0], depth)
                    fast = compiled[depth] is None or compiled[depth](node.outputs[0])
                    assert slow == fast, (rule.name, node.op, depth)
                    assert slow or not matches, (rule.name, node.op, depth)
    assert checked  # each graph holds at least one fusable spelling


def test_the_signature_gate_reads_producers_kinds_and_both_orders():
    g = gf.trace(lambda x: gf.exp(x) * gf.constant(np.ones((8,), dtype=np.float32)), F)
    root = g.nodes[-1]
    assert engine.signature(root) == ("mul", ("exp", "constant"))
    assert engine.gate(Op("mul", Op("exp", Var()), Const()), "mul", ("exp", "constant"))
    assert engine.gate(Op("mul", Const(), Op("exp", Var())), "mul", ("exp", "constant"))  # commutative
    assert not engine.gate(Op("div", Const(), Op("exp", Var())), "div", ("exp", "constant"))  # not commutative
    assert not engine.gate(Op("mul", Op("tanh", Var()), Const()), "mul", ("exp", "constant"))
    assert not engine.gate(Op("mul", Var(), Var(), Var()), "mul", ("exp", "constant"))  # arity
    assert engine.gate(Op("mul", AnyOf(Op("tanh", Var()), Op("exp", Var())), Var()), "mul", ("exp", "<input>"))
    assert engine.gate(Op("mul", Const(), Var()), "mul", ("<const>", "<input>"))  # a stored constant
    assert not engine.gate(Op("mul", Const(), Var()), "mul", ("<param>", "<input>"))  # a trainable one
    tree = Assoc("mul", Op("exp", Var()), Const(), Var())
    assert engine.gate(tree, "mul", ("mul", "constant"))  # the mul operand may expand to the leaves
    assert not engine.gate(tree, "mul", ("exp", "constant"))  # two leaves for three operands
    pair = Assoc("mul", Op("exp", Var()), Const())
    assert engine.gate(pair, "mul", ("constant", "exp")) and not engine.gate(pair, "mul", ("tanh", "constant"))
    assert engine.gate(AnyOf(Op("add", Var(), Var()), pair), "mul", ("exp", "constant"))


def test_it_rejects_what_cannot_match_and_passes_unknown_patterns():
    g = gf.trace(lambda x: gf.exp(x) * 2.0, F)
    root = g.outputs[0]
    assert not pattern._may_match(Op("mul", Op("tanh", Var()), Const()), root, 3)
    assert not pattern.compile_prefilter(Op("mul", Op("tanh", Var()), Const()), 3)(root)
    assert pattern.compile_prefilter(Op("mul", Const(), Op("exp", Var())), 3)(root)
    assert not pattern.compile_prefilter(Op("mul", Var(), Const(3.0)), 3)(root)  # 2.0 is not 3.0
    assert pattern._may_match(Op("mul", Const(), Op("exp", Var())), root, 3)  # commutative order
    assert not pattern._may_match(Assoc("mul", Var(), Op("add", Var(), Var())), root, 3)
    assert pattern._may_match(AnyOf(Op("add", Var(), Var()), Assoc("mul", Op("exp", Var()), Const())), root, 3)

    class Anything(Var):  # a subclass may match differently: never pruned
        pass
    assert pattern._may_match(Op("mul", Anything(rank=7), Const()), root, 3)
