"""Elementwise math ops ONNX names one by one: rounding (``floor``, ``ceil``, ``round`` half to even),
``mod`` (Python-style, or C-style with ``fmod=True``), inverse and hyperbolic trigonometry, float
classification (``isnan``, ``isinf``), integer bit ops (``bitwise_and/or/xor/not``, ``bit_shift``) and
``bitcast`` (the same bits read as another dtype of the same width).

Gradients: rounding has a zero derivative almost everywhere (its VJP is a symbolic zero, so
straight-through tricks stay explicit); ``mod``'s is ``(g, -g * q)`` with ``q`` its rounded quotient;
classification and bit ops are not differentiable.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._shapes import broadcast_shapes, require_float, same_dtype
from .common import compute_dtype, elementwise_flops, out_like, unbroadcast
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _elementwise

__all__ = ["floor", "ceil", "round", "mod", "isnan", "isinf", "acos", "asin", "atan", "acosh", "asinh",
           "atanh", "sinh", "cosh", "tan", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
           "bit_shift", "bitcast", "MATH_UNARY_OPS", "BITWISE_OPS"]

_F32 = "float32"


def _float_rule(ts, attrs):
    require_float(ts[0])
    return out_like(ts[0])


def _float_ref(fn):
    def ref(xs, attrs, env=None):
        x = xs[0]
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x.astype(compute_dtype(x)))).astype(x.dtype)]
    return ref


def _unary_vjp(rule):
    def vjp(inputs, outputs, cotangents, attrs):
        g = cotangents[0]
        return [None if g is None or rule is None else rule(inputs[0], outputs[0], g)]
    return vjp


def _samples(domain: str, grad: bool = True):
    return [
        Sample([TensorType((3, 4), _F32)], domain=[domain], grad=grad),
        Sample([TensorType(("batch", 5), _F32)], bind={"batch": 2}, domain=[domain], grad=grad),
        Sample([TensorType((2, 3), "float64")], domain=[domain], grad=grad),
        Sample([TensorType((), _F32)], domain=[domain], grad=grad),
    ]


# Rounding: values whose fraction is far from the jump points, so finite differences see the flat part.
_ROUNDING = np.array([[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, -0.7, 0.3], [3.2, -3.8, 0.0, 7.6]])
_FLAT = np.array([[0.3, -1.7, 2.2, -0.6], [1.3, 3.4, -2.8, 0.7], [5.25, -4.65, 0.35, -0.25]])


def _sqrt_(x):
    return apply("sqrt", x)


# name: (numpy fn, vjp rule(x, y, g) or None for a zero cotangent, flops per element, sample domain)
_UNARY = {
    "floor": (np.floor, None, 1, "any"),
    "ceil": (np.ceil, None, 1, "any"),
    "round": (np.round, None, 1, "any"),  # np.round is half to even, like ONNX Round and XLA
    "acos": (np.arccos, lambda x, y, g: -g / _sqrt_(1.0 - x * x), 8, "unit"),
    "asin": (np.arcsin, lambda x, y, g: g / _sqrt_(1.0 - x * x), 8, "unit"),
    "atan": (np.arctan, lambda x, y, g: g / (1.0 + x * x), 8, "any"),
    "acosh": (np.arccosh, lambda x, y, g: g / _sqrt_(x * x - 1.0), 8, "above_one"),
    "asinh": (np.arcsinh, lambda x, y, g: g / _sqrt_(x * x + 1.0), 8, "any"),
    "atanh": (np.arctanh, lambda x, y, g: g / (1.0 - x * x), 8, "unit"),
    "sinh": (np.sinh, lambda x, y, g: g * cosh(x), 4, "any"),
    "cosh": (np.cosh, lambda x, y, g: g * sinh(x), 4, "any"),
    "tan": (np.tan, lambda x, y, g: g * (1.0 + y * y), 4, "unit"),
}
MATH_UNARY_OPS = tuple(_UNARY)

for _name, (_fn, _rule, _flops, _domain) in _UNARY.items():
    if _name in ("floor", "ceil", "round"):
        _smp = [Sample([TensorType((3, 4), _F32)], domain=[_ROUNDING], grad=False),
                Sample([TensorType(("batch", 4), "float64")], bind={"batch": 3}, domain=[_ROUNDING], grad=False),
                Sample([TensorType((2, 3), "float16")], domain=["any"], grad=False),
                # the gradient (zero) is checked where the function is flat: fractions 0.2..0.4
                Sample([TensorType((3, 4), "float64")], domain=[_FLAT])]
    else:
        _smp = _samples(_domain)
    register_op(OpDef(
        name=_name, family="math", num_inputs=(1, 1), type_rule=_float_rule, reference=_float_ref(_fn),
        flops=elementwise_flops(_flops), vjp=_unary_vjp(_rule), samples=_smp, elementwise=True,
        doc=f"Elementwise {_name} of a float tensor.",
    ))


def _unary_api(name):
    def fn(x):
        return apply(name, x)
    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name} (float tensors)."
    return fn


floor = _unary_api("floor")
ceil = _unary_api("ceil")
acos = _unary_api("acos")
asin = _unary_api("asin")
atan = _unary_api("atan")
acosh = _unary_api("acosh")
asinh = _unary_api("asinh")
atanh = _unary_api("atanh")
sinh = _unary_api("sinh")
cosh = _unary_api("cosh")
tan = _unary_api("tan")
_round = _unary_api("round")


def round(x):  # noqa: A001 - the op's name
    """Round to the nearest integer, halves to even (``round(2.5) == 2``), like ONNX Round and NumPy."""
    return _round(x)


# ---- classification ------------------------------------------------------------------------------

def _classify_rule(ts, attrs):
    require_float(ts[0])
    return out_like(ts[0], "bool")


def _isinf_ref(xs, attrs, env=None):
    x = xs[0].astype(compute_dtype(xs[0]))
    pos = np.isposinf(x) if attrs["detect_positive"] else np.zeros(x.shape, bool)
    neg = np.isneginf(x) if attrs["detect_negative"] else np.zeros(x.shape, bool)
    return [np.asarray(pos | neg)]


_SPECIALS = np.array([[0.0, np.inf, -np.inf, np.nan], [1.5, -2.0, np.nan, np.inf]])

register_op(OpDef(
    name="isnan", family="math", num_inputs=(1, 1), type_rule=_classify_rule,
    reference=lambda xs, attrs, env=None: [np.isnan(xs[0].astype(compute_dtype(xs[0])))],
    flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[Sample([TensorType((2, 4), _F32)], domain=[_SPECIALS]),
             Sample([TensorType(("batch", 4), "float64")], bind={"batch": 2}, domain=[_SPECIALS]),
             Sample([TensorType((2, 4), "float16")], domain=[_SPECIALS])],
))
register_op(OpDef(
    name="isinf", family="math", num_inputs=(1, 1), type_rule=_classify_rule, reference=_isinf_ref,
    attrs={"detect_positive": Attr("bool", True), "detect_negative": Attr("bool", True)},
    flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[Sample([TensorType((2, 4), _F32)], domain=[_SPECIALS]),
             Sample([TensorType(("batch", 4), "float64")], bind={"batch": 2}, domain=[_SPECIALS],
                    attrs={"detect_negative": False}),
             Sample([TensorType((2, 4), _F32)], domain=[_SPECIALS], attrs={"detect_positive": False})],
))


def isnan(x):
    """True where ``x`` is NaN."""
    return apply("isnan", x)


def isinf(x, detect_positive: bool = True, detect_negative: bool = True):
    """True where ``x`` is +inf (``detect_positive``) or -inf (``detect_negative``)."""
    return apply("isinf", x, detect_positive=detect_positive, detect_negative=detect_negative)


# ---- mod -------------------------------------------------------------------------------------------

def _binary_numeric_rule(ts, attrs):
    dtype = same_dtype(ts)
    if dtype == "bool":
        raise DTypeError(f"expects numeric tensors, got {', '.join(map(str, ts))}")
    return [TensorType(broadcast_shapes(ts[0].shape, ts[1].shape), dtype)]


def _mod_ref(xs, attrs, env=None):
    a, b = xs
    dtype = a.dtype
    cd = compute_dtype(a)
    a, b = a.astype(cd), b.astype(cd)
    with np.errstate(all="ignore"):
        if np.issubdtype(cd, np.integer):
            # integer modulo by zero is 0 (like integer div's contract), never a trap
            safe = np.where(b == 0, 1, b)
            r = np.fmod(a, safe) if attrs["fmod"] else np.mod(a, safe)
            out = np.where(b == 0, 0, r)
        else:
            out = np.fmod(a, b) if attrs["fmod"] else np.mod(a, b)
    return [np.asarray(out).astype(dtype)]


def _mod_vjp(inputs, outputs, cotangents, attrs):
    g = cotangents[0]
    if g is None:
        return [None, None]
    a, b = inputs
    q = apply("div", a, b)
    if attrs["fmod"]:  # a - trunc(a/b) * b
        q = apply("where", apply("less", q, q * 0.0), ceil(q), floor(q))
    else:  # a - floor(a/b) * b
        q = floor(q)
    return [unbroadcast(g, a.shape), unbroadcast(-(g * q), b.shape)]


# a / b stays >= 0.05 from an integer for every pairing (also after the values are repeated to other shapes)
_MOD_A = np.array([[2.3, -1.1, 5.3], [-4.1, 0.9, 7.3]])
_MOD_B = np.array([[1.0, 0.8, -1.5], [1.2, -2.0, 2.0]])
_MOD_INT = np.array([[-7, -3, 0, 3, 7, 5], [9, -9, 4, -4, 13, -1]])
_MOD_DIV = np.array([[2, -2, 3, 3, -2, 0], [4, 4, -3, -3, 5, 7]])

register_op(OpDef(
    name="mod", family="math", num_inputs=(2, 2), type_rule=_binary_numeric_rule, reference=_mod_ref,
    attrs={"fmod": Attr("bool", False)}, flops=elementwise_flops(3), vjp=_mod_vjp, elementwise=True,
    samples=[
        Sample([TensorType((2, 6), "int32"), TensorType((2, 6), "int32")], domain=[_MOD_INT, _MOD_DIV], grad=False),
        Sample([TensorType((2, 6), "int64"), TensorType((2, 6), "int64")], attrs={"fmod": True},
               domain=[_MOD_INT, _MOD_DIV], grad=False),
        Sample([TensorType(("batch", 4), _F32), TensorType((4,), _F32)], bind={"batch": 3},
               domain=["any", np.array([0.7, -1.3, 2.1, -0.45])], grad=False),
        Sample([TensorType((3, 4), "float64"), TensorType((), "float64")], attrs={"fmod": True},
               domain=["any", np.array(0.8)], grad=False),
        # gradients where the quotient is far from an integer (the remainder is smooth there)
        Sample([TensorType((2, 3), "float64"), TensorType((2, 3), "float64")],
               domain=[_MOD_A, _MOD_B]),
        Sample([TensorType((2, 3), "float64"), TensorType((2, 3), "float64")], attrs={"fmod": True},
               domain=[_MOD_A, _MOD_B]),
        Sample([TensorType((2, 6), "uint8"), TensorType((2, 6), "uint8")], domain=["int:0:200", "int:1:9"], grad=False),
    ],
))


def mod(a, b, fmod: bool = False):
    """Remainder of ``a / b``: the sign of ``b`` (Python's ``%``), or of ``a`` with ``fmod=True``
    (C's ``fmod``). Integer remainders by zero are 0."""
    a, b = _elementwise._promote(a, b)
    return apply("mod", a, b, fmod=fmod)


# ---- bit ops -------------------------------------------------------------------------------------

def _int_rule(ts, attrs):
    dtype = same_dtype(ts)
    if not _dt.is_int(dtype) or dtype in _dt.PACKED_BITS:
        raise DTypeError(f"expects integer tensors (8 to 64 bits), got {', '.join(map(str, ts))}",
                         hint="use logical_and/logical_or/logical_xor/logical_not for booleans")
    return [TensorType(broadcast_shapes(*(t.shape for t in ts)), dtype)]


def _shift_ref(xs, attrs, env=None):
    a, b = np.broadcast_arrays(*xs)
    bits = a.dtype.itemsize * 8
    valid = (b >= 0) & (b < bits)
    amount = np.where(valid, b, 0).astype(np.uint64)
    unsigned = np.dtype(f"u{a.dtype.itemsize}")
    if attrs["direction"] == "LEFT":  # bits shifted out are lost; on the unsigned view, so no overflow
        shifted = np.left_shift(a.view(unsigned).astype(np.uint64), amount).astype(unsigned).view(a.dtype)
        return [np.where(valid, shifted, 0).astype(a.dtype)]
    shifted = np.right_shift(a, amount.astype(a.dtype))  # arithmetic for signed, logical for unsigned
    fill = np.where(a < 0, -1, 0) if np.issubdtype(a.dtype, np.signedinteger) else 0
    return [np.where(valid, shifted, fill).astype(a.dtype)]


_BITWISE = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor}
BITWISE_OPS = tuple(_BITWISE) + ("bitwise_not", "bit_shift")


def _bin_samples():
    return [
        Sample([TensorType((3, 4), "int32"), TensorType((3, 4), "int32")], domain=["int:-100:100", "int:-100:100"]),
        Sample([TensorType(("batch", 1, 4), "uint8"), TensorType((3, 1), "uint8")], bind={"batch": 2},
               domain=["int:0:255", "int:0:255"]),
        Sample([TensorType((5,), "int64"), TensorType((), "int64")], domain=["int:-1000:1000", "int:-50:50"]),
        Sample([TensorType((2, 3), "uint16"), TensorType((2, 3), "uint16")], domain=["int:0:60000", "int:0:60000"]),
    ]


for _name, _fn in _BITWISE.items():
    register_op(OpDef(
        name=_name, family="math", num_inputs=(2, 2), type_rule=_int_rule,
        reference=lambda xs, attrs, env=None, _fn=_fn: [_fn(xs[0], xs[1]).astype(xs[0].dtype)],
        flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE, commutative=True, elementwise=True,
        samples=[Sample(s.inputs, bind=s.bind, domain=s.domain, grad=False) for s in _bin_samples()],
    ))

register_op(OpDef(
    name="bitwise_not", family="math", num_inputs=(1, 1), type_rule=_int_rule,
    reference=lambda xs, attrs, env=None: [np.invert(xs[0])], flops=elementwise_flops(1),
    vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[Sample([TensorType((3, 4), "int32")], domain=["int:-100:100"], grad=False),
             Sample([TensorType(("batch", 4), "uint8")], bind={"batch": 2}, domain=["int:0:255"], grad=False),
             Sample([TensorType((3,), "uint64")], domain=["int:0:1000"], grad=False)],
))

_SHIFT_A = np.array([[1, -7, 100, -128, 5, 64], [3, 2, -1, 127, 9, 16]])
_SHIFT_B = np.array([[1, 2, 3, 1, 40, -1], [0, 7, 31, 5, 8, 2]])

register_op(OpDef(
    name="bit_shift", family="math", num_inputs=(2, 2), type_rule=_int_rule, reference=_shift_ref,
    attrs={"direction": Attr("str", "LEFT", choices=("LEFT", "RIGHT"))},
    flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[
        Sample([TensorType((2, 6), "int32"), TensorType((2, 6), "int32")], domain=[_SHIFT_A, _SHIFT_B], grad=False),
        Sample([TensorType((2, 6), "int8"), TensorType((2, 6), "int8")], attrs={"direction": "RIGHT"},
               domain=[_SHIFT_A, _SHIFT_B], grad=False),
        Sample([TensorType(("batch", 6), "uint8"), TensorType((6,), "uint8")], bind={"batch": 2},
               attrs={"direction": "RIGHT"}, domain=["int:0:255", np.array([0, 1, 3, 7, 8, 9])], grad=False),
        Sample([TensorType((4,), "uint64"), TensorType((4,), "uint64")], domain=["int:0:1000", np.array([0, 5, 63, 64])],
               grad=False),
        Sample([TensorType((2, 6), "int64"), TensorType((2, 6), "int64")], attrs={"direction": "RIGHT"},
               domain=[_SHIFT_A, _SHIFT_B], grad=False),
    ],
))


def _int_binary_api(name):
    def fn(a, b):
        a, b = _elementwise._promote(a, b)
        return apply(name, a, b)
    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name.replace('_', ' ')} of integer tensors (broadcasting)."
    return fn


bitwise_and = _int_binary_api("bitwise_and")
bitwise_or = _int_binary_api("bitwise_or")
bitwise_xor = _int_binary_api("bitwise_xor")


def bitwise_not(x):
    """Elementwise bit inversion of an integer tensor."""
    return apply("bitwise_not", x)


def bit_shift(a, b, direction: str = "LEFT"):
    """Shift ``a``'s bits by ``b`` (``"LEFT"`` or ``"RIGHT"``; right is arithmetic for signed types).
    Shifts by a negative amount or by the bit width or more give 0 (-1 for a negative ``a`` shifted right)."""
    a, b = _elementwise._promote(a, b)
    return apply("bit_shift", a, b, direction=direction)



# ---- bitcast -----------------------------------------------------------------------------------

def _bitcast_rule(ts, attrs):
    src, dst = ts[0].dtype, attrs["dtype"]
    narrow = _dt.PACKED_BITS
    if dst == "bool" or src in narrow or dst in narrow:
        raise DTypeError(f"bitcast {src} -> {dst}: bool results and sub-byte types have no defined bit layout here",
                         hint="use cast for a value conversion")
    if _dt.to_numpy_dtype(src).itemsize != _dt.to_numpy_dtype(dst).itemsize:
        raise DTypeError(f"bitcast needs dtypes of the same width, got {src} -> {dst}", hint="use cast")
    return out_like(ts[0], dst)


register_op(OpDef(
    name="bitcast", family="math", num_inputs=(1, 1), attrs={"dtype": Attr("dtype")}, type_rule=_bitcast_rule,
    reference=lambda xs, attrs, env=None: [np.ascontiguousarray(xs[0]).view(_dt.to_numpy_dtype(attrs["dtype"]))
                                           .reshape(xs[0].shape)],
    flops=elementwise_flops(0), vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[Sample([TensorType((2, 3), _F32)], attrs={"dtype": "int32"}),
             Sample([TensorType(("batch",), "int64")], attrs={"dtype": "float64"}, bind={"batch": 4},
                    domain=["int:-1000:1000"]),
             Sample([TensorType((4,), "bool")], attrs={"dtype": "uint8"}, domain=["bool"]),
             Sample([TensorType((3,), "uint16")], attrs={"dtype": "float16"}, domain=["int:0:30000"])],
))


def bitcast(x, dtype):
    """``x``'s bits read as ``dtype`` (same width; ``bitcast(f32, "int32")`` gives the IEEE bit patterns)."""
    return apply("bitcast", x, dtype=_dt.canonical_dtype(dtype))
