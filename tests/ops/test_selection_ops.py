"""einsum (canonical equations, contraction order, the MatMul lowering), topk, the data-dependent
ops (nonzero / compress / unique: every back end, the typed refusal under jax.jit, compress's VJP)
and the 1-D / 3-D nn layers. The op-table tests run every sample of these ops on every back end."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.ops.contraction import canonical_equation, contraction_path

RNG = np.random.default_rng(19)
BACKENDS = ("reference", "jax", "onnxruntime")


# ---- einsum ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("equation,ranks,want", [
    ("ij,jk", [2, 2], "ij,jk->ik"),                       # implicit: letters seen once, sorted
    ("...ii->...i", [3], "aii->ai"),                      # ellipsis -> fresh letters
    ("...ij,...jk", [3, 4], "bij,abjk->abik"),            # ellipsis aligns from the right
    ("i,i", [1, 1], "i,i->"),
    (" bij , bjk -> bik ", [3, 3], "bij,bjk->bik"),
])
def test_canonical_equation(equation, ranks, want):
    assert canonical_equation(equation, ranks) == want


def test_einsum_matches_numpy_on_every_backend():
    a, b, c = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5)), RNG.standard_normal((5, 2))
    g = gf.trace(lambda x, y, z: gf.einsum("ij,jk,kl", x, y, z),
                 *[gf.TensorSpec(t.shape, "float64") for t in (a, b, c)])
    for backend in BACKENDS:
        (out,) = gf.run(g, [a, b, c], backend=backend)
        np.testing.assert_allclose(out, np.einsum("ij,jk,kl", a, b, c), rtol=1e-10, err_msg=backend)


def test_einsum_refuses_mismatched_letters():
    with pytest.raises(gf.ShapeError, match="axis 'j'"):
        gf.trace(lambda x, y: gf.einsum("ij,jk->ik", x, y), gf.TensorSpec((2, 3)), gf.TensorSpec((4, 5)))


def test_contraction_path_contracts_the_small_pair_first():
    # (2x100)(100x50)(50x100): contracting the first pair leaves 2x50, the second pair 100x100
    steps = contraction_path(["ij", "jk", "kl"], "il", [(2, 100), (100, 50), (50, 100)])
    assert steps[0] == (0, 1, "ik")
    steps = contraction_path(["ij", "jk", "kl"], "il", [(100, 50), (50, 100), (100, 2)])
    assert steps[0] == (1, 2, "jl")


def test_plain_batched_matmul_exports_as_one_matmul():
    g = gf.trace(lambda x, y: gf.einsum("bij,bjk->bik", x, y), gf.TensorSpec(("b", 3, 4)), gf.TensorSpec(("b", 4, 5)))
    ops = [n.op_type for n in gf.to_onnx(g).graph.node]
    assert ops == ["MatMul"], ops


def test_einsum_gradient_through_a_diagonal_and_a_summed_letter():
    x, w = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 2))
    g = gf.trace(lambda a, b: gf.sum(gf.einsum("ii,ij->j", a, b) * gf.constant(np.arange(1.0, 3.0))),
                 gf.TensorSpec((3, 3), "float64"), gf.TensorSpec((3, 2), "float64"))
    gg = gf.grad(g, wrt=["a", "b"])
    _, ga, gb = gf.run(gg, [x, w], backend="reference")
    c = np.arange(1.0, 3.0)
    np.testing.assert_allclose(ga, np.diag(w @ c), rtol=1e-12)
    np.testing.assert_allclose(gb, np.outer(np.diag(x), c), rtol=1e-12)


# ---- topk -------------------------------------------------------------------------------------------

def test_topk_values_indices_and_ties():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]], np.float32)
    g = gf.trace(lambda t: gf.topk(t, 3), gf.TensorSpec((1, 5)))
    for backend in BACKENDS:
        v, i = gf.run(g, [x], backend=backend)
        np.testing.assert_array_equal(v, [[3, 3, 3]], err_msg=backend)
        np.testing.assert_array_equal(i, [[1, 2, 4]], err_msg=backend)  # ties: the lower index first


def test_topk_refuses_k_past_the_axis():
    with pytest.raises(gf.ShapeError, match="k=6"):
        gf.trace(lambda t: gf.topk(t, 6), gf.TensorSpec((2, 5)))


# ---- data-dependent lengths -------------------------------------------------------------------------

def test_data_dependent_results_on_every_backend():
    x = np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 0.0]], np.float32)
    cond = np.array([True, False, True])

    def f(t, c):
        values, first, inverse, counts = gf.unique(t)
        return gf.nonzero(t), gf.compress(t, c, axis=1), values, counts

    g = gf.trace(f, gf.TensorSpec((2, 3)), gf.TensorSpec((3,), "bool"))
    assert any(d not in (2, 3) for v in g.outputs for d in v.type.shape if isinstance(d, str))
    for backend in BACKENDS:
        nz, kept, values, counts = gf.run(g, [x, cond], backend=backend)
        np.testing.assert_array_equal(nz, np.array(np.nonzero(x)), err_msg=backend)
        np.testing.assert_array_equal(kept, x[:, cond], err_msg=backend)
        np.testing.assert_array_equal(values, [0.0, 1.0, 2.0], err_msg=backend)
        np.testing.assert_array_equal(counts, [3, 2, 1], err_msg=backend)


def test_jit_lowering_refuses_a_data_dependent_length_naming_the_op():
    from graphforge.runtimes import jax as gf_jax

    g = gf.trace(lambda t: gf.nonzero(t), gf.TensorSpec((4,)))
    with pytest.raises(gf.UnsupportedOpError, match="nonzero.*depends on the data"):
        gf_jax.lower(g, {})


def test_compress_gradient_scatters_onto_the_kept_positions():
    x = RNG.standard_normal((3, 4))
    w = RNG.standard_normal((3, 4))
    cond = np.array([True, False, True, True])
    # (two compress nodes get two distinct length symbols, so the weight is applied before compressing)
    g = gf.trace(lambda t, c: gf.sum(gf.compress(t * gf.constant(w, "float64"), c, axis=1)),
                 gf.TensorSpec((3, 4), "float64"), gf.TensorSpec((4,), "bool"))
    gg = gf.grad(g, wrt=["t"])
    for backend in ("reference", "jax"):
        _, gx = gf.run(gg, [x, cond], backend=backend)
        np.testing.assert_allclose(gx, np.where(cond, w, 0.0), rtol=1e-12, err_msg=backend)


# ---- 1-D and 3-D layers -------------------------------------------------------------------------------

def test_nd_layers_have_pytorch_shapes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(2, 4, 3, padding=1)
            self.p1 = nn.MaxPool1d(2)
            self.c3 = nn.Conv3d(1, 3, (1, 3, 3), stride=(1, 2, 2))
            self.t3 = nn.ConvTranspose3d(3, 2, 2, stride=2)
            self.a3 = nn.AvgPool3d(2)
            self.t1 = nn.ConvTranspose1d(4, 2, 3, stride=2, output_padding=1)
            self.a1 = nn.AvgPool1d(3, stride=1, padding=1)
            self.m3 = nn.MaxPool3d(2, dilation=1)

        def forward(self, x, v):
            a = self.a1(self.t1(self.p1(self.c1(x))))
            b = self.m3(self.a3(self.t3(self.c3(v))))
            return a, b

    g = gf.trace(Net(), gf.TensorSpec(("batch", 2, 8)), gf.TensorSpec(("batch", 1, 4, 9, 9)), seed=0)
    assert [tuple(v.type.shape) for v in g.outputs] == [("batch", 2, 10), ("batch", 2, 2, 2, 2)]
    assert g.params["c3.weight"].shape == (3, 1, 1, 3, 3) and g.params["t3.weight"].shape == (3, 2, 2, 2, 2)
    x, v = RNG.standard_normal((2, 2, 8)).astype(np.float32), RNG.standard_normal((2, 1, 4, 9, 9)).astype(np.float32)
    want = gf.run(g, [x, v], backend="reference")
    for backend in ("jax", "onnxruntime"):
        for a, b in zip(gf.run(g, [x, v], backend=backend), want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=backend)


def test_max_pool2d_stays_2d():
    with pytest.raises(gf.ShapeError):
        gf.trace(lambda x: gf.max_pool2d(x, 2), gf.TensorSpec((1, 3, 8)))


def test_non_max_suppression_functional_api():
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 10, 1, 11]]], np.float32)
    scores = np.array([[[0.9, 0.95, 0.5]]], np.float32)
    g = gf.trace(lambda b, s: gf.non_max_suppression(b, s, 5, 0.5, score_threshold=0.6),
                 gf.TensorSpec((1, 3, 4)), gf.TensorSpec((1, 1, 3)))
    for backend in BACKENDS:
        (sel,) = gf.run(g, [boxes, scores], backend=backend)
        np.testing.assert_array_equal(sel, [[0, 0, 1]], err_msg=backend)  # box 0 overlaps box 1; box 2 scores 0.5
