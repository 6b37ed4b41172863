"""Matrix products: ``matmul`` (batched, broadcasting, NumPy semantics) and ``linear``
(``act(x @ w.T + b)``, the Gemm-style op nn.Linear emits and the fusion pass produces)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._shapes import broadcast_shapes, require_float, same_dtype
from .common import compute_dtype, numel, unbroadcast
from .registry import Attr, OpDef, Sample, register_op

__all__ = ["matmul", "linear", "ACTIVATIONS", "apply_activation"]

F32 = "float32"
ACTIVATIONS = ("none", "relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu")


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
    from .shape_ops import reshape, transpose, unsqueeze

    g = cots[0]
    if g is None:
        return [None, None]
    a, b = inputs
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    # The cotangent with the axes NumPy dropped for 1-D operands put back (a dot product's is 0-D).
    gshape = list(g.shape)
    if a.ndim == 1:
        gshape.insert(len(gshape) - (0 if b.ndim == 1 else 1), 1)
    if b.ndim == 1:
        gshape.append(1)
    g2 = reshape(g, gshape)

    def swap(t):
        perm = list(range(t.ndim))
        perm[-2:] = perm[-1], perm[-2]
        return transpose(t, perm)

    ga = unbroadcast(matmul(g2, swap(b2)), a2.shape)
    gb = unbroadcast(matmul(swap(a2), g2), b2.shape)
    return [reshape(ga, a.shape), reshape(gb, b.shape)]


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
    """Matrix product with NumPy semantics (batched, broadcasting, 1-D operands)."""
    from .elementwise import _promote

    a, b = _promote(a, b)
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


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def apply_activation(y: np.ndarray, activation: str) -> np.ndarray:
    """The NumPy meaning of a fused ``activation`` attribute (shared by the references)."""
    from .elementwise import _erf, _softplus, _stable_sigmoid  # noqa: F401

    if activation == "none":
        return y
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "gelu":
        return 0.5 * y * (1 + _erf(y.astype(np.float64) / math.sqrt(2)).astype(y.dtype))
    if activation == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(_SQRT_2_OVER_PI * (y + 0.044715 * y ** 3)))
    if activation == "tanh":
        return np.tanh(y)
    if activation == "sigmoid":
        return _stable_sigmoid(y)
    if activation == "silu":
        return y * _stable_sigmoid(y)
    raise ShapeError(f"unknown activation {activation!r}")


def _linear_ref(xs, attrs, env=None):
    x, w = xs[0], xs[1]
    cd = compute_dtype(x)
    wt = w.astype(cd).T if attrs["transpose_b"] else w.astype(cd)
    y = np.matmul(x.astype(cd), wt)
    if len(xs) == 3:
        y = y + xs[2].astype(cd)
    return [apply_activation(y, attrs["activation"]).astype(x.dtype)]


def _activate(t, activation):
    from . import elementwise as E

    return {
        "none": lambda v: v, "relu": E.relu, "gelu": E.gelu, "gelu_tanh": lambda v: E.gelu(v, "tanh"),
        "tanh": E.tanh, "sigmoid": E.sigmoid, "silu": E.silu,
    }[activation](t)


def _linear_decompose(inputs, attrs):
    from .shape_ops import transpose

    x, w = inputs[0], inputs[1]
    y = matmul(x, transpose(w) if attrs["transpose_b"] else w)
    if len(inputs) == 3:
        y = y + inputs[2]
    return [_activate(y, attrs["activation"])]


def _linear_vjp(inputs, outputs, cots, attrs):
    from . import elementwise as E
    from .reduction import sum as reduce_sum
    from .shape_ops import reshape, transpose

    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    act = attrs["activation"]
    if act != "none":
        y = outputs[0]
        if act == "relu":
            g = E.where(y > 0, g, 0.0)
        elif act == "tanh":
            g = g * (1 - y * y)
        elif act == "sigmoid":
            g = g * y * (1 - y)
        else:  # gelu / silu need the pre-activation
            pre = linear(*inputs, transpose_b=attrs["transpose_b"])
            from ..ops.registry import get_op
            name = {"gelu": "gelu", "gelu_tanh": "gelu", "silu": "silu"}[act]
            extra = {"approximate": "tanh"} if act == "gelu_tanh" else ({"approximate": "none"} if act == "gelu" else {})
            g = get_op(name).vjp([pre], [_activate(pre, act)], [g], extra)[0]
    out_f = g.shape[-1]
    in_f = x.shape[-1]
    g2 = reshape(g, [-1, out_f])
    x2 = reshape(x, [-1, in_f])
    gx = matmul(g, w) if attrs["transpose_b"] else matmul(g, transpose(w))
    gw = matmul(transpose(g2), x2) if attrs["transpose_b"] else matmul(transpose(x2), g2)
    grads = [gx, gw]
    if len(inputs) == 3:
        # The bias may be (out,), (1,) or a scalar: sum the cotangent down to its shape.
        grads.append(unbroadcast(reduce_sum(g2, 0), inputs[2].shape))
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
    """``activation(x @ weight.T + bias)`` with ``weight`` of shape (out_features, in_features)."""
    args = (x, weight) if bias is None else (x, weight, bias)
    return apply("linear", *args, transpose_b=transpose_b, activation=activation)
