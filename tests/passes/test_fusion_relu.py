"""fusion/relu: maximum(x, 0) and clip(x, min=0) → relu (then into linear's activation)."""
import graphforge as gf
from graphforge.passes import fusion, optimize
from passtest import assert_equivalent, check_pass


def test_ir_text_maximum_either_order_and_clip():
    check_pass("""
graph g(%x: f32[batch,4]) {
  %z: f32[] = constant() {value=tensor<f32[]>[0.0]} @act (a.py:1)
  %a: f32[batch,4] = maximum(%x, %z) @act (a.py:1)
  %b: f32[batch,4] = maximum(%z, %a) @act (a.py:2)
  %c: f32[batch,4] = clip(%b) {max=none, min=0.0} @act (a.py:3)
  return %c as out
}""", "fuse,dce", """
graph g(%x: f32[batch,4]) {
  %0: f32[batch,4] = relu(%x) @act (a.py:1)
  %1: f32[batch,4] = relu(%0) @act (a.py:2)
  %2: f32[batch,4] = relu(%1) @act (a.py:3)
  return %2 as out
}""")


def test_other_bounds_or_broadcasts_do_not_fuse():
    ir = """
graph g(%x: f32[4], %i: i64[4]) {
  %h: f32[] = constant() {value=tensor<f32[]>[0.5]}
  %z: f32[3,4] = constant() {value=tensor<f32[3,4]>[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}
  %zi: i64[] = constant() {value=tensor<i64[]>[0]}
  %a: f32[4] = maximum(%x, %h)
  %b: f32[3,4] = maximum(%a, %z)
  %c: f32[3,4] = clip(%b) {max=6.0, min=0.0}
  %d: i64[4] = maximum(%i, %zi)
  return %c as out, %d as idx
}"""
    check_pass(ir, "fuse", ir)
    reports = []
    optimize(gf.parse(ir), "fuse", report=reports.append)
    assert reports[0].stats("fuse") == {}


def test_clamp_folds_into_linear():
    from graphforge import nn

    lin = nn.Linear(4, 5)
    g = gf.trace(lambda x: lin(x).clamp(min=0), gf.TensorSpec(("batch", 4), "float32"))
    out = optimize(g, verify=True)
    assert out.op_counts() == {"linear": 1} and out.nodes[0].attrs["activation"] == "relu", str(out)
    assert_equivalent(g, out)
