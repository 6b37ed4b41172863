"""fusion/matmul_transpose: x @ W.T (W a weight) → linear(x, W)."""
from passtest import check_pass


def test_weight_transpose_becomes_linear():
    check_pass("""
graph g(%x: f32[batch,4], %k: f32[4,4]) {
  param %w: f32[3,4]
  %t: f32[4,3] = transpose(%w) {perm=none} @fc (m.py:1)
  %m: f32[batch,3] = matmul(%x, %t) @fc (m.py:1)
  %u: f32[4,4] = transpose(%k) {perm=none}
  %n: f32[batch,4] = matmul(%x, %u)
  return %m as out, %n as out2
}""", "fuse", """
graph g(%x: f32[batch,4], %k: f32[4,4]) {
  param %w: f32[3,4]
  %0: f32[batch,3] = linear(%x, %w) {activation="none", transpose_b=true} @fc (m.py:1)
  %u: f32[4,4] = transpose(%k) {perm=none}
  %n: f32[batch,4] = matmul(%x, %u)
  return %0 as out, %n as out2
}""")


def test_shared_transpose_is_kept_for_its_other_users():
    check_pass("""
graph g(%x: f32[batch,4]) {
  param %w: f32[3,4]
  %t: f32[4,3] = transpose(%w) {perm=none}
  %m: f32[batch,3] = matmul(%x, %t)
  %s: f32[4,3] = exp(%t)
  return %m as out, %s as out2
}""", "fuse", """
graph g(%x: f32[batch,4]) {
  param %w: f32[3,4]
  %t: f32[4,3] = transpose(%w) {perm=none}
  %0: f32[batch,3] = linear(%x, %w) {activation="none", transpose_b=true}
  %s: f32[4,3] = exp(%t)
  return %0 as out, %s as out2
}""")
