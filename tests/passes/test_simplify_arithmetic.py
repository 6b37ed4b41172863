"""simplify_rules/arithmetic: x*1, x+0, x-0, x/1, x**1 → x, unless the unit broadcasts."""
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
