"""fusion/conv_bn: conv2d followed by eval-mode batch_norm → conv2d with folded const weights."""
import numpy as np
import pytest

import graphforge as gf
from graphforge.passes import optimize
from nn_stubs import nn_ops
from passtest import assert_equivalent, assert_idempotent

IR = """
graph g(%x: f32[batch,2,5,5]) {
  param %conv.weight: f32[3,2,3,3]
  %BIAS
  param %bn.weight: f32[3]
  param %bn.bias: f32[3]
  buffer %bn.running_mean: f32[3]
  buffer %bn.running_var: f32[3]
  %c: f32[batch,3,5,5] = conv2d(%x, %conv.weight%BARG) {dilations=[1, 1], groups=1, pads=[1, 1, 1, 1], strides=[1, 1]} @conv (m.py:1)
  %y: f32[batch,3,5,5] = batch_norm(%c, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {eps=1e-05, momentum=0.1, training=false} @bn (m.py:2)
  %z: f32[batch,3,5,5] = relu(%y) @act (m.py:3)
  return %z as out
}"""


@pytest.fixture(autouse=True)
def _ops():
    with nn_ops("conv2d", "batch_norm") as real:
        yield real


def _graph(with_bias):
    text = IR.replace("%BIAS", "param %conv.bias: f32[3]" if with_bias else "").replace(
        "%BARG", ", %conv.bias" if with_bias else "")
    g = gf.parse(text)
    rng = np.random.default_rng(0)
    for name, v in g.param_values.items():
        a = rng.standard_normal(v.type.shape).astype(np.float32)
        g.params[name] = np.abs(a) + 0.5 if name.endswith("running_var") else a
    return g


@pytest.mark.parametrize("with_bias", [True, False])
def test_folds_batch_norm_into_conv(with_bias):
    g = _graph(with_bias)
    out = optimize(g, "fuse,dce", verify=True)
    assert out.op_counts() == {"conv2d": 1, "relu": 1}
    conv = out.nodes[0]
    assert conv.scope == ""  # the deepest scope containing both "conv" and "bn"
    assert conv.loc == "m.py:1;m.py:2"
    assert [out.param_values[v.name].kind for v in conv.inputs[1:]] == ["const", "const"]
    assert conv.attrs["pads"] == [1, 1, 1, 1]
    assert_equivalent(g, out, rtol=1e-4, atol=1e-4)
    assert_idempotent(out, "fuse,dce")


@pytest.mark.parametrize("with_bias", [True, False])
def test_a_fresh_norm_leaves_no_zero_bias(with_bias):
    # mean 0 and shift 0 (a freshly initialised BatchNorm): the folded bias of a bias-free conv is all
    # zeros and is not stored; a conv that had a bias keeps one
    g = _graph(with_bias)
    g.params["bn.bias"] = np.zeros(3, np.float32)
    g.params["bn.running_mean"] = np.zeros(3, np.float32)
    out = optimize(g, "fuse,dce", verify=True)
    conv = out.nodes[0]
    assert conv.op == "conv2d" and len(conv.inputs) == (3 if with_bias else 2)
    assert_equivalent(g, out, rtol=1e-4, atol=1e-4)


def test_training_mode_is_not_folded():
    # Training mode has 3 outputs (y, new running mean, new running var; docs/ARCHITECTURE.md).
    text = _graph(True).__str__().replace("training=false", "training=true").replace(
        "%y: f32[batch,3,5,5] = batch_norm", "%y: f32[batch,3,5,5], %nm: f32[3], %nv: f32[3] = batch_norm")
    g = gf.parse(text, params=_graph(True).params)
    assert "batch_norm" in optimize(g, "fuse").op_counts()


@pytest.mark.parametrize("shape,kernel", [((2, 2, 6), (3,)), ((2, 2, 3, 4, 4), (2, 2, 2))], ids=["1d", "3d"])
def test_conv_bn_folds_1d_and_3d(shape, kernel):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2) + kernel).astype(np.float32)
    stats = [rng.standard_normal(3).astype(np.float32) for _ in range(3)] + [
        np.abs(rng.standard_normal(3)).astype(np.float32) + 0.5]

    def f(x):
        y = gf.conv2d(x, gf.constant(w), padding=1)
        scale, shift, mean, var = (gf.constant(a) for a in stats)
        return gf.batch_norm(y, mean, var, scale, shift)

    g = gf.trace(f, gf.TensorSpec(("batch",) + shape[1:]))
    fused = optimize(g, "fuse")
    assert "batch_norm" not in fused.op_counts() and fused.op_counts()["conv2d"] == 1
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(gf.run(fused, [x])[0], gf.run(g, [x])[0], rtol=1e-5, atol=1e-5)
