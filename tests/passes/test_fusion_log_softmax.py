"""fusion/log_softmax: log(softmax(x)) and its spelled-out form → log_softmax."""
import graphforge as gf
from graphforge.passes import optimize
from passtest import assert_equivalent, check_pass


def test_log_of_softmax():
    check_pass("""
graph g(%x: f32[batch,5]) {
  %s: f32[batch,5] = softmax(%x) {axis=-1} @head (h.py:1)
  %y: f32[batch,5] = log(%s) @head (h.py:2)
  return %y as out
}""", "fuse", """
graph g(%x: f32[batch,5]) {
  %0: f32[batch,5] = log_softmax(%x) {axis=-1} @head (h.py:1;h.py:2)
  return %0 as out
}""")


def test_spelled_out_log_softmax_and_via_softmax():
    def spelled(x):
        s = x - x.max(-1, keepdims=True)
        return s - gf.log(gf.exp(s).sum(-1, keepdims=True))

    def via_softmax(x):
        e = gf.exp(x - x.max(-1, keepdims=True))
        return gf.log(e / e.sum(-1, keepdims=True))
    for fn in (spelled, via_softmax):
        g = gf.trace(fn, gf.TensorSpec(("batch", 7), "float32"))
        out = optimize(g, "default", verify=True)
        assert out.op_counts() == {"log_softmax": 1}, str(out)
        assert_equivalent(g, out)
