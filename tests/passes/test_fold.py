"""fold: constant folding through the reference runtime, with a size cap."""
import numpy as np
import pytest

import graphforge as gf
from graphforge.ir.types import TensorType
from graphforge.ops.registry import OpDef, register_op, unregister_op
from graphforge.passes import optimize
from graphforge.passes.fold import INLINE_MAX_ELEMENTS
from passtest import check_pass


def test_small_results_become_constants_with_provenance():
    check_pass("""
graph g(%x: f32[3]) {
  %a: f32[3] = constant() {value=tensor<f32[3]>[1.0, 2.0, 3.0]} @m (m.py:1)
  %b: f32[] = constant() {value=tensor<f32[]>[2.0]} @m (m.py:2)
  %c: f32[3] = mul(%a, %b) @m.scale (m.py:3)
  %d: f32[3] = neg(%c) @m.scale (m.py:4)
  %y: f32[3] = add(%x, %d) @m (m.py:5)
  return %y as out
}""", "fold", """
graph g(%x: f32[3]) {
  %0: f32[3] = constant() {value=tensor<f32[3]>[-2.0, -4.0, -6.0]} @m.scale (m.py:4)
  %y: f32[3] = add(%x, %0) @m (m.py:5)
  return %y as out
}""")


def test_inputs_and_params_are_never_folded():
    ir = """
graph g(%x: f32[3]) {
  param %w: f32[3]
  %one: f32[] = constant() {value=tensor<f32[]>[2.0]}
  %a: f32[3] = mul(%w, %one)
  %b: f32[3] = mul(%x, %one)
  %c: f32[3] = add(%a, %b)
  return %c as out
}"""
    check_pass(ir, "fold", ir)


def test_large_results_become_const_params():
    n = INLINE_MAX_ELEMENTS * 2
    g = gf.parse(f"""
graph g(%x: f32[{n}]) {{
  param %w: f32[{n}]
  %two: f32[] = constant() {{value=tensor<f32[]>[2.0]}}
  %a: f32[{n}] = mul(%w, %two) @layer (l.py:1)
  %y: f32[{n}] = add(%x, %a)
  return %y as out
}}""")
    arr = np.arange(n, dtype=np.float32)
    g.params["w"] = arr
    g.param_values["w"].kind = "const"  # a folded constant, not a trainable weight
    g2 = optimize(g, "fold,dce", verify=True)
    assert g2.op_counts() == {"add": 1}
    const = [name for name, v in g2.param_values.items() if v.kind == "const"]
    assert const == ["layer.folded"]
    np.testing.assert_array_equal(g2.params["layer.folded"], arr * 2)
    x = np.ones(n, np.float32)
    np.testing.assert_array_equal(gf.run(g2, {"x": x})[0], gf.run(g, {"x": x})[0])


def test_huge_broadcast_is_not_materialised():
    ir = """
graph g(%x: f32[512,512]) {
  %z: f32[] = constant() {value=tensor<f32[]>[0.5]}
  %b: f32[512,512] = broadcast_to(%z) {shape=[512, 512]}
  %y: f32[512,512] = mul(%x, %b)
  return %y as out
}"""
    g = gf.parse(ir)
    g2 = optimize(g, "fold", verify=True)
    assert str(g2) == str(g)
    assert not g2.params


def test_symbolic_shapes_are_not_folded():
    ir = """
graph g(%x: f32[batch]) {
  %z: f32[] = constant() {value=tensor<f32[]>[0.5]}
  %b: f32[batch] = broadcast_to(%z) {shape=[batch]}
  %y: f32[batch] = mul(%x, %b)
  return %y as out
}"""
    check_pass(ir, "fold", ir)


@pytest.fixture
def random_op():
    op = OpDef(name="test_random_uniform", type_rule=lambda ts, a: [TensorType((2,), "float32")],
               reference=lambda xs, a, env=None: [np.random.default_rng(int(xs[0])).random(2).astype(np.float32)],
               num_inputs=(1, 1), random=True)
    register_op(op)
    yield op
    unregister_op(op.name)


def test_random_ops_are_never_folded(random_op):
    g = gf.parse("""
graph g(%x: f32[2]) {
  %k: u32[] = constant() {value=tensor<u32[]>[7]}
  %r: f32[2] = test_random_uniform(%k)
  %y: f32[2] = add(%x, %r)
  return %y as out
}""")
    g2, changed = __import__("graphforge.passes.fold", fromlist=["fold"]).fold(g.copy())
    assert not changed
    assert "test_random_uniform" in g2.op_counts()


def test_folded_output_keeps_its_name():
    g2 = check_pass("""
graph g(%x: f32[2]) {
  %a: f32[2] = constant() {value=tensor<f32[2]>[1.0, 4.0]}
  %b: f32[2] = sqrt(%a)
  %y: f32[2] = add(%x, %b)
  return %y as out, %b as root
}""", "fold", """
graph g(%x: f32[2]) {
  %0: f32[2] = constant() {value=tensor<f32[2]>[1.0, 2.0]}
  %y: f32[2] = add(%x, %0)
  return %y as out, %0 as root
}""")
    assert g2.output_names == ["out", "root"]
