"""Matrix products: ``matmul`` (batched, broadcasting, NumPy semantics) and ``linear``
(``act(x @ w.T + b)``, the Gemm-style op nn.Linear emits and the fusion pass produces)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._shapes import broadcast_shapes, require_float, same_dtype
from .common import compute_dtype, numel, unbroadcast
from .registry import Attr, OpDef, Sample, get_op, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _elementwise, reduction as _reduction, shape_ops as _shape_ops

__all__ = ["matmul", "linear", "ACTIVATIONS", "ACTIVATION_OPS", "activation_op", "activation_name",
           "apply_activation"]

F32 = "float32"

# The one table of linear's fused activations: attribute value -> (elementwise op, its attributes).
# ``linear(activation=a)`` means that op applied to ``linear(activation="none")``; the reference, the
# decomposition, the VJP and every back end's lowering go through the op itself, so no activation
# formula is written twice.
ACTIVATION_OPS: dict[str, tuple[str, dict]] = {
    "relu": ("relu", {}),
    "gelu": ("gelu", {"approximate": "none"}),
    "gelu_tanh": ("gelu", {"approximate": "tanh"}),
    "tanh": ("tanh", {}),
    "sigmoid": ("sigmoid", {}),
    "silu": ("silu", {}),
}
"""Fused-activation name -> (the op it stands for, that op's attributes)."""
ACTIVATIONS = ("none",) + tuple(ACTIVATION_OPS)
"""The values ``linear``'s (and the fused nodes') ``activation`` attribute accepts."""


def activation_op(activation: str) -> tuple[str, dict] | None:
    """The ``(op, attrs)`` a fused ``activation`` stands for; None for ``"none"``."""
    if activation == "none":
        return None
    try:
        op, attrs = ACTIVATION_OPS[activation]
    except KeyError:
        raise ShapeError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}") from None
    return op, dict(attrs)


def activation_name(op: str, attrs: dict) -> str | None:
    """The ``activation`` value that fuses the elementwise ``op`` with ``attrs`` (None: not fusable)."""
    for name, (act_op, act_attrs) in ACTIVATION_OPS.items():
        if act_op == op and all(attrs.get(k) == v for k, v in act_attrs.items()):
            return name
    return None


def _matmul_rule(ts, attrs):
    a, b = ts
    dtype = same_dtype(ts, "matmul operands")
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"matmul needs operands of rank >= 1, got {a} and {b}", hint="use * for scalars")
    ash = (1,) + a.shape if a.rank == 1 else a.shape
    bsh = b.shape + (1,) if b.rank == 1 else b.shape
    if ash[-1] != bsh[-2]:
        raise ShapeError(f"matmul: contracting dims differ: {a} @ {b} ({ash[-1]} vs {bsh[-2]})")
    batch = broadcast_shapes(ash[:-2], bsh[:-2])
    shape = batch + (ash[-2], bsh[-1])
    if a.rank == 1:
        shape = shape[:-2] + shape[-1:]
    if b.rank == 1:
        shape = shape[:-1]
    return [TensorType(shape, dtype)]


def _matmul_ref(xs, attrs, env=None):
    a, b = xs
    cd = compute_dtype(a)
    return [np.matmul(a.astype(cd), b.astype(cd)).astype(a.dtype)]


def _matmul_flops(ins, outs, attrs):
    a = ins[0]
    k = int(a.shape[-1])
    return 2 * k * numel(outs[0])


def _matmul_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None]
    a, b = inputs
    a2 = _shape_ops.unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = _shape_ops.unsqueeze(b, -1) if b.ndim == 1 else b
    # The cotangent with the axes NumPy dropped for 1-D operands put back (a dot product's is 0-D).
    gshape = list(g.shape)
    if a.ndim == 1:
        gshape.insert(len(gshape) - (0 if b.ndim == 1 else 1), 1)
    if b.ndim == 1:
        gshape.append(1)
    g2 = _shape_ops.reshape(g, gshape)

    def swap(t):
        perm = list(range(t.ndim))
        perm[-2:] = perm[-1], perm[-2]
        return _shape_ops.transpose(t, perm)

    ga = unbroadcast(matmul(g2, swap(b2)), a2.shape)
    gb = unbroadcast(matmul(swap(a2), g2), b2.shape)
    return [_shape_ops.reshape(ga, a.shape), _shape_ops.reshape(gb, b.shape)]


register_op(OpDef(
    name="matmul", family="linalg", num_inputs=(2, 2), type_rule=_matmul_rule, reference=_matmul_ref,
    flops=_matmul_flops, vjp=_matmul_vjp,
    samples=[Sample([TensorType((3, 4), F32), TensorType((4, 5), F32)]),
             Sample([TensorType(("batch", 2, 3, 4), F32), TensorType((4, 2), F32)], bind={"batch": 2}),
             Sample([TensorType((2, 1, 3, 4), F32), TensorType((5, 4, 2), F32)]),
             Sample([TensorType((4,), "float64"), TensorType((2, 4, 3), "float64")]),
             Sample([TensorType((2, 3, 4), "float64"), TensorType((4,), "float64")]),
             Sample([TensorType((4,), F32), TensorType((4,), F32)], note="dot product (0-D result)"),
             Sample([TensorType(("batch", 3), F32), TensorType((3,), F32)], bind={"batch": 2})],
))


def matmul(a, b):
    """Matrix product with NumPy semantics (batched, broadcasting, 1-D operands).

    Args:
        a: the left operand.
        b: the right operand.
    """

    a, b = _elementwise._promote(a, b)
    return apply("matmul", a, b)


# ---- linear ---------------------------------------------------------------------------------

def _linear_rule(ts, attrs):
    x, w = ts[0], ts[1]
    require_float(x)
    same_dtype(ts, "linear's input, weight and bias")
    if w.rank != 2:
        raise ShapeError(f"linear: the weight must be 2-D, got {w}")
    if x.rank < 1:
        raise ShapeError(f"linear: the input must have rank >= 1, got {x}")
    out_f, in_f = (w.shape if attrs["transpose_b"] else w.shape[::-1])
    if x.shape[-1] != in_f:
        raise ShapeError(f"linear: the input has {x.shape[-1]} features (its last dim) but the weight "
                         f"{w} expects {in_f}",
                         hint=f"the layer was declared with in_features={in_f}; make it match the input "
                              f"({x.shape[-1]}) or reshape the input")
    if len(ts) == 3 and tuple(ts[2].shape) not in ((out_f,), (1,), ()):
        raise ShapeError(f"linear: the bias has shape {ts[2]} but there are {out_f} output features")
    return [TensorType(x.shape[:-1] + (out_f,), x.dtype)]


def apply_activation(y: np.ndarray, activation: str) -> np.ndarray:
    """The NumPy meaning of a fused ``activation`` attribute: the activation op's own reference.

    Args:
        y: a NumPy array.
        activation: ``"none"`` or a name of ``gf.ACTIVATIONS``.
    """
    act = activation_op(activation)
    if act is None:
        return y
    op, attrs = act
    return get_op(op).reference([y], attrs)[0]


def _linear_ref(xs, attrs, env=None):
    x, w = xs[0], xs[1]
    cd = compute_dtype(x)
    wt = w.astype(cd).T if attrs["transpose_b"] else w.astype(cd)
    y = np.matmul(x.astype(cd), wt)
    if len(xs) == 3:
        y = y + xs[2].astype(cd)
    return [apply_activation(y, attrs["activation"]).astype(x.dtype)]


def _activate(t, activation):
    act = activation_op(activation)
    if act is None:
        return t
    op, attrs = act
    return apply(op, t, **attrs)


def _linear_decompose(inputs, attrs):
    x, w = inputs[0], inputs[1]
    y = matmul(x, _shape_ops.transpose(w) if attrs["transpose_b"] else w)
    if len(inputs) == 3:
        y = y + inputs[2]
    return [_activate(y, attrs["activation"])]


def _linear_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    act = activation_op(attrs["activation"])
    if act is not None:
        # the activation op's own VJP, at the pre-activation (dead, and removed by DCE, when that
        # VJP reads only the output, as tanh's and sigmoid's do)
        op, act_attrs = act
        pre = linear(*inputs, transpose_b=attrs["transpose_b"])
        g = get_op(op).vjp([pre], [outputs[0]], [g], act_attrs)[0]
    out_f = g.shape[-1]
    in_f = x.shape[-1]
    g2 = _shape_ops.reshape(g, [-1, out_f])
    x2 = _shape_ops.reshape(x, [-1, in_f])
    gx = matmul(g, w) if attrs["transpose_b"] else matmul(g, _shape_ops.transpose(w))
    gw = matmul(_shape_ops.transpose(g2), x2) if attrs["transpose_b"] else matmul(_shape_ops.transpose(x2), g2)
    grads = [gx, gw]
    if len(inputs) == 3:
        # The bias may be (out,), (1,) or a scalar: sum the cotangent down to its shape.
        grads.append(unbroadcast(_reduction.sum(g2, 0), inputs[2].shape))
    return grads


def _linear_flops(ins, outs, attrs):
    k = int(ins[0].shape[-1])
    return 2 * k * numel(outs[0]) + (numel(outs[0]) if len(ins) == 3 else 0)


register_op(OpDef(
    name="linear", family="linalg", num_inputs=(2, 3),
    attrs={"transpose_b": Attr("bool", True), "activation": Attr("str", "none", choices=ACTIVATIONS)},
    type_rule=_linear_rule, reference=_linear_ref, flops=_linear_flops, vjp=_linear_vjp,
    decompose=_linear_decompose,
    doc="act(x @ w.T + b) with w of shape (out, in) (PyTorch layout); transpose_b=False takes (in, out).",
    samples=[Sample([TensorType((3, 4), F32), TensorType((5, 4), F32), TensorType((5,), F32)]),
             Sample([TensorType(("batch", 4), F32), TensorType((5, 4), F32), TensorType((5,), F32)],
                    attrs={"activation": "relu"}, bind={"batch": 2}, domain=["any", "any", "nonzero"]),
             Sample([TensorType((2, 3, 4), "float64"), TensorType((4, 6), "float64")],
                    attrs={"transpose_b": False, "activation": "gelu"}),
             Sample([TensorType((2, 4), F32), TensorType((3, 4), F32), TensorType((3,), F32)],
                    attrs={"activation": "tanh"}),
             Sample([TensorType((2, 4), F32), TensorType((3, 4), F32), TensorType((3,), F32)],
                    attrs={"activation": "gelu_tanh"}),
             Sample([TensorType((2, 4), F32), TensorType((3, 4), F32), TensorType((3,), F32)],
                    attrs={"activation": "silu"}),
             Sample([TensorType((2, 4), F32), TensorType((3, 4), F32)], attrs={"activation": "sigmoid"}),
             Sample([TensorType(("batch", 4), F32), TensorType((3, 4), F32), TensorType((1,), F32)],
                    bind={"batch": 2}, note="broadcast bias"),
             Sample([TensorType((4,), "float64"), TensorType((3, 4), "float64"), TensorType((), "float64")],
                    note="1-D input, scalar bias")],
))


def linear(x, weight, bias=None, *, transpose_b: bool = True, activation: str = "none"):
    """``activation(x @ weight.T + bias)`` with ``weight`` of shape (out_features, in_features).

    Args:
        x: the input, (..., in_features).
        weight: (out_features, in_features), or (in, out) with ``transpose_b=False``.
        bias: None or (out_features,).
        transpose_b: whether ``weight`` is stored transposed (PyTorch's layout).
        activation: a fused activation: ``"none"`` or one of ``gf.ACTIVATIONS``.
    """
    args = (x, weight) if bias is None else (x, weight, bias)
    return apply("linear", *args, transpose_b=transpose_b, activation=activation)
