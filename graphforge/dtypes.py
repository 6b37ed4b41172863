"""Dtypes: canonical names, short IR spellings, NumPy mapping and promotion.

A dtype is a plain string (``"float32"``); ``bfloat16`` comes from ml_dtypes so that NumPy, JAX and
ONNX agree on it bit for bit.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import DTypeError

__all__ = [
    "DTYPES", "FLOAT_DTYPES", "INT_DTYPES", "SHORT_NAMES", "canonical_dtype", "to_numpy_dtype",
    "from_numpy_dtype", "is_float", "is_int", "is_bool", "promote_types", "short_name",
    "from_short_name",
]

SHORT_NAMES = {
    "float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16",
    "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "uint32": "u32",
    "bool": "bool",
}
_FROM_SHORT = {v: k for k, v in SHORT_NAMES.items()}
DTYPES = tuple(SHORT_NAMES)
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "uint32")

_NUMPY = {name: np.dtype(name) for name in DTYPES if name != "bfloat16"}
_NUMPY["bfloat16"] = np.dtype(ml_dtypes.bfloat16)
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64", "long": "int64",
            "bf16": "bfloat16", **_FROM_SHORT}

# Rank of each dtype inside its kind: promotion picks the wider one; bf16 and f16 meet at f32.
_FLOAT_RANK = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}
_INT_RANK = {"bool": 0, "uint8": 1, "int8": 1, "int16": 2, "int32": 3, "uint32": 3, "int64": 4}


def canonical_dtype(dtype) -> str:
    """Return the canonical name of ``dtype`` (a name, an alias, a NumPy dtype or type)."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise DTypeError("a dtype is required here (got None)")
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype, dtype)
        if name in _NUMPY:
            return name
        raise DTypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    try:
        return from_numpy_dtype(np.dtype(dtype))
    except TypeError as exc:
        raise DTypeError(f"unknown dtype {dtype!r}") from exc


def from_numpy_dtype(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    for name, np_dtype in _NUMPY.items():
        if np_dtype == dtype:
            return name
    raise DTypeError(f"NumPy dtype {dtype} has no graphforge equivalent; expected one of {', '.join(DTYPES)}")


def to_numpy_dtype(dtype: str) -> np.dtype:
    return _NUMPY[canonical_dtype(dtype)]


def is_float(dtype: str) -> bool:
    return dtype in _FLOAT_RANK


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


def short_name(dtype: str) -> str:
    return SHORT_NAMES[dtype]


def from_short_name(text: str) -> str:
    if text in _FROM_SHORT:
        return _FROM_SHORT[text]
    raise DTypeError(f"unknown dtype spelling {text!r}; expected one of {', '.join(_FROM_SHORT)}")


def promote_types(a: str, b: str) -> str:
    """The dtype two operands are cast to before a binary op (PyTorch-like, no implicit f64)."""
    if a == b:
        return a
    if is_float(a) and is_float(b):
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:  # float16 with bfloat16
            return "float32"
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if is_float(a):
        return a
    if is_float(b):
        return b
    ra, rb = _INT_RANK[a], _INT_RANK[b]
    if ra == rb:  # int8/uint8 or int32/uint32 mixes
        return "int16" if ra == 1 else "int64"
    return a if ra > rb else b
