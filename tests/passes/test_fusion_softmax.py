"""fusion/softmax: exp(x - max) / sum(exp(x - max)) and exp(x)/sum(exp(x)) → softmax."""

import graphforge as gf
from graphforge.passes import optimize
from passtest import assert_equivalent, check_pass


def test_stable_spelling_ir():
    check_pass("""
graph g(%x: f32[batch,5]) {
  %m: f32[batch,1] = max(%x) {axes=[1], keepdims=true} @attn (a.py:1)
  %s: f32[batch,5] = sub(%x, %m) @attn (a.py:2)
  %e: f32[batch,5] = exp(%s) @attn (a.py:2)
  %t: f32[batch,1] = sum(%e) {axes=[-1], keepdims=true} @attn (a.py:3)
  %y: f32[batch,5] = div(%e, %t) @attn (a.py:3)
  return %y as out
}""", "fuse", """
graph g(%x: f32[batch,5]) {
  %0: f32[batch,5] = softmax(%x) {axis=-1} @attn (a.py:1;a.py:2;a.py:3)
  return %0 as out
}""")


def test_unguarded_spelling_and_middle_axis():
    def fn(x):
        e = gf.exp(x)
        return e / e.sum(1, keepdims=True)
    g = gf.trace(fn, gf.TensorSpec((2, 3, 4), "float32"))
    out = optimize(g, "fuse", verify=True)
    assert out.op_counts() == {"softmax": 1}
    assert out.nodes[0].attrs["axis"] == -2
    assert_equivalent(g, out)


def test_mismatched_max_axis_falls_back_to_the_unguarded_form():
    # The max over another axis is not softmax's guard: exp(s) / sum(exp(s)) is softmax(s).
    check_pass("""
graph g(%x: f32[3,5]) {
  %m: f32[3,1] = max(%x) {axes=[1], keepdims=true}
  %mm: f32[1,5] = max(%x) {axes=[0], keepdims=true}
  %s: f32[3,5] = sub(%x, %mm)
  %e: f32[3,5] = exp(%s)
  %t: f32[3,1] = sum(%e) {axes=[1], keepdims=true}
  %y: f32[3,5] = div(%e, %t)
  return %y as out, %m as m
}""", "fuse", """
graph g(%x: f32[3,5]) {
  %m: f32[3,1] = max(%x) {axes=[1], keepdims=true}
  %mm: f32[1,5] = max(%x) {axes=[0], keepdims=true}
  %s: f32[3,5] = sub(%x, %mm)
  %0: f32[3,5] = softmax(%s) {axis=-1}
  return %0 as out, %m as m
}""")


def test_sum_over_other_axis_is_not_softmax():
    ir = """
graph g(%x: f32[3,5]) {
  %e: f32[3,5] = exp(%x)
  %t: f32[1,5] = sum(%e) {axes=[0], keepdims=true}
  %u: f32[3,1] = sum(%e) {axes=[1], keepdims=true}
  %y: f32[3,5] = div(%e, %t)
  %z: f32[3,5] = div(%y, %u)
  return %z as out
}"""
    out = check_pass(ir, "fuse", """
graph g(%x: f32[3,5]) {
  %e: f32[3,5] = exp(%x)
  %t: f32[1,5] = sum(%e) {axes=[0], keepdims=true}
  %u: f32[3,1] = sum(%e) {axes=[1], keepdims=true}
  %y: f32[3,5] = div(%e, %t)
  %z: f32[3,5] = div(%y, %u)
  return %z as out
}""")
    assert "softmax" not in out.op_counts()
