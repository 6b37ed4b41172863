"""fusion/linear_activation: activation after linear/matmul → linear's activation attribute."""
import pytest

from passtest import check_pass


@pytest.mark.parametrize("act, attrs, fused", [
    ("relu", "", "relu"), ("gelu", ' {approximate="none"}', "gelu"), ("gelu", ' {approximate="tanh"}', "gelu_tanh"),
    ("tanh", "", "tanh"), ("sigmoid", "", "sigmoid"), ("silu", "", "silu"),
])
def test_activation_folds_into_linear(act, attrs, fused):
    check_pass(f"""
graph g(%x: f32[batch,4]) {{
  param %w: f32[3,4]
  param %b: f32[3]
  %l: f32[batch,3] = linear(%x, %w, %b) {{activation="none", transpose_b=true}} @fc (m.py:1)
  %y: f32[batch,3] = {act}(%l){attrs} @act (m.py:2)
  return %y as out
}}""", "fuse", f"""
graph g(%x: f32[batch,4]) {{
  param %w: f32[3,4]
  param %b: f32[3]
  %0: f32[batch,3] = linear(%x, %w, %b) {{activation="{fused}", transpose_b=true}} (m.py:1;m.py:2)
  return %0 as out
}}""")


def test_matmul_activation_and_chain_with_bias():
    check_pass("""
graph g(%x: f32[batch,4]) {
  param %w: f32[4,3]
  param %b: f32[3]
  %m: f32[batch,3] = matmul(%x, %w) @net.fc (m.py:1)
  %a: f32[batch,3] = add(%m, %b) @net.fc (m.py:1)
  %y: f32[batch,3] = relu(%a) @net.act (m.py:2)
  %m2: f32[batch,3] = matmul(%y, %w2) @net.fc2 (m.py:3)
  %z: f32[batch,3] = tanh(%m2) @net.fc2 (m.py:4)
  return %z as out
}""".replace("%w2", "%w3").replace("param %b: f32[3]", "param %b: f32[3]\n  param %w3: f32[3,3]"), "fuse", """
graph g(%x: f32[batch,4]) {
  param %w: f32[4,3]
  param %b: f32[3]
  param %w3: f32[3,3]
  %0: f32[batch,3] = linear(%x, %w, %b) {activation="relu", transpose_b=false} @net (m.py:1;m.py:2)
  %1: f32[batch,3] = linear(%0, %w3) {activation="tanh", transpose_b=false} @net.fc2 (m.py:3;m.py:4)
  return %1 as out
}""")


def test_pre_activation_with_other_uses_is_not_fused():
    ir = """
graph g(%x: f32[batch,4]) {
  param %w: f32[3,4]
  %l: f32[batch,3] = linear(%x, %w) {activation="none", transpose_b=true}
  %y: f32[batch,3] = relu(%l)
  %z: f32[batch,3] = add(%y, %l)
  return %z as out
}"""
    check_pass(ir, "fuse", ir)
