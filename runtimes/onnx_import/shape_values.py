"""Shape tensors whose values are dims: the ``Shape → Gather → Concat → Reshape`` pattern of
dynamic-batch exports (PyTorch's ``dynamic_axes``, dynamo dynamic shapes).

``Shape`` of an input with symbolic dims is known at import time as a *dims array*: a NumPy object
array of ints and :class:`~graphforge.trace.tensor.SymDim` (``[batch, 32]``). Shape arithmetic on it
(Gather, Concat, Unsqueeze, Squeeze, Slice, Reshape, Cast to an int type, Identity, Add, Sub, Mul,
Div, Mod, Min, Max, Equal, Where) is folded here with dim expressions, so the ops that take a shape or a bound as a
tensor (Reshape, Expand, ConstantOfShape, Range, Slice) import with symbolic attributes instead of
needing a constant. A dims array used as a tensor is computed at run time (``dim_value`` nodes).
"""
from __future__ import annotations

import numpy as np
import onnx

from graphforge.ir.dims import dim_max, dim_min
from graphforge.trace.tensor import SymDim

__all__ = ["dims_array", "is_dims", "fold_dims", "as_dim", "as_dims", "materialize_dims"]


def dims_array(dims) -> np.ndarray:
    """An int64 array when every dim is static, else an object array of ints and SymDims."""
    if all(isinstance(d, int) for d in dims):
        return np.array(dims, dtype=np.int64)
    out = np.empty(len(dims), dtype=object)
    out[:] = [SymDim(d) if isinstance(d, str) else int(d) for d in dims]
    return out


def is_dims(arr) -> bool:
    return isinstance(arr, np.ndarray) and arr.dtype == object


def as_dim(v):
    """One element of a shape tensor as an attribute dim (an int or the dim's text)."""
    return str(v) if isinstance(v, str) else int(v)


def as_dims(arr) -> list:
    return [as_dim(v) for v in np.asarray(arr).reshape(-1)]


def _obj(x) -> np.ndarray:
    """``x`` as an object array (a SymDim is a str: np.asarray would make it a string array)."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x
    out = np.empty(np.shape(x) if not isinstance(x, str) else (), dtype=object)
    out[...] = x
    return out


def _settle(arr) -> np.ndarray:
    """Back to int64 once every element is static (``batch - batch`` is 0)."""
    arr = _obj(arr)
    if arr.dtype == object and all(not isinstance(v, str) for v in arr.reshape(-1)):
        return arr.astype(np.int64)
    return arr


def _ints(attr_or_const) -> list[int]:
    return [int(i) for i in np.asarray(attr_or_const).reshape(-1)]


def _floordiv(a, b):
    return a // b


def _mod(a, b):
    return a % b  # dims are non-negative: ONNX Mod's fmod=0 and fmod=1 agree on them


def _extreme(fn):
    def pick(a, b):
        r = fn(a, b)
        return SymDim(r) if isinstance(r, str) else int(r)
    return np.frompyfunc(pick, 2, 1)


_VARIADIC = {"Min": _extreme(dim_min), "Max": _extreme(dim_max)}

_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.frompyfunc(_floordiv, 2, 1),
           "Mod": np.frompyfunc(_mod, 2, 1)}
_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}


def fold_dims(node: onnx.NodeProto, ins: list, attrs: dict, opset: int) -> list[np.ndarray] | None:
    """The dims results of ``node`` on inputs of which at least one is a dims array (None: emit it)."""
    op = node.op_type
    try:
        if op in ("Identity",) or (op == "Cast" and attrs.get("to") in _INT_TYPES):
            return [ins[0]]
        if op == "Gather":
            axis = int(attrs.get("axis", 0))
            idx = np.asarray(ins[1]).astype(np.int64)
            return [_settle(np.take(ins[0], idx, axis=axis))]
        if op == "Concat":
            return [_settle(np.concatenate([_obj(a) for a in ins if a is not None],
                                           axis=int(attrs.get("axis", 0))))]
        if op in ("Unsqueeze", "Squeeze"):
            axes = attrs.get("axes") if "axes" in attrs else (_ints(ins[1]) if len(ins) > 1 and ins[1] is not None
                                                              else None)
            x = ins[0]
            if op == "Unsqueeze":
                for a in sorted(int(a) % (x.ndim + len(axes)) for a in axes):
                    x = np.expand_dims(x, a)
                return [_obj(x)]
            return [_settle(np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes)))]
        if op == "Reshape" and not is_dims(ins[1]):
            return [np.reshape(ins[0], _ints(ins[1]))]
        if op == "Slice" and ins[0].ndim == 1 and all(not is_dims(a) for a in ins[1:] if a is not None):
            start, end = _ints(ins[1])[0], _ints(ins[2])[0]
            step = _ints(ins[4])[0] if len(ins) > 4 and ins[4] is not None else 1
            return [ins[0][start:end:step]]
        if op in _BINARY and all(a is not None for a in ins):
            a, b = (_obj(x) for x in ins)
            return [_settle(_BINARY[op](a, b))]
        if op in _VARIADIC and ins and all(a is not None for a in ins):  # Min/Max: any count, broadcast
            out = _obj(ins[0])
            for other in ins[1:]:
                out = _obj(_VARIADIC[op](out, _obj(other)))
            return [_settle(out)]
        if op == "Equal":  # dims are sizes, never the -1 PyTorch's shape code compares with
            a, b = (_obj(x) for x in ins)
            return [np.vectorize(lambda u, v: bool(u == v) if not (isinstance(u, str) or isinstance(v, str))
                                 else str(u) == str(v), otypes=[bool])(a, b)]
        if op == "Where":
            return [_settle(np.where(np.asarray(ins[0], dtype=bool), _obj(ins[1]), _obj(ins[2])))]
    except (TypeError, ValueError, IndexError):
        return None
    return None


def materialize_dims(ctx, arr: np.ndarray):
    """A run-time int64 tensor with the values of the dims array ``arr``."""
    flat = arr.reshape(-1)
    parts = [ctx.emit("reshape", [ctx.emit("dim_value", [], dim=as_dim(v), dtype="int64")], shape=[1])
             for v in flat]
    out = ctx.emit("concat", parts, axis=0) if len(parts) > 1 else parts[0]
    return ctx.emit("reshape", [out], shape=list(arr.shape))
