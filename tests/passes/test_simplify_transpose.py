"""simplify_rules/transpose: identity permutations and transpose chains."""
from passtest import check_pass


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
