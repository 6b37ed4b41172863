"""Elementwise ops: unary math and activations, binary arithmetic with broadcasting, comparisons,
logic, ``where``, ``cast`` and ``clip``."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError
from ..ir.types import TensorType
from ..trace.tensor import Tensor, apply, as_value, wrap
from ._shapes import broadcast_shapes, require_float, same_dtype
from .common import compute_dtype, elementwise_flops, out_like, unbroadcast
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op

from . import strings as _strings

__all__ = [
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "relu", "leaky_relu", "sigmoid", "tanh", "erf",
    "gelu", "silu", "softplus", "sin", "cos", "reciprocal", "square", "add", "sub", "mul", "div", "pow",
    "maximum", "minimum", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not", "where", "cast", "clip", "UNARY_OPS",
    "BINARY_OPS",
]

_F32 = "float32"
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _float_ref(fn):
    """Wrap a NumPy function of one float array: half types computed in float32, dtype kept."""
    def ref(xs, attrs, env=None):
        x = xs[0]
        return [np.asarray(fn(x.astype(compute_dtype(x)), attrs)).astype(x.dtype)]
    return ref


def _unary_rule(float_only: bool, out_dtype: str | None = None):
    def rule(ts, attrs):
        if float_only:
            require_float(ts[0])
        elif out_dtype == "bool":
            if ts[0].dtype != "bool":
                raise DTypeError(f"expects a bool tensor, got {ts[0]}")
        elif ts[0].dtype == "bool":
            raise DTypeError(f"expects a numeric tensor, got {ts[0]}", hint="cast it first, e.g. x.astype('int32'), "
                             "or use logical_not for booleans")
        return out_like(ts[0], out_dtype)
    return rule


def _sample_shapes(dtype="float32", domain="any"):
    return [
        Sample([TensorType((3, 4), dtype)], domain=[domain]),
        Sample([TensorType(("batch", 5), dtype)], bind={"batch": 2}, domain=[domain]),
        Sample([TensorType((1, 2, 3), dtype)], domain=[domain]),
        Sample([TensorType((), dtype)], domain=[domain]),
    ]


def _stable_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _gelu(x, attrs):
    if attrs["approximate"] == "tanh":
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x.astype(np.float64) / math.sqrt(2)).astype(x.dtype))


def _gelu_vjp(x, y, g, attrs):
    if attrs["approximate"] == "tanh":
        c = math.sqrt(2 / math.pi)
        inner = c * (x + 0.044715 * x * x * x)
        t = tanh(inner)
        d_inner = c * (1 + 3 * 0.044715 * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner)
    cdf = 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
    pdf = exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return g * (cdf + x * pdf)


# name: (numpy fn(x, attrs), vjp(x, y, g, attrs) -> Tensor | None, flops per element, float only,
#        domain for samples, attrs)
_UNARY = {
    "neg": (lambda x, a: -x, lambda x, y, g, a: neg(g), 1, False, "any", {}),
    "exp": (lambda x, a: np.exp(x), lambda x, y, g, a: g * y, 1, True, "any", {}),
    "log": (lambda x, a: np.log(x), lambda x, y, g, a: g / x, 1, True, "positive", {}),
    "sqrt": (lambda x, a: np.sqrt(x), lambda x, y, g, a: g * 0.5 / y, 1, True, "positive", {}),
    "rsqrt": (lambda x, a: 1 / np.sqrt(x), lambda x, y, g, a: g * -0.5 * y * y * y, 2, True, "positive", {}),
    "abs": (lambda x, a: np.abs(x), lambda x, y, g, a: g * sign(x), 1, False, "nonzero", {}),
    "sign": (lambda x, a: np.sign(x), lambda x, y, g, a: None, 1, False, "any", {}),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, g, a: where(x > 0, g, 0.0), 1, True, "nonzero", {}),
    "leaky_relu": (lambda x, a: np.where(x >= 0, x, x * a["alpha"]),
                   lambda x, y, g, a: where(x >= 0, g, g * a["alpha"]), 2, True, "nonzero",
                   {"alpha": Attr("float", 0.01)}),
    "sigmoid": (lambda x, a: _stable_sigmoid(x), lambda x, y, g, a: g * y * (1 - y), 4, True, "any", {}),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, g, a: g * (1 - y * y), 4, True, "any", {}),
    "erf": (lambda x, a: _erf(x.astype(np.float64)),
            lambda x, y, g, a: g * (2 / math.sqrt(math.pi)) * exp(neg(x * x)), 8, True, "any", {}),
    "gelu": (_gelu, _gelu_vjp, 12, True, "any",
             {"approximate": Attr("str", "none", choices=("none", "tanh"))}),
    "silu": (lambda x, a: x * _stable_sigmoid(x),
             lambda x, y, g, a: g * (sigmoid(x) * (1 + x * (1 - sigmoid(x)))), 5, True, "any", {}),
    "softplus": (lambda x, a: _softplus(x), lambda x, y, g, a: g * sigmoid(x), 4, True, "any", {}),
    "sin": (lambda x, a: np.sin(x), lambda x, y, g, a: g * cos(x), 1, True, "any", {}),
    "cos": (lambda x, a: np.cos(x), lambda x, y, g, a: neg(g * sin(x)), 1, True, "any", {}),
    "reciprocal": (lambda x, a: 1 / x, lambda x, y, g, a: neg(g * y * y), 1, True, "nonzero", {}),
}
UNARY_OPS = tuple(_UNARY)
"""The names of the elementwise unary ops, in registration order (each also ``gf.<name>``)."""


def _make_unary_vjp(fn):
    def vjp(inputs, outputs, cotangents, attrs):
        g = cotangents[0]
        if g is None:
            return [None]
        return [fn(inputs[0], outputs[0], g, attrs)]
    return vjp


def _int_ref(fn):
    def ref(xs, attrs, env=None):
        x = xs[0]
        if _dt.is_float(_dt.from_numpy_dtype(x.dtype)):
            return [np.asarray(fn(x.astype(compute_dtype(x)), attrs)).astype(x.dtype)]
        return [np.asarray(fn(x, attrs)).astype(x.dtype)]
    return ref


for _name, (_fn, _vjp, _flops, _float_only, _domain, _attrs) in _UNARY.items():
    _samples = _sample_shapes(domain=_domain)
    _samples.append(Sample([TensorType((2, 3), "float64")], domain=[_domain]))
    if not _float_only:
        _samples.append(Sample([TensorType((4,), "int32")], domain=["int:-5:5"], grad=False))
    if _name == "leaky_relu":
        _samples.append(Sample([TensorType((3, 4), _F32)], attrs={"alpha": 0.2}, domain=["nonzero"]))
    if _name == "gelu":
        _samples.append(Sample([TensorType((3, 4), _F32)], attrs={"approximate": "tanh"}))
    register_op(OpDef(
        name=_name, family="elementwise", attrs=_attrs, num_inputs=(1, 1),
        type_rule=_unary_rule(_float_only), reference=_float_ref(_fn) if _float_only else _int_ref(_fn),
        flops=elementwise_flops(_flops), vjp=_make_unary_vjp(_vjp), samples=_samples, elementwise=True,
    ))


def _unary_api(name):
    def fn(x, **attrs):
        return apply(name, x, **attrs)
    fn.__name__ = name
    fn.__doc__ = (f"Elementwise {name} of the Tensor ``x`` (also ``x.{name}()`` where Tensor has the method).\n\n"
                  f"Returns a Tensor of ``x``'s shape and dtype; a ``DTypeError`` names the op when ``x``'s dtype "
                  f"is not supported.\n\nExample:\n    ```python\n    y = gf.{name}(x)\n    ```")
    return fn


neg = _unary_api("neg")
exp = _unary_api("exp")
log = _unary_api("log")
sqrt = _unary_api("sqrt")
rsqrt = _unary_api("rsqrt")
sign = _unary_api("sign")
relu = _unary_api("relu")
sigmoid = _unary_api("sigmoid")
tanh = _unary_api("tanh")
erf = _unary_api("erf")
silu = _unary_api("silu")
softplus = _unary_api("softplus")
sin = _unary_api("sin")
cos = _unary_api("cos")
reciprocal = _unary_api("reciprocal")
_abs = _unary_api("abs")


def abs(x):  # noqa: A001 - the op's name
    """Elementwise absolute value.

    Args:
        x: the input Tensor.
    """
    return _abs(x)


def leaky_relu(x, alpha: float = 0.01):
    """``x`` where positive, ``alpha * x`` elsewhere."""
    return apply("leaky_relu", x, alpha=alpha)


def gelu(x, approximate: str = "none"):
    """Gaussian error linear unit; ``approximate="tanh"`` for the tanh spelling.

    Args:
        x: the input Tensor.
        approximate: ``"none"`` (erf) or ``"tanh"``.
    """
    return apply("gelu", x, approximate=approximate)


def square(x):
    """``x * x``."""
    return mul(x, x)


# ---- binary ----------------------------------------------------------------------------------

def _binary_rule(out_bool: bool = False, float_only: bool = False, bool_only: bool = False,
                 numeric: bool = False):
    def rule(ts, attrs):
        dtype = same_dtype(ts)
        if float_only:
            require_float(ts[0])
        if bool_only and dtype != "bool":
            raise DTypeError(f"expects bool tensors, got {', '.join(map(str, ts))}")
        if numeric and dtype == "bool":
            raise DTypeError(f"expects numeric tensors, got {', '.join(map(str, ts))}",
                             hint="use logical_and/logical_or/logical_xor for booleans, or cast them first")
        return [TensorType(broadcast_shapes(ts[0].shape, ts[1].shape), "bool" if out_bool else dtype)]
    return rule


def _binary_ref(fn, out_bool=False):
    def ref(xs, attrs, env=None):
        a, b = xs
        dtype = a.dtype
        cd = compute_dtype(a)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(a.astype(cd), b.astype(cd)))
        return [out.astype(np.bool_ if out_bool else dtype)]
    return ref


def _int_div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        # C-style truncation like ONNX Div and XLA; division by zero gives 0 instead of a crash.
        safe = np.where(b == 0, 1, b)
        q = np.trunc(a.astype(np.float64) / safe).astype(a.dtype)
        return np.where(b == 0, 0, q)
    return a / b


def _int_pow(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a, np.maximum(b, 0))
    return np.power(a, b)


def _binary_vjp(rule):
    def vjp(inputs, outputs, cotangents, attrs):
        g = cotangents[0]
        if g is None:
            return [None, None]
        a, b = inputs
        ga, gb = rule(a, b, outputs[0], g)
        return [None if ga is None else unbroadcast(ga, a.shape), None if gb is None else unbroadcast(gb, b.shape)]
    return vjp


def _pow_vjp(a, b, y, g):
    gb = g * y * log(where(a > 0, a, 1.0))
    return g * b * pow(a, b - 1.0), gb


def _select_grad(pick_a):
    def rule(a, b, y, g):
        ta = pick_a(a, b)
        # Ties split the cotangent evenly, as jax.grad does.
        tie = equal(a, b)
        half = g * 0.5
        ga = where(tie, half, where(ta, g, 0.0))
        gb = where(tie, half, where(ta, 0.0, g))
        return ga, gb
    return rule


# name: (numpy fn, vjp rule(a, b, y, g) -> (ga, gb), commutative)
_BINARY = {
    "add": (np.add, lambda a, b, y, g: (g, g), True),
    "sub": (np.subtract, lambda a, b, y, g: (g, neg(g)), False),
    "mul": (np.multiply, lambda a, b, y, g: (g * b, g * a), True),
    "div": (_int_div, lambda a, b, y, g: (g / b, neg(g * y / b)), False),
    "pow": (_int_pow, _pow_vjp, False),
    "maximum": (np.maximum, _select_grad(lambda a, b: a > b), True),
    "minimum": (np.minimum, _select_grad(lambda a, b: a < b), True),
}
BINARY_OPS = tuple(_BINARY)
"""The names of the elementwise binary ops (broadcasting, dtype promotion), in registration order."""


def _binary_samples(dtype="float32", domain=("any", "any"), grad=True):
    return [
        Sample([TensorType((3, 4), dtype), TensorType((3, 4), dtype)], domain=list(domain), grad=grad),
        Sample([TensorType(("batch", 1, 4), dtype), TensorType((3, 1), dtype)], bind={"batch": 2},
               domain=list(domain), grad=grad, note="broadcast + symbolic"),
        Sample([TensorType((2, 3), dtype), TensorType((), dtype)], domain=list(domain), grad=grad),
        Sample([TensorType((1, 3), "float64"), TensorType((2, 1), "float64")], domain=list(domain), grad=grad),
    ]


for _name, (_fn, _rule, _comm) in _BINARY.items():
    _dom = {"div": ("any", "nonzero"), "pow": ("positive", "any"),
            "maximum": ("distinct", "distinct"), "minimum": ("distinct", "distinct")}.get(_name, ("any", "any"))
    _samples = _binary_samples(domain=_dom)
    if _name in ("add", "sub", "mul", "maximum", "minimum", "div"):
        _samples.append(Sample([TensorType((5,), "int32"), TensorType((5,), "int32")],
                               domain=["int:-9:9", "int:1:9"], grad=False))
    register_op(OpDef(
        name=_name, family="elementwise", num_inputs=(2, 2), type_rule=_binary_rule(numeric=True),
        reference=_binary_ref(_fn), flops=elementwise_flops(1), vjp=_binary_vjp(_rule),
        samples=_samples, commutative=_comm, elementwise=True,
    ))

_COMPARE = {
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
}
for _name, _fn in _COMPARE.items():
    register_op(OpDef(
        name=_name, family="elementwise", num_inputs=(2, 2), type_rule=_binary_rule(out_bool=True),
        reference=_binary_ref(_fn, out_bool=True), flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE,
        samples=[Sample(s.inputs, bind=s.bind, domain=["int:-2:2", "int:-2:2"], grad=False)
                 for s in _binary_samples()] +
        [Sample([TensorType((4,), "int64"), TensorType((4,), "int64")], domain=["int:-2:2", "int:-2:2"], grad=False)],
        commutative=_name in ("equal", "not_equal"), elementwise=True,
    ))

_LOGIC = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}
for _name, _fn in _LOGIC.items():
    register_op(OpDef(
        name=_name, family="elementwise", num_inputs=(2, 2), type_rule=_binary_rule(bool_only=True),
        reference=_binary_ref(_fn, out_bool=True), flops=elementwise_flops(1), vjp=NOT_DIFFERENTIABLE,
        samples=[Sample([TensorType((3, 4), "bool"), TensorType((3, 4), "bool")], domain=["bool", "bool"]),
                 Sample([TensorType(("batch", 4), "bool"), TensorType((4,), "bool")], bind={"batch": 3},
                        domain=["bool", "bool"])],
        commutative=True, elementwise=True,
    ))

register_op(OpDef(
    name="logical_not", family="elementwise", num_inputs=(1, 1), type_rule=_unary_rule(False, "bool"),
    reference=lambda xs, attrs, env=None: [np.logical_not(xs[0])], flops=elementwise_flops(1),
    vjp=NOT_DIFFERENTIABLE, elementwise=True,
    samples=[Sample([TensorType((3, 4), "bool")], domain=["bool"]),
             Sample([TensorType(("batch",), "bool")], bind={"batch": 3}, domain=["bool"])],
))


_KIND_RANK = {"bool": 0, "int": 1, "float": 2}
_KIND_DEFAULT = {"int": "int64", "float": _F32}


def _dtype_kind(dtype: str) -> str:
    return "float" if _dt.is_float(dtype) else "bool" if dtype == "bool" else "int"


def _operand_kind(x) -> str | None:
    """The kind (bool < int < float) of a non-Tensor operand: Python/NumPy scalars, arrays, lists."""
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, numbers.Integral):
        return "int"
    if isinstance(x, numbers.Real):
        return "float"
    if isinstance(x, (np.ndarray, list, tuple)):
        kind = np.asarray(x).dtype.kind
        return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(kind)
    if np.asarray(x).dtype.kind == "V" and isinstance(x, np.generic):  # bfloat16 scalars
        return "float"
    return None


def _promote(a, b):
    """Cast two operands to their promoted dtype. Scalars and arrays are weak: they adopt the
    tensor's dtype when their kind (bool < int < float) is not higher; a higher kind lifts the
    tensor to that kind's default (``int_tensor + 0.5`` computes in float32, ``bool_tensor + 1``
    in int64)."""
    da = a.dtype if isinstance(a, Tensor) else None
    db = b.dtype if isinstance(b, Tensor) else None
    if da and db:
        if da != db:
            target = _dt.promote_types(da, db)
            if da != target:
                a = cast(a, target)
            if db != target:
                b = cast(b, target)
        return a, b
    if da or db:
        tensor_dtype = da or db
        kind = _operand_kind(b if da else a)
        if kind is not None and _KIND_RANK[kind] > _KIND_RANK[_dtype_kind(tensor_dtype)]:
            target = _KIND_DEFAULT[kind]
            if da:
                a = cast(a, target)
            else:
                b = cast(b, target)
    return a, b


def _binary_api(name):
    def fn(a, b):
        a, b = _promote(a, b)
        return apply(name, a, b)
    fn.__name__ = name
    fn.__doc__ = (f"Elementwise {name} of ``a`` and ``b`` with NumPy broadcasting and dtype promotion (either may "
                  f"be a Python number).\n\nReturns a Tensor of the broadcast shape; shapes that do not broadcast "
                  f"are a ``ShapeError`` naming both.\n\nExample:\n    ```python\n    y = gf.{name}(a, b)\n    ```")
    return fn


add = _binary_api("add")
sub = _binary_api("sub")
mul = _binary_api("mul")
div = _binary_api("div")
pow = _binary_api("pow")  # noqa: A001
maximum = _binary_api("maximum")
minimum = _binary_api("minimum")
equal = _binary_api("equal")
not_equal = _binary_api("not_equal")
less = _binary_api("less")
less_equal = _binary_api("less_equal")
greater = _binary_api("greater")
greater_equal = _binary_api("greater_equal")
logical_and = _binary_api("logical_and")
logical_or = _binary_api("logical_or")
logical_xor = _binary_api("logical_xor")


def logical_not(x):
    """Elementwise boolean not.

    Args:
        x: a bool Tensor.
    """
    return apply("logical_not", x)


# ---- where, cast, clip ------------------------------------------------------------------------

def _where_rule(ts, attrs):
    cond, a, b = ts
    if cond.dtype != "bool":
        raise DTypeError(f"where: the condition must be bool, got {cond}", hint="compare first, e.g. x > 0")
    dtype = same_dtype([a, b], "where's branches")
    return [TensorType(broadcast_shapes(cond.shape, a.shape, b.shape), dtype)]


def _where_vjp(inputs, outputs, cotangents, attrs):
    g = cotangents[0]
    if g is None:
        return [None, None, None]
    cond, a, b = inputs
    return [None, unbroadcast(where(cond, g, 0.0), a.shape), unbroadcast(where(cond, 0.0, g), b.shape)]


register_op(OpDef(
    name="where", family="elementwise", num_inputs=(3, 3), type_rule=_where_rule,
    reference=lambda xs, attrs, env=None: [np.where(xs[0], xs[1], xs[2]).astype(xs[1].dtype)],
    flops=elementwise_flops(1), vjp=_where_vjp, nondiff_inputs=(0,), elementwise=True,
    samples=[
        Sample([TensorType((3, 4), "bool"), TensorType((3, 4), _F32), TensorType((3, 4), _F32)],
               domain=["bool", "any", "any"]),
        Sample([TensorType(("batch", 4), "bool"), TensorType((4,), _F32), TensorType((), _F32)],
               bind={"batch": 2}, domain=["bool", "any", "any"]),
        Sample([TensorType((2, 1), "bool"), TensorType((1, 3), "float64"), TensorType((2, 3), "float64")],
               domain=["bool", "any", "any"]),
    ],
))


def where(cond, a, b):
    """Select ``a`` where ``cond`` is true, else ``b`` (broadcasting; the branches are promoted like a
    binary op's operands, so ``where(c, int_tensor, 0.5)`` is float32)."""
    a, b = _promote(a, b)
    if not isinstance(a, Tensor) and isinstance(b, Tensor):
        a = wrap(as_value(a, b.builder, b.dtype), b.builder)
    elif isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = wrap(as_value(b, a.builder, a.dtype), a.builder)
    return apply("where", cond, a, b)


def _cast_ref(xs, attrs, env=None):
    x = xs[0]
    dst = attrs["dtype"]
    if _dt.is_string(dst) or x.dtype.kind == "O":  # to or from text (ONNX Cast's string rules)
        parsed = _strings.cast_string(x, dst)
        if parsed.dtype == object or _dt.from_numpy_dtype(parsed.dtype) == dst:
            return [parsed]
        x = parsed  # numbers parsed as float64: the numeric rules below take them to dst
    target = _dt.to_numpy_dtype(dst)
    src_float = _dt.is_float(_dt.from_numpy_dtype(x.dtype))
    if _dt.is_int(dst) and src_float:
        with np.errstate(all="ignore"):  # truncation toward zero, like C, XLA and ONNX
            return [np.trunc(x.astype(np.float64)).astype(target)]
    if dst == _dt.E8M0 and src_float:
        return [_dt.to_e8m0(x.astype(np.float32), attrs.get("saturate", True), attrs.get("round_mode", "up"))]
    if dst in _dt.FLOAT8_DTYPES and src_float and attrs.get("saturate", True):
        # ONNX Cast saturate=1: out-of-range values (infinities too) clamp to the largest finite
        # float8 value; NaN stays NaN. Without it the conversion gives NaN (fn types) or inf (e5m2).
        limit = _dt.float_max(dst)
        wide = x.astype(np.float32) if x.dtype.itemsize < 4 else x
        with np.errstate(invalid="ignore"):
            return [np.clip(wide, -limit, limit).astype(target)]
    return [x.astype(target)]


def _cast_vjp(inputs, outputs, cotangents, attrs):
    g = cotangents[0]
    x = inputs[0]
    if g is None or not _dt.is_float(x.dtype) or not _dt.is_float(attrs["dtype"]):
        return [None]
    return [cast(g, x.dtype)]


register_op(OpDef(
    name="cast", family="elementwise", num_inputs=(1, 1), attrs={"dtype": Attr("dtype"), "saturate": Attr("bool", True, elide_default=True),
                                                     "round_mode": Attr("str", "up", choices=("up", "down", "nearest"),
                                                                        elide_default=True)},
    type_rule=lambda ts, attrs: out_like(ts[0], attrs["dtype"]), reference=_cast_ref,
    flops=elementwise_flops(0), vjp=_cast_vjp, elementwise=True,
    samples=[
        Sample([TensorType((3, 4), _F32)], attrs={"dtype": "float64"}),
        Sample([TensorType(("batch", 4), "float64")], attrs={"dtype": "float32"}, bind={"batch": 2}),
        Sample([TensorType((5,), "int32")], attrs={"dtype": "float32"}, domain=["int:-9:9"], grad=False),
        Sample([TensorType((5,), _F32)], attrs={"dtype": "int64"}, domain=["int:-9:9"], grad=False),
        Sample([TensorType((5,), "bool")], attrs={"dtype": "float32"}, domain=["bool"], grad=False),
        Sample([TensorType((5,), _F32)], attrs={"dtype": "float16"}, grad=False),
        # string casts (ops/strings.py cast_string): integers and bools to text, numeric text to numbers
        Sample([TensorType(("batch",), "int64")], attrs={"dtype": "string"}, bind={"batch": 5}, domain=["int:-99:99"],
               grad=False),
        Sample([TensorType((4,), "bool")], attrs={"dtype": "string"}, domain=["bool"], grad=False),
        Sample([TensorType((2, 3), "string")], attrs={"dtype": "float32"}, grad=False,
               domain=[np.array(["1.5", "-2", "1e-5", "+INF", "nan", "3E2"], dtype=object).reshape(2, 3)]),
        Sample([TensorType((3,), "string")], attrs={"dtype": "int32"}, grad=False,
               domain=[np.array(["12", "-7", "0"], dtype=object)]),
        Sample([TensorType(("batch", 3), _F32)], attrs={"dtype": "float8e4m3fn"}, bind={"batch": 2},
               domain=[np.array([[0.5, 1000.0, -np.inf], [np.inf, -600.0, 3.25]])], grad=False),
        Sample([TensorType((2, 3), _F32)], attrs={"dtype": "float8e5m2", "saturate": False},
               domain=[np.array([[0.5, 1e6, -np.inf], [0.001, -2.0, 3.25]])], grad=False),
        Sample([TensorType((4,), "float16")], attrs={"dtype": "float8e4m3fnuz"},
               domain=[np.array([0.3, -300.0, 7.0, 0.0])], grad=False),
        Sample([TensorType((4,), "float8e5m2fnuz")], attrs={"dtype": "float32"},
               domain=[np.array([0.25, -3.0, 1024.0, 0.0])], grad=False),
        Sample([TensorType((5,), _F32)], attrs={"dtype": "int4"}, domain=[np.array([-8.5, -1.5, 0.0, 3.9, 7.0])],
               grad=False),
        Sample([TensorType((4,), "uint4")], attrs={"dtype": "uint16"}, domain=["int:0:16"], grad=False),
        Sample([TensorType((5,), _F32)], attrs={"dtype": "int2"}, domain=[np.array([-2.5, -1.0, 0.7, 1.0, 3.0])],
               grad=False),
        Sample([TensorType((4,), "uint64")], attrs={"dtype": "float64"}, domain=["int:0:1000"], grad=False),
        Sample([TensorType((5,), _F32)], attrs={"dtype": "float8e8m0", "round_mode": "nearest"},
               domain=[np.array([0.3, 1.0, 3.0, 1e-30, 6e37])], grad=False),
        Sample([TensorType((4,), "float8e8m0")], attrs={"dtype": "float32"}, domain=[np.array([0.25, 1.0, 64.0, 2.0 ** -20])],
               grad=False),
    ],
))


def cast(x, dtype, saturate: bool = True, round_mode: str = "up"):
    """Convert ``x`` to ``dtype`` (float → int truncates toward zero; float → float8 clamps
    out-of-range values to the largest finite one unless ``saturate=False``; float → float8e8m0
    rounds its exponent by ``round_mode``: up, down or nearest)."""
    dtype = _dt.canonical_dtype(dtype)
    if isinstance(x, Tensor) and x.dtype == dtype:
        return x
    extra = {} if saturate else {"saturate": False}
    if round_mode != "up":
        extra["round_mode"] = round_mode
    return apply("cast", x, dtype=dtype, **extra)


def _clip_ref(xs, attrs, env=None):
    x = xs[0]
    lo, hi = attrs["min"], attrs["max"]
    out = x
    if lo is not None:
        out = np.maximum(out, np.array(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.array(hi, dtype=x.dtype))
    return [out.astype(x.dtype)]


def _clip_vjp(inputs, outputs, cotangents, attrs):
    g = cotangents[0]
    if g is None:
        return [None]
    x = inputs[0]
    inside = None
    if attrs["min"] is not None:
        inside = x >= attrs["min"]
    if attrs["max"] is not None:
        upper = x <= attrs["max"]
        inside = upper if inside is None else logical_and(inside, upper)
    return [g if inside is None else where(inside, g, 0.0)]


register_op(OpDef(
    name="clip", family="elementwise", num_inputs=(1, 1),
    attrs={"min": Attr("float", None, optional=True), "max": Attr("float", None, optional=True)},
    type_rule=lambda ts, attrs: out_like(ts[0]), reference=_clip_ref, flops=elementwise_flops(2),
    vjp=_clip_vjp, elementwise=True,
    samples=[
        Sample([TensorType((3, 4), _F32)], attrs={"min": -0.5, "max": 0.5}, domain=["unclipped:-0.5:0.5"]),
        Sample([TensorType(("batch", 4), _F32)], attrs={"min": 0.1}, bind={"batch": 2}, domain=["unclipped:0.1:"]),
        Sample([TensorType((2, 3), "float64")], attrs={"max": 0.2}, domain=["unclipped::0.2"]),
    ],
))


def clip(x, min: float | None = None, max: float | None = None):  # noqa: A002
    """Limit ``x`` to ``[min, max]`` (either bound may be None)."""
    return apply("clip", x, min=min, max=max)
