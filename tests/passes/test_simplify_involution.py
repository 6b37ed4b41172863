"""simplify_rules/involution: neg(neg(x)), logical_not(logical_not(x)) → x."""
from passtest import check_pass


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


def test_double_logical_not_but_not_a_single_one():
    check_pass("""
graph g(%m: bool[4]) {
  %a: bool[4] = logical_not(%m)
  %b: bool[4] = logical_not(%a)
  %c: bool[4] = logical_not(%b)
  return %c as out
}""", "simplify", """
graph g(%m: bool[4]) {
  %a: bool[4] = logical_not(%m)
  return %a as out
}""")
