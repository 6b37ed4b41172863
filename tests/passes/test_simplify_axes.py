"""simplify_rules/axes: softmax/log_softmax/layer_norm axes in their negative spelling."""
import numpy as np

import graphforge as gf
from graphforge.passes import optimize
from passtest import assert_equivalent, check_pass


def test_nonnegative_axes_are_written_negative():
    check_pass("""
graph g(%x: f32[batch,3,4], %s: f32[3,4], %b: f32[3,4]) {
  %a: f32[batch,3,4] = softmax(%x) {axis=1} @attn (a.py:1)
  %l: f32[batch,3,4] = log_softmax(%a) {axis=2} @attn (a.py:2)
  %n: f32[batch,3,4] = layer_norm(%l, %s, %b) {axis=1, eps=1e-05} @ln (a.py:3)
  %m: f32[batch,3,4] = layer_norm(%n) {axis=-1, eps=1e-05} @ln (a.py:4)
  return %m as out
}""", "simplify", """
graph g(%x: f32[batch,3,4], %s: f32[3,4], %b: f32[3,4]) {
  %a: f32[batch,3,4] = softmax(%x) {axis=-2} @attn (a.py:1)
  %l: f32[batch,3,4] = log_softmax(%a) {axis=-1} @attn (a.py:2)
  %n: f32[batch,3,4] = layer_norm(%l, %s, %b) {axis=-2, eps=1e-05} @ln (a.py:3)
  %m: f32[batch,3,4] = layer_norm(%n) {axis=-1, eps=1e-05} @ln (a.py:4)
  return %m as out
}""")


def test_two_spellings_of_one_softmax_merge():
    g = gf.trace(lambda x: gf.softmax(x, 1) + gf.softmax(x, -1), gf.TensorSpec((2, 5), "float32"))
    out = optimize(g, "simplify,cse,dce", verify=True)
    assert out.op_counts() == {"add": 1, "softmax": 1}
    assert_equivalent(g, out)
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_allclose(gf.run(out, {"x": x})[0], gf.run(g, {"x": x})[0], rtol=1e-6)
