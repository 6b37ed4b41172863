"""fusion/matmul_bias: matmul(x, w) + b → linear."""

import graphforge as gf
from graphforge.passes import fusion, optimize
from passtest import assert_equivalent, check_pass


def test_in_out_weight_gives_transpose_b_false():
    check_pass("""
graph g(%x: f32[batch,4]) {
  param %w: f32[4,3]
  param %b: f32[3]
  %m: f32[batch,3] = matmul(%x, %w) @fc (m.py:1)
  %y: f32[batch,3] = add(%b, %m) @fc (m.py:2)
  return %y as out
}""", "fuse", """
graph g(%x: f32[batch,4]) {
  param %w: f32[4,3]
  param %b: f32[3]
  %0: f32[batch,3] = linear(%x, %w, %b) {activation="none", transpose_b=false} @fc (m.py:1;m.py:2)
  return %0 as out
}""")


def test_transposed_weight_gives_pytorch_layout():
    check_pass("""
graph g(%x: f32[2,5,4]) {
  param %w: f32[3,4]
  param %b: f32[1,3]
  %t: f32[4,3] = transpose(%w) {perm=[1, 0]} @fc (m.py:1)
  %m: f32[2,5,3] = matmul(%x, %t) @fc (m.py:1)
  %y: f32[2,5,3] = add(%m, %b) @fc (m.py:1)
  return %y as out
}""", "fuse", """
graph g(%x: f32[2,5,4]) {
  param %w: f32[3,4]
  param %b: f32[1,3]
  %0: f32[3] = reshape(%b) {shape=[3]} @fc (m.py:1)
  %1: f32[2,5,3] = linear(%x, %w, %0) {activation="none", transpose_b=true} @fc (m.py:1)
  return %1 as out
}""")


def test_bias_that_broadcasts_or_shared_product_is_not_fused():
    ir = """
graph g(%x: f32[batch,4]) {
  param %w: f32[4,3]
  param %b: f32[2,1,3]
  param %c: f32[3]
  %m: f32[batch,3] = matmul(%x, %w)
  %y: f32[2,batch,3] = add(%m, %b)
  %n: f32[batch,3] = matmul(%x, %w)
  %z: f32[batch,3] = add(%n, %c)
  %s: f32[batch,3] = mul(%n, %z)
  return %y as out, %s as out2
}"""
    check_pass(ir, "fuse", ir)


def test_hand_written_layer_matches_nn_linear():
    from graphforge import nn

    class Hand(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter((3, 4))
            self.bias = nn.Parameter((3,))

        def forward(self, x):
            return x @ self.weight.T + self.bias

    class Net(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.fc = layer

        def forward(self, x):
            return self.fc(x)

    spec = gf.TensorSpec(("batch", 4), "float32")
    hand = gf.trace(Net(Hand()), spec)
    ref = gf.trace(Net(nn.Linear(4, 3)), spec)
    reports = []
    opt = optimize(hand, "fuse", verify=True, report=reports.append)
    assert reports[0].stats("fuse")["matmul_bias"] == 1
    strip = lambda g: [(n.op, n.scope, sorted(n.attrs.items())) for n in g.nodes]  # noqa: E731
    assert strip(opt) == strip(ref)
    assert_equivalent(hand, opt)
