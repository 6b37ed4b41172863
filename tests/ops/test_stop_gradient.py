"""``gf.stop_gradient`` and the gradient contract of ``OpDef.nondiff_inputs`` (graphforge/ops/barrier.py).

An input an op declares non-differentiable must get no gradient on any path: ``gf.grad``'s gradient
graph, ``jax.grad`` of the JAX lowering of the op itself (``runtimes/jax/lower.py``), and
``jax.grad`` of the op's decomposition when the JAX table decomposes it (``passes/decompose.py``).
The 10,000-graph fuzz tier found the last one broken (seed 2620: ``roi_align``'s boxes got a
gradient from JAX and none from ``gf.grad``). The op-table tests run the samples on every back end.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

import graphforge as gf
from graphforge.runtimes.jax import lower, x64
from graphforge.ops.registry import OpDef, register_op, unregister_op
from graphforge.trace.tensor import apply
from graphforge.runtimes.jax.lower import LOWERINGS, has_lowering

RNG = np.random.default_rng(3)


def _jax_grads(graph, arrays, wrt_positions):
    """``jax.grad`` of the graph's first output (a scalar) through graphforge's JAX lowering."""
    def loss(diff):
        xs = [jax.numpy.asarray(a) for a in arrays]
        for i, d in zip(wrt_positions, diff):
            xs[i] = d
        return fn({}, tuple(xs))[0]

    with x64():
        fn = lower(graph, {})
        return [np.asarray(g) for g in jax.grad(loss)([jax.numpy.asarray(arrays[i]) for i in wrt_positions])]


def test_stop_gradient_is_a_constant_for_gf_grad_and_jax_grad():
    """d/dx sum(x * stop_gradient(x)) = x, not 2x; the forward value is x * x."""
    x = RNG.standard_normal((3, 4))
    graph = gf.trace(lambda a: gf.sum(a * gf.stop_gradient(a)), gf.TensorSpec((3, 4), "float64"))
    tg = gf.grad(graph, wrt="a")
    for backend in ("reference", "jax", "onnxruntime"):
        loss, ga = gf.run(tg, [x], backend=backend)
        np.testing.assert_allclose(loss, (x * x).sum(), rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(ga, x, rtol=1e-12, err_msg=backend)
    (gj,) = _jax_grads(graph, [x], [0])
    np.testing.assert_allclose(gj, x, rtol=1e-12)


def test_tensor_detach_is_stop_gradient():
    """PyTorch's ``x.detach()`` in a traced model: d/dx sum(x * x.detach()) = x."""
    x = RNG.standard_normal(5)
    graph = gf.trace(lambda a: gf.sum(a * a.detach()), gf.TensorSpec((5,), "float64"))
    assert graph.op_counts()["stop_gradient"] == 1
    _, ga = gf.run(gf.grad(graph, wrt="a"), [x])
    np.testing.assert_allclose(ga, x, rtol=1e-12)


def test_stop_gradient_exports_as_no_onnx_node():
    graph = gf.trace(lambda a: gf.stop_gradient(a) + 1.0, gf.TensorSpec(("batch", 4), "float32"))
    model = gf.to_onnx(graph)
    assert [n.op_type for n in model.graph.node] == ["Add"]


def _roi_graph():
    return gf.trace(lambda a, r, i: gf.sum(gf.roi_align(a, r, i, 2, sampling_ratio=2) ** 2),
                    gf.TensorSpec((1, 2, 6, 6), "float64"), gf.TensorSpec((2, 4), "float64"),
                    gf.TensorSpec((2,), "int64"))


def test_a_decomposed_ops_nondiff_input_gets_no_gradient_from_jax():
    """``roi_align`` has no JAX lowering: JAX runs its decomposition, whose boxes must stay constant
    (torchvision's and onnxruntime's contract, and ``gf.grad``'s)."""
    assert not has_lowering("roi_align")
    x = RNG.standard_normal((1, 2, 6, 6))
    rois = np.array([[0.5, 1.0, 4.2, 3.7], [1.1, 0.2, 5.0, 5.5]])
    idx = np.zeros(2, np.int64)
    graph = _roi_graph()
    gx_jax, grois_jax = _jax_grads(graph, [x, rois, idx], [0, 1])
    assert not grois_jax.any()  # before the fix: the bilinear weights' derivative in the boxes
    for backend in ("reference", "jax"):
        _, gx, grois = gf.run(gf.grad(graph, wrt=["a", "r"]), [x, rois, idx], backend=backend)
        assert not grois.any(), backend
        np.testing.assert_allclose(gx, gx_jax, rtol=1e-10, atol=1e-12, err_msg=backend)


@pytest.fixture
def scaled_by():
    """A user op ``x * s`` whose scale ``s`` is declared non-differentiable, with its own JAX lowering."""
    name = "test_scaled_by"
    register_op(OpDef(name=name, num_inputs=(2, 2), type_rule=lambda ts, a: [ts[0]],
                      reference=lambda xs, a, env=None: [xs[0] * xs[1]],
                      vjp=lambda ins, outs, gs, a: [gs[0] * ins[1], None], nondiff_inputs=(1,)))
    LOWERINGS[name] = lambda ctx, args, attrs: [args[0] * args[1]]
    yield name
    del LOWERINGS[name]
    unregister_op(name)


def test_a_lowered_ops_nondiff_float_input_gets_no_gradient_from_jax(scaled_by):
    """An op lowered directly on JAX: its declared non-differentiable float input is a constant for
    ``jax.grad`` of the lowering as it is for ``gf.grad`` (runtimes/jax/lower.py ``apply_lowering``)."""
    x, s = RNG.standard_normal(4), RNG.standard_normal(4)
    graph = gf.trace(lambda a, b: gf.sum(apply(scaled_by, a, b) ** 2),
                     gf.TensorSpec((4,), "float64"), gf.TensorSpec((4,), "float64"))
    gx, gs = _jax_grads(graph, [x, s], [0, 1])
    assert not gs.any()
    np.testing.assert_allclose(gx, 2 * x * s * s, rtol=1e-12)
    _, gx_gf, gs_gf = gf.run(gf.grad(graph, wrt=["a", "b"]), [x, s], backend="jax")
    assert not gs_gf.any()
    np.testing.assert_allclose(gx_gf, gx, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_stop_gradient_passes_non_float_values_through(dtype):
    x = np.array([1, 0, 3]).astype(dtype)
    graph = gf.trace(lambda a: gf.stop_gradient(a), gf.TensorSpec((3,), dtype))
    for backend in ("reference", "jax", "onnxruntime"):
        (got,) = gf.run(graph, [x], backend=backend)
        assert got.dtype == x.dtype and (got == x).all(), backend
