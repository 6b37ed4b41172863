"""The symbolic Tensor users write models with: Python operators and tch-like methods.

A Tensor wraps one IR Value and the Builder that owns it; every operation emits a node through
the op registry, so type errors surface at the line that caused them.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes as _dt
from ..errors import TraceError
from ..ir.dims import dim_add, dim_floordiv, dim_le, dim_mod, dim_mul, dim_neg, dim_sub
from ..ir.graph import Value
from .builder import Builder, current_builder

__all__ = ["Tensor", "SymDim", "apply", "as_value", "is_tensor_like", "wrap"]


class SymDim(str):
    """A symbolic dim as seen from Python (``x.shape[1]``): its text is the canonical dim expression.

    It computes with ints and other dims (``n - 1``, ``2 * n``, ``n // 2``, ``n % 4``, ``-n``), and
    works wherever a size or a bound goes: slicing (``x[:, : n - 1]``, ``table[:n]``), ``gf.arange(n)``,
    reshape targets, ``gf.zeros((x.shape[0], 16))``. With a Tensor it becomes a run-time scalar
    (``x / n``). A comparison is answered when it holds for every size (``n - 1 < n``); one that
    depends on the run-time value (``if n > 64:``) is a TraceError naming the dim and the line.
    ``==`` compares the expressions (equal spellings are equal dims)."""

    def _refuse(self, what="a Python condition", other=None):
        about = f"{str(self)!r}" if other is None else f"{str(self)!r} and {other!r}"
        raise TraceError(f"cannot decide {what} on the symbolic dim {about}: its value is only known at "
                         "run time", hint="branch with gf.cond(pred, true_fn, false_fn, ...) (or gf.where for "
                         "values), or give the input a static (fixed) size in its gf.TensorSpec", **_user_site())

    def _compare(self, other, op):
        if isinstance(other, bool) or not isinstance(other, (str, numbers.Integral)):
            return NotImplemented
        lhs, rhs = (self, other) if op in ("<", "<=") else (other, self)
        if op in ("<", ">"):
            lhs = dim_add(lhs, 1)
        known = dim_le(lhs, rhs)
        if known is None:
            self._refuse(f"'{self} {op} {other}'")
        return known

    def __lt__(self, other): return self._compare(other, "<")
    def __le__(self, other): return self._compare(other, "<=")
    def __gt__(self, other): return self._compare(other, ">")
    def __ge__(self, other): return self._compare(other, ">=")

    def __bool__(self):
        self._refuse("truthiness (a dim may be 0)")

    __array_ufunc__ = None  # NumPy scalars defer to our operators (np.int64(2) * dim)

    def __int__(self):
        self._refuse("int()")

    def __index__(self):
        self._refuse("an int (range(), list sizes, NumPy shapes)")

    def __float__(self):  # also what math.sqrt(x.shape[-1]) calls
        self._refuse("float()")

    def __complex__(self):
        self._refuse("complex()")

    def _dim_op(self, other, fn, reverse=False):
        if isinstance(other, bool):
            return NotImplemented
        if isinstance(other, (str, numbers.Integral)):
            a, b = (other, self) if reverse else (self, other)
            return _sym(fn(a if isinstance(a, str) else int(a), b if isinstance(b, str) else int(b)))
        if isinstance(other, numbers.Number):
            raise TraceError(f"symbolic dim {str(self)!r} computes with ints and dims, not {other!r}",
                             hint="use // for a size; for a float value use gf.dim_value(n, 'float32')",
                             **_user_site())
        return NotImplemented  # a Tensor: its reflected operator makes the dim a run-time scalar

    def __add__(self, o): return self._dim_op(o, dim_add)
    def __radd__(self, o): return self._dim_op(o, dim_add, True)
    def __sub__(self, o): return self._dim_op(o, dim_sub)
    def __rsub__(self, o): return self._dim_op(o, dim_sub, True)
    def __mul__(self, o): return self._dim_op(o, dim_mul)
    def __rmul__(self, o): return self._dim_op(o, dim_mul, True)
    def __floordiv__(self, o): return self._dim_op(o, dim_floordiv)
    def __mod__(self, o): return self._dim_op(o, dim_mod)
    def __neg__(self): return _sym(dim_neg(self))
    def __pos__(self): return self

    def __truediv__(self, other):
        if isinstance(other, (numbers.Number, str)) and not isinstance(other, bool):
            raise TraceError(f"'{self} / {other}' is not a dim: true division gives a float",
                             hint="use // (floor) for a size, or gf.dim_value(n, 'float32') / d for a value",
                             **_user_site())
        return NotImplemented

    def __rtruediv__(self, other):
        if isinstance(other, numbers.Number) and not isinstance(other, bool):
            raise TraceError(f"'{other} / {self}' is not a dim: true division gives a float",
                             hint="use gf.dim_value(n, 'float32') for a run-time value", **_user_site())
        return NotImplemented

    def __rfloordiv__(self, other):
        raise TraceError(f"'{other} // {self}': only a dim divided by an int is a dim expression",
                         hint="use gf.dim_value(n) with tensor ops for run-time arithmetic", **_user_site())

    def __pow__(self, other):
        if isinstance(other, numbers.Integral) and not isinstance(other, bool) and other >= 0:
            out: object = 1
            for _ in range(int(other)):
                out = dim_mul(out, self)
            return _sym(out)
        return NotImplemented

    __hash__ = str.__hash__

    def __eq__(self, other):
        return str.__eq__(self, other)

    def __ne__(self, other):
        return str.__ne__(self, other)


def _sym(dim):
    return SymDim(dim) if isinstance(dim, str) else dim


def _user_site() -> dict:
    """Scope and ``file:line`` of the user's code that branched on a symbolic value."""
    from .builder import active_builder, user_location

    builder = active_builder()
    return {"scope": builder.current_scope if builder is not None else None,
            "loc": user_location(full=True) or None}


def _py_dims(shape) -> tuple:
    return tuple(SymDim(d) if isinstance(d, str) else d for d in shape)


def is_tensor_like(x) -> bool:
    return isinstance(x, Tensor)


class Tensor:
    """A symbolic tensor inside a trace. ``x.shape`` has ints and symbolic dims (SymDim).

    Args:
        value: the graph Value it stands for.
        builder: the trace that owns it (tensors are made by tracing, not by hand).
    """

    __array_priority__ = 1000  # numpy arrays on the left defer to our operators
    __slots__ = ("_value", "_builder")

    def __init__(self, value: Value, builder: Builder):
        self._value = value
        self._builder = builder

    @property
    def value(self) -> Value:
        return self._value

    @property
    def builder(self) -> Builder:
        return self._builder

    @property
    def shape(self) -> tuple:
        return _py_dims(self.value.type.shape)

    @property
    def dtype(self) -> str:
        return self.value.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.value.type.shape)

    @property
    def type(self):
        return self.value.type

    def size(self, axis: int | None = None):
        return self.shape if axis is None else self.shape[axis]

    def __repr__(self) -> str:
        return f"Tensor({self.value.type})"

    def __bool__(self):
        raise TraceError(f"cannot use a symbolic Tensor ({self.value.type}) as a Python bool (if/while/and/or): "
                         "its value is only known at run time",
                         hint="use gf.where(cond, a, b) to select between values", **_user_site())

    def __len__(self):
        if not self.shape:
            raise TraceError(f"len() of a 0-d tensor ({self.type}) is undefined")
        first = self.shape[0]
        if isinstance(first, int):
            return first
        raise TraceError("len() of a tensor with a symbolic first dim is not known at trace time")

    def __iter__(self):
        raise TraceError("iterating over a symbolic Tensor is not supported", hint="use x[i] or gf.split")

    def __array__(self, *a, **k):
        raise TraceError("a symbolic Tensor has no value at trace time and cannot become a NumPy array",
                         hint="compute with graphforge ops inside the model; get values with gf.run")

    __hash__ = object.__hash__

    # ---- arithmetic ------------------------------------------------------------------------
    def __add__(self, o): return _F().add(self, o)
    def __radd__(self, o): return _F().add(o, self)
    def __sub__(self, o): return _F().sub(self, o)
    def __rsub__(self, o): return _F().sub(o, self)
    def __mul__(self, o): return _F().mul(self, o)
    def __rmul__(self, o): return _F().mul(o, self)
    def __truediv__(self, o): return _F().div(self, o)
    def __rtruediv__(self, o): return _F().div(o, self)
    def __pow__(self, o): return _F().pow(self, o)
    def __rpow__(self, o): return _F().pow(o, self)
    def __matmul__(self, o): return _F().matmul(self, o)
    def __rmatmul__(self, o): return _F().matmul(o, self)
    def __neg__(self): return _F().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _F().abs(self)
    def __lt__(self, o): return _F().less(self, o)
    def __le__(self, o): return _F().less_equal(self, o)
    def __gt__(self, o): return _F().greater(self, o)
    def __ge__(self, o): return _F().greater_equal(self, o)
    def __eq__(self, o): return _F().equal(self, o)  # noqa: elementwise, like PyTorch
    def __ne__(self, o): return _F().not_equal(self, o)
    # &, |, ^, ~ are logical on bool tensors and bitwise on integer ones (as in PyTorch and NumPy)
    def __and__(self, o): return getattr(_F(), self._bit_or_logical("and"))(self, o)
    def __rand__(self, o): return getattr(_F(), self._bit_or_logical("and"))(o, self)
    def __or__(self, o): return getattr(_F(), self._bit_or_logical("or"))(self, o)
    def __ror__(self, o): return getattr(_F(), self._bit_or_logical("or"))(o, self)
    def __xor__(self, o): return getattr(_F(), self._bit_or_logical("xor"))(self, o)
    def __rxor__(self, o): return getattr(_F(), self._bit_or_logical("xor"))(o, self)
    def __invert__(self): return getattr(_F(), self._bit_or_logical("not"))(self)
    def __mod__(self, o): return _F().mod(self, o)  # Python's sign rule, like PyTorch's remainder
    def __rmod__(self, o): return _F().mod(o, self)
    def __lshift__(self, o): return _F().bit_shift(self, o, "LEFT")
    def __rshift__(self, o): return _F().bit_shift(self, o, "RIGHT")

    def _bit_or_logical(self, kind: str) -> str:
        return f"logical_{kind}" if self.dtype == "bool" else f"bitwise_{kind}"
    def __getitem__(self, index): return _F().getitem(self, index)

    # ---- tch-like methods (each a thin call into graphforge.ops) ---------------------------
    def __getattr__(self, name: str):
        fn = _METHODS.get(name)
        if fn is None:
            raise AttributeError(f"'Tensor' has no attribute {name!r}")
        func = getattr(_F(), fn)
        return lambda *args, **kw: func(self, *args, **kw)

    @property
    def T(self):
        return _F().transpose(self)

    @property
    def mT(self):
        perm = list(range(self.ndim))
        perm[-2:] = perm[-1], perm[-2]
        return _F().transpose(self, perm)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _F().reshape(self, shape)

    view = reshape

    def transpose(self, *axes):
        if len(axes) == 2 and all(isinstance(a, int) for a in axes):
            perm = list(range(self.ndim))  # PyTorch's swap of two axes (also on 2-D: (0, 1) swaps)
            a, b = (ax % self.ndim for ax in axes)
            perm[a], perm[b] = perm[b], perm[a]
            return _F().transpose(self, perm)
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _F().transpose(self, list(axes) if axes else None)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _F().transpose(self, list(axes))

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _F().broadcast_to(self, shape)

    def where(self, cond, other):
        """PyTorch's ``x.where(cond, other)``: ``x`` where ``cond`` holds, else ``other``."""
        return _F().where(cond, self, other)

    def astype(self, dtype):
        return _F().cast(self, dtype)

    to = astype

    def float(self):
        return _F().cast(self, "float32")

    def long(self):
        return _F().cast(self, "int64")


# Method name on Tensor -> function name in graphforge.ops.
_METHODS = {name: name for name in (
    "relu", "leaky_relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "sign", "erf",
    "gelu", "silu", "softplus", "sin", "cos", "softmax", "log_softmax", "sum", "mean", "max", "min", "prod",
    "argmax", "flatten", "squeeze", "unsqueeze", "broadcast_to", "matmul", "pow", "maximum", "minimum",
    "clip", "gather", "take", "split", "pad", "cast", "square", "var", "layer_norm", "dropout",
    "one_hot", "slice", "reciprocal", "logical_not", "argmin",
)}
_METHODS.update({"clamp": "clip", "exp_": "exp", "amax": "max", "amin": "min", "chunk": "chunk"})
_METHODS.update({name: name for name in (
    "floor", "ceil", "round", "isnan", "isinf", "tan", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh",
    "atanh", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "mod")})
_METHODS.update({"remainder": "mod", "arcsin": "asin", "arccos": "acos", "arctan": "atan"})
_METHODS.update({"detach": "stop_gradient", "stop_gradient": "stop_gradient"})  # PyTorch's x.detach()

_F_MODULE = None


def _F():
    global _F_MODULE
    if _F_MODULE is None:
        from .. import ops
        _F_MODULE = ops
    return _F_MODULE


def as_value(x, builder: Builder, like_dtype: str | None = None) -> Value:
    """The IR value for ``x``: a Tensor's own, or a constant node for a scalar/array.

    Python scalars are weakly typed (they take ``like_dtype``); NumPy arrays keep their dtype unless
    it is of the same kind as ``like_dtype``, in which case they adopt it (no silent float64)."""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, SymDim):  # a dim used as a value (x / x.shape[1]): computed at run time
        dtype = like_dtype or "int64"
        if _dt.is_float(dtype) or _dt.is_int(dtype):
            return builder.emit1("dim_value", [], {"dim": str(x), "dtype": dtype})
        return builder.emit1("dim_value", [], {"dim": str(x), "dtype": "int64"})
    if isinstance(x, (bool, np.bool_)):
        array = np.array(x, dtype=np.bool_)
    elif isinstance(x, numbers.Number):
        dtype = like_dtype or ("int64" if isinstance(x, numbers.Integral) else "float32")
        if isinstance(x, float) and not _dt.is_float(dtype):
            dtype = "float32"
        array = np.array(x, dtype=_dt.to_numpy_dtype(dtype))
    elif isinstance(x, (str, bytes)):  # text: a 0-d string constant (ops/strings.py)
        array = _dt.as_string_array(np.array(x, dtype=object))
    elif isinstance(x, (np.ndarray, np.generic, list, tuple)) and np.asarray(x).dtype.kind in "OUS":
        array = _dt.as_string_array(x)
    elif isinstance(x, (np.ndarray, np.generic, list, tuple)):
        array = np.asarray(x)
        src = _dt.from_numpy_dtype(array.dtype) if array.dtype != np.float64 or like_dtype else "float32"
        if like_dtype and ((_dt.is_float(src) and _dt.is_float(like_dtype)) or
                           (_dt.is_int(src) and _dt.is_int(like_dtype))):
            src = like_dtype
        array = array.astype(_dt.to_numpy_dtype(src))
    else:
        raise TraceError(f"cannot use a {type(x).__name__} as a tensor operand")
    return builder.emit1("constant", [], {"value": array})


def _find_builder(args) -> Builder:
    for a in args:
        if isinstance(a, Tensor):
            return a.builder
    return current_builder()


def apply(op: str, *inputs, **attrs):
    """Emit ``op`` on Tensors (or scalars/arrays, made constants) and return Tensor(s)."""
    builder = _find_builder(inputs)
    like = None
    for a in inputs:
        if isinstance(a, Tensor) and a.dtype != "bool":
            like = a.dtype
            break
    values = [as_value(a, builder, like) for a in inputs]
    outs = builder.emit(op, values, attrs)
    tensors = [Tensor(v, builder) for v in outs]
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


def wrap(value: Value, builder: Builder | None = None) -> Tensor:
    return Tensor(value, builder or current_builder())

