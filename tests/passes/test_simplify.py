"""simplify: algebraic identities, transpose/reshape chains, no-op shape ops, static dim_size."""
import numpy as np

import graphforge as gf
from graphforge.passes import optimize
from passtest import check_pass


def test_arithmetic_identities():
    check_pass("""
graph g(%x: f32[batch,4]) {
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]} @m (a.py:1)
  %zero: f32[] = constant() {value=tensor<f32[]>[0.0]} @m (a.py:1)
  %a: f32[batch,4] = mul(%x, %one) @m (a.py:2)
  %b: f32[batch,4] = mul(%one, %a) @m (a.py:3)
  %c: f32[batch,4] = add(%b, %zero) @m (a.py:4)
  %d: f32[batch,4] = add(%zero, %c) @m (a.py:5)
  %e: f32[batch,4] = sub(%d, %zero) @m (a.py:6)
  %f: f32[batch,4] = div(%e, %one) @m (a.py:7)
  %g: f32[batch,4] = tanh(%f) @m (a.py:8)
  return %g as out
}""", "simplify", """
graph g(%x: f32[batch,4]) {
  %g: f32[batch,4] = tanh(%x) @m (a.py:8)
  return %g as out
}""")


def test_identity_that_broadcasts_is_kept():
    # x + zeros(3, 4) with x of shape (4,) changes the shape: not an identity.
    ir = """
graph g(%x: f32[4]) {
  %z: f32[3,4] = constant() {value=tensor<f32[3,4]>[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}
  %y: f32[3,4] = add(%x, %z)
  %w: f32[4] = sub(%x, %x)
  return %y as out, %w as out2
}"""
    check_pass(ir, "simplify", ir)


def test_non_unit_constants_are_kept():
    ir = """
graph g(%x: f32[4]) {
  %c: f32[] = constant() {value=tensor<f32[]>[2.0]}
  %y: f32[4] = mul(%x, %c)
  %z: f32[4] = sub(%c, %x)
  return %y as out, %z as out2
}"""
    check_pass(ir, "simplify", ir)


def test_double_negation_and_chains():
    check_pass("""
graph g(%x: f32[2,3]) {
  %a: f32[2,3] = neg(%x)
  %b: f32[2,3] = neg(%a)
  %c: f32[2,3] = neg(%b)
  %d: f32[2,3] = neg(%c)
  %e: f32[2,3] = exp(%d)
  return %e as out
}""", "simplify", """
graph g(%x: f32[2,3]) {
  %e: f32[2,3] = exp(%x)
  return %e as out
}""")


def test_transpose_chains():
    check_pass("""
graph g(%x: f32[2,3,4]) {
  %a: f32[3,2,4] = transpose(%x) {perm=[1, 0, 2]} @t (t.py:1)
  %b: f32[2,3,4] = transpose(%a) {perm=[1, 0, 2]} @t (t.py:2)
  %c: f32[4,3,2] = transpose(%b) {perm=none} @t (t.py:3)
  %d: f32[3,4,2] = transpose(%c) {perm=[1, 0, 2]} @t (t.py:4)
  %e: f32[3,4,2] = transpose(%d) {perm=[0, 1, 2]} @t (t.py:5)
  return %e as out
}""", "simplify", """
graph g(%x: f32[2,3,4]) {
  %d: f32[3,4,2] = transpose(%x) {perm=[1, 2, 0]} @t (t.py:4)
  return %d as out
}""")


def test_reshape_chain_collapses_to_one_reshape():
    check_pass("""
graph g(%x: f32[batch,2,3]) {
  %a: f32[batch,6] = flatten(%x) {start_axis=1, end_axis=-1}
  %b: f32[batch,1,6] = unsqueeze(%a) {axes=[1]}
  %c: f32[batch,3,2] = reshape(%b) {shape=[batch, 3, 2]}
  %d: f32[batch,3,2] = reshape(%c) {shape=[batch, 3, -1]}
  %e: f32[batch,3,2] = broadcast_to(%d) {shape=[batch, 3, 2]}
  %h: f32[batch,3,2] = relu(%e)
  return %h as out
}""", "simplify", """
graph g(%x: f32[batch,2,3]) {
  %c: f32[batch,3,2] = reshape(%x) {shape=[batch, 3, 2]}
  %h: f32[batch,3,2] = relu(%c)
  return %h as out
}""")


def test_noop_cast_and_output_identity():
    # A no-op cast that is a graph output would make the output alias the input: kept.
    ir = """
graph g(%y: i64[batch]) {
  %f: i64[batch] = cast(%y) {dtype="int64"}
  return %f as idx
}"""
    check_pass(ir, "simplify", ir)
    check_pass("""
graph g(%y: i64[batch]) {
  %f: i64[batch] = cast(%y) {dtype="int64"}
  %g: i64[batch] = neg(%f)
  return %g as idx
}""", "simplify", """
graph g(%y: i64[batch]) {
  %g: i64[batch] = neg(%y)
  return %g as idx
}""")


def test_static_dim_size_becomes_constant():
    check_pass("""
graph g(%x: f32[batch,4,5]) {
  %n: f32[] = dim_size(%x) {axes=[1, 2], dtype="float32"} @loss (l.py:3)
  %m: f32[] = dim_size(%x) {axes=[0, 1], dtype="float32"} @loss (l.py:4)
  %s: f32[batch,4,5] = div(%x, %n)
  %t: f32[batch,4,5] = mul(%s, %m)
  return %t as out
}""", "simplify", """
graph g(%x: f32[batch,4,5]) {
  %0: f32[] = constant() {value=tensor<f32[]>[20.0]} @loss (l.py:3)
  %m: f32[] = dim_size(%x) {axes=[0, 1], dtype="float32"} @loss (l.py:4)
  %s: f32[batch,4,5] = div(%x, %0)
  %t: f32[batch,4,5] = mul(%s, %m)
  return %t as out
}""")


def test_simplify_on_traced_model_keeps_values():
    def f(x):
        y = (x * 1.0 + 0.0).T.T
        return gf.neg(gf.neg(y.reshape(-1, 2).reshape(x.shape[0], 4))) - 0.0
    g = gf.trace(f, gf.TensorSpec(("batch", 4), "float32"))
    g2 = optimize(g, "simplify,dce", verify=True)
    # Everything cancels except what keeps the output distinct from the input (x - 0 stays).
    assert g2.op_counts() == {"constant": 1, "sub": 1}, str(g2)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(gf.run(g2, {"x": x})[0], x)
    np.testing.assert_array_equal(gf.run(g, {"x": x})[0], x)
