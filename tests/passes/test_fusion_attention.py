"""fusion/attention: softmax(q @ k^T * scale [+ mask]) @ v → attention."""
import math

import numpy as np
import pytest

import graphforge as gf
from graphforge.passes import fusion, optimize
from nn_stubs import nn_ops
from passtest import assert_equivalent, assert_idempotent, check_pass

SPEC = [gf.TensorSpec(("batch", 2, 5, 8), "float32", name=n) for n in ("q", "k", "v")]


@pytest.fixture(autouse=True)
def _ops():
    with nn_ops("attention") as real:
        yield real


def _softmax(s):
    e = gf.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _fused(g):
    out = optimize(g, verify=True)
    nodes = [n for n in out.nodes if n.op == "attention"]
    assert len(nodes) == 1, str(out)
    return out, nodes[0]


def test_scaled_by_division_default_scale():
    def fn(q, k, v):
        return _softmax(q @ k.transpose(-2, -1) / math.sqrt(8)) @ v
    g = gf.trace(fn, *SPEC)
    out, node = _fused(g)
    assert out.op_counts() == {"attention": 1}
    assert node.attrs == {"scale": None, "causal": False}
    assert_equivalent(g, out)
    assert_idempotent(out, "default")


def test_scaled_by_multiplication_with_custom_scale_and_bool_mask():
    def fn(q, k, v, m):
        s = gf.matmul(q, gf.transpose(k, [0, 1, 3, 2])) * 0.3
        return gf.softmax(gf.where(m, s, float("-inf")), -1) @ v
    g = gf.trace(fn, *SPEC, gf.TensorSpec((5, 5), "bool", name="m"))
    out, node = _fused(g)
    assert node.attrs["scale"] == pytest.approx(0.3) and len(node.inputs) == 4
    # rows with no attended key are nan on both sides; keep at least the diagonal
    inputs = {"q": np.ones((2, 2, 5, 8), np.float32), "k": np.ones((2, 2, 5, 8), np.float32),
              "v": np.arange(160, dtype=np.float32).reshape(2, 2, 5, 8), "m": np.eye(5, dtype=bool) | np.tri(5, k=-2, dtype=bool)}
    np.testing.assert_allclose(gf.run(out, inputs)[0], gf.run(g, inputs)[0], rtol=1e-5)


def test_constant_causal_additive_mask_becomes_causal():
    mask = np.triu(np.full((5, 5), -1e9, np.float32), 1)

    def fn(q, k, v):
        return _softmax(q @ k.transpose(-2, -1) * (1 / math.sqrt(8)) + mask) @ v
    g = gf.trace(fn, *SPEC)
    out, node = _fused(g)
    assert node.attrs == {"scale": None, "causal": True} and len(node.inputs) == 3
    assert out.op_counts() == {"attention": 1}
    assert_equivalent(g, out)


def test_ir_text_with_inverted_where_mask():
    check_pass("""
graph g(%q: f32[1,2,3,4], %k: f32[1,2,3,4], %v: f32[1,2,3,4], %pad: bool[1,1,1,3]) {
  %kt: f32[1,2,4,3] = transpose(%k) {perm=[0, 1, 3, 2]} @attn (a.py:1)
  %s: f32[1,2,3,3] = matmul(%q, %kt) @attn (a.py:1)
  %c: f32[] = constant() {value=tensor<f32[]>[2.0]} @attn (a.py:2)
  %t: f32[1,2,3,3] = div(%s, %c) @attn (a.py:2)
  %inf: f32[] = constant() {value=tensor<f32[]>[-inf]} @attn (a.py:3)
  %w: f32[1,2,3,3] = where(%pad, %inf, %t) @attn (a.py:3)
  %p: f32[1,2,3,3] = softmax(%w) {axis=-1} @attn (a.py:4)
  %o: f32[1,2,3,4] = matmul(%p, %v) @attn (a.py:5)
  return %o as out
}""", "fuse", """
graph g(%q: f32[1,2,3,4], %k: f32[1,2,3,4], %v: f32[1,2,3,4], %pad: bool[1,1,1,3]) {
  %0: bool[1,1,1,3] = logical_not(%pad) @attn (a.py:1;a.py:2;a.py:3;a.py:4;a.py:5)
  %1: f32[1,2,3,4] = attention(%q, %k, %v, %0) {causal=false, scale=none} @attn (a.py:1;a.py:2;a.py:3;a.py:4;a.py:5)
  return %1 as out
}""", equivalent=False)


def test_non_attention_shapes_are_left_alone():

    def fn(q, k, v):  # contraction over the wrong axis: q^T k, not q k^T
        return _softmax(gf.matmul(gf.transpose(q, [0, 1, 3, 2]), k)) @ gf.transpose(v, [0, 1, 3, 2])
    g = gf.trace(fn, *[gf.TensorSpec((1, 2, 4, 4), "float32", name=n) for n in "qkv"])
    reports = []
    assert "attention" not in optimize(g, report=reports.append).op_counts()
    assert "attention" not in reports[0].stats("fuse") and reports[0].stats("fuse")
