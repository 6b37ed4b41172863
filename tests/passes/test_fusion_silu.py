"""fusion/silu: x * sigmoid(x) and x / (1 + exp(-x)) → silu (then into linear's activation)."""
import graphforge as gf
from graphforge.passes import optimize
from passtest import assert_equivalent, check_pass


def test_ir_text():
    check_pass("""
graph g(%x: f32[batch,4]) {
  %s: f32[batch,4] = sigmoid(%x) @act (a.py:1)
  %y: f32[batch,4] = mul(%s, %x) @act (a.py:1)
  return %y as out
}""", "fuse", """
graph g(%x: f32[batch,4]) {
  %0: f32[batch,4] = silu(%x) @act (a.py:1)
  return %0 as out
}""")


def test_exp_spelling_folds_into_linear():
    from graphforge import nn

    lin = nn.Linear(4, 5)

    def fn(x):
        h = lin(x)
        return h / (1 + gf.exp(-h))
    g = gf.trace(fn, gf.TensorSpec(("batch", 4), "float32"))
    out = optimize(g, verify=True)
    assert out.op_counts() == {"linear": 1}
    assert out.nodes[0].attrs["activation"] == "silu"
    assert_equivalent(g, out)


def test_different_operands_do_not_fuse():
    ir = """
graph g(%x: f32[4], %z: f32[4]) {
  %s: f32[4] = sigmoid(%z)
  %y: f32[4] = mul(%s, %x)
  return %y as out
}"""
    check_pass(ir, "fuse", ir)
