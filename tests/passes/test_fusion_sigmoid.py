"""fusion/sigmoid: 1 / (1 + exp(-x)) and reciprocal(1 + exp(-x)) → sigmoid."""
import graphforge as gf
from graphforge.passes import fusion, optimize
from passtest import assert_equivalent, check_pass


def test_ir_text():
    check_pass("""
graph g(%x: f32[batch,4]) {
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]} @act (a.py:1)
  %n: f32[batch,4] = neg(%x) @act (a.py:1)
  %e: f32[batch,4] = exp(%n) @act (a.py:1)
  %d: f32[batch,4] = add(%e, %one) @act (a.py:1)
  %y: f32[batch,4] = div(%one, %d) @act (a.py:2)
  return %y as out
}""", "fuse,dce", """
graph g(%x: f32[batch,4]) {
  %0: f32[batch,4] = sigmoid(%x) @act (a.py:1;a.py:2)
  return %0 as out
}""")


def test_shared_denominator_is_not_duplicated():
    # 1 + exp(-x) also feeds another node: fusing would compute it twice, so nothing fires.
    ir = """
graph g(%x: f32[batch,4]) {
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]}
  %n: f32[batch,4] = neg(%x)
  %e: f32[batch,4] = exp(%n)
  %d: f32[batch,4] = add(%e, %one)
  %y: f32[batch,4] = div(%one, %d)
  %r: f32[batch,4] = reciprocal(%d)
  return %y as out, %r as out2
}"""
    check_pass(ir, "fuse", ir)


def test_spellings_fuse_and_feed_silu_and_linear():
    from graphforge import nn

    lin = nn.Linear(4, 5)
    cases = {
        (lambda x: 1 / (1 + gf.exp(-x))): {"sigmoid": 1},
        (lambda x: gf.reciprocal(gf.exp(-x) + 1.0)): {"sigmoid": 1},
        (lambda x: x * (1.0 / (1.0 + gf.exp(-x)))): {"silu": 1},
        (lambda x: (lambda h: 1 / (1 + gf.exp(-h)))(lin(x))): {"linear": 1},
    }
    for fn, want in cases.items():
        g = gf.trace(fn, gf.TensorSpec(("batch", 4), "float32"))
        reports = []
        out = optimize(g, verify=True, report=reports.append)
        assert reports[0].stats("fuse").get("sigmoid") == 1
        assert out.op_counts() == want, str(out)
        assert_equivalent(g, out)


def test_other_numerator_does_not_fuse():
    ir = """
graph g(%x: f32[4]) {
  %two: f32[] = constant() {value=tensor<f32[]>[2.0]}
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]}
  %n: f32[4] = neg(%x)
  %e: f32[4] = exp(%n)
  %d: f32[4] = add(%one, %e)
  %y: f32[4] = div(%two, %d)
  return %y as out
}"""
    check_pass(ir, "fuse", ir)
