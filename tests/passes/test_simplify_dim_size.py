"""simplify_rules/dim_size: dim_size over static dims → constant."""
from passtest import check_pass


def test_static_dim_size_becomes_constant():
    check_pass("""
graph g(%x: f32[batch,4,5]) {
  %n: f32[] = dim_size(%x) {axes=[1, 2], dtype="float32"} @loss (l.py:3)
  %m: f32[] = dim_size(%x) {axes=[0, 1], dtype="float32"} @loss (l.py:4)
  %s: f32[batch,4,5] = div(%x, %n)
  %t: f32[batch,4,5] = mul(%s, %m)
  return %t as out
}""", "simplify", """
graph g(%x: f32[batch,4,5]) {
  %0: f32[] = constant() {value=tensor<f32[]>[20.0]} @loss (l.py:3)
  %m: f32[] = dim_size(%x) {axes=[0, 1], dtype="float32"} @loss (l.py:4)
  %s: f32[batch,4,5] = div(%x, %0)
  %t: f32[batch,4,5] = mul(%s, %m)
  return %t as out
}""")
