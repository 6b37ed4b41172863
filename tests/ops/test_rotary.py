"""``rotary_embedding`` (graphforge/ops/rotary.py) against onnx's reference RotaryEmbedding (4-D and
3-D inputs, interleaved, partial rotation, with and without position ids) on every back end, the one
RotaryEmbedding node at opset 23, agreement with graphforge's own rotary helper maths (a rotation
keeps each pair's norm), the gradient, and typed errors. The op-table tests run the samples."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import graphforge as gf
from graphforge.runtimes.onnx import to_onnx

RNG = np.random.default_rng(23)
ANG = RNG.uniform(0, 6, (20, 4))
COS, SIN = np.cos(ANG).astype(np.float32), np.sin(ANG).astype(np.float32)


@pytest.mark.parametrize("rank,interleaved,rot,with_pos", [(4, False, 0, True), (4, True, 0, True), (3, False, 0, True),
                                                           (4, True, 4, True), (4, False, 0, False), (3, True, 4, False)])
def test_rotary_matches_onnx_reference(rank, interleaved, rot, with_pos):
    x = RNG.standard_normal((2, 2, 3, 8) if rank == 4 else (2, 3, 16)).astype(np.float32)
    half = (rot or 8) // 2
    pos = np.array([[0, 1, 2], [7, 3, 19]])
    cos, sin = (COS[:, :half], SIN[:, :half]) if with_pos else (COS[pos][..., :half], SIN[pos][..., :half])
    attrs = {"interleaved": int(interleaved), "rotary_embedding_dim": rot}
    if rank == 3:
        attrs["num_heads"] = 2
    arrays = [x, cos, sin] + ([pos] if with_pos else [])
    names = ["X", "C", "S", "P"][:len(arrays)]
    want = ReferenceEvaluator(helper.make_node("RotaryEmbedding", names, ["Y"], **attrs)).run(None, dict(zip(names, arrays)))[0]
    specs = [gf.TensorSpec(a.shape, str(a.dtype)) for a in arrays]
    graph = gf.trace(lambda *a: gf.rotary_embedding(*a, interleaved=interleaved, rotary_embedding_dim=rot,
                                                    num_heads=attrs.get("num_heads", 0)), *specs)
    assert [n.op_type for n in to_onnx(graph, opset=23).graph.node] == ["RotaryEmbedding"]
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, arrays, backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=backend)


def test_rotary_gradient_is_the_inverse_rotation():
    """y = R x with R orthogonal per pair, so d sum(y * g) / d x = R^T g."""
    x = RNG.standard_normal((1, 1, 2, 4))
    g = RNG.standard_normal((1, 1, 2, 4))
    pos = np.array([[1, 5]])
    graph = gf.trace(lambda a, b, c, p, w: gf.sum(gf.rotary_embedding(a, b, c, p) * w),
                     gf.TensorSpec(x.shape, "float64"), gf.TensorSpec((20, 2), "float64"),
                     gf.TensorSpec((20, 2), "float64"), gf.TensorSpec((1, 2), "int64"), gf.TensorSpec(g.shape, "float64"))
    gg = gf.grad(graph, wrt=["a"])
    cos, sin = COS[:, :2].astype(np.float64), SIN[:, :2].astype(np.float64)
    c, s = cos[pos][:, None], sin[pos][:, None]
    want = np.concatenate([c * g[..., :2] + s * g[..., 2:], -s * g[..., :2] + c * g[..., 2:]], axis=-1)
    for backend in ("reference", "jax"):
        _, ga = gf.run(gg, [x, cos, sin, pos, g], backend=backend)
        np.testing.assert_allclose(ga, want, rtol=1e-6, atol=1e-7, err_msg=backend)


def test_rotary_errors_are_typed():
    with pytest.raises(gf.ShapeError, match="num_heads"):
        gf.trace(gf.rotary_embedding, gf.TensorSpec((1, 2, 6), "float32"), gf.TensorSpec((1, 2, 3), "float32"),
                 gf.TensorSpec((1, 2, 3), "float32"))
    with pytest.raises(gf.ShapeError, match="position_ids"):
        gf.trace(gf.rotary_embedding, gf.TensorSpec((1, 1, 2, 4), "float32"), gf.TensorSpec((9, 2), "float32"),
                 gf.TensorSpec((9, 2), "float32"), gf.TensorSpec((1, 3), "int64"))
    with pytest.raises(gf.ShapeError, match="even"):
        gf.trace(lambda *a: gf.rotary_embedding(*a, rotary_embedding_dim=3), gf.TensorSpec((1, 1, 2, 4), "float32"),
                 gf.TensorSpec((9, 1), "float32"), gf.TensorSpec((9, 1), "float32"), gf.TensorSpec((1, 2), "int64"))
