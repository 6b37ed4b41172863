"""Dtypes: canonical names, short IR spellings, NumPy mapping and promotion.

A dtype is a plain string (``"float32"``); ``bfloat16``, the float8 formats (``float8e4m3fn``,
``float8e4m3fnuz``, ``float8e5m2``, ``float8e5m2fnuz``), ``float4e2m1`` and the 4- and 2-bit integers
(``int4``, ``uint4``, ``int2``, ``uint2``) come from ml_dtypes so that NumPy, JAX and ONNX agree on them
bit for bit. They are storage types: references compute on them in float32 / 8-bit integers
(``ops.common.compute_dtype``).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import DTypeError

__all__ = [
    "DTYPES", "FLOAT_DTYPES", "INT_DTYPES", "SHORT_NAMES", "canonical_dtype", "to_numpy_dtype",
    "from_numpy_dtype", "is_float", "is_int", "is_bool", "promote_types", "short_name",
    "from_short_name", "FLOAT8_DTYPES", "INT4_DTYPES", "int_range", "float_max", "min_onnx_opset", "INT2_DTYPES", "FLOAT4_DTYPES", "PACKED_BITS", "E8M0", "to_e8m0",
    "STRING", "is_string", "as_string_array",
]

SHORT_NAMES = {
    "float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16",
    "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "uint32": "u32",
    "bool": "bool",
    "uint16": "u16", "uint64": "u64", "int4": "i4", "uint4": "u4",
    "float8e4m3fn": "f8e4m3fn", "float8e4m3fnuz": "f8e4m3fnuz", "float8e5m2": "f8e5m2",
    "float8e5m2fnuz": "f8e5m2fnuz", "int2": "i2", "uint2": "u2", "float4e2m1": "f4e2m1",
    "float8e8m0": "f8e8m0",
    "string": "str",
}
_FROM_SHORT = {v: k for k, v in SHORT_NAMES.items()}
DTYPES = tuple(SHORT_NAMES)
FLOAT8_DTYPES = ("float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz")
INT4_DTYPES = ("int4", "uint4")
INT2_DTYPES = ("int2", "uint2")
FLOAT4_DTYPES = ("float4e2m1",)
# the power-of-two scale type of MX formats: exponent only (no sign, no zero); Cast has a round_mode for it
E8M0 = "float8e8m0"
# types stored several to a byte in ONNX tensors (low bits first): dtype -> bits per element
PACKED_BITS = {"int4": 4, "uint4": 4, "float4e2m1": 4, "int2": 2, "uint2": 2}
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16") + FLOAT8_DTYPES + FLOAT4_DTYPES + (E8M0,)
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "uint32", "uint16", "uint64") + INT4_DTYPES + INT2_DTYPES

_ML_DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float8e4m3fn": ml_dtypes.float8_e4m3fn,
              "float8e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "float8e5m2": ml_dtypes.float8_e5m2,
              "float8e5m2fnuz": ml_dtypes.float8_e5m2fnuz, "int4": ml_dtypes.int4, "uint4": ml_dtypes.uint4,
              "int2": ml_dtypes.int2, "uint2": ml_dtypes.uint2, "float4e2m1": ml_dtypes.float4_e2m1fn,
              "float8e8m0": ml_dtypes.float8_e8m0fnu}
# Tensors of text (ONNX STRING): NumPy object arrays of Python ``str``. Ops only move, compare, cast and
# transform them (ops/strings.py); the reference and onnxruntime back ends run them, XLA has no string type.
STRING = "string"
_NUMPY = {name: np.dtype(object if name == STRING else _ML_DTYPES.get(name, name)) for name in DTYPES}
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64", "long": "int64",
            "bf16": "bfloat16", "float8_e4m3fn": "float8e4m3fn", "float8_e4m3fnuz": "float8e4m3fnuz",
            "float8_e5m2": "float8e5m2", "float8_e5m2fnuz": "float8e5m2fnuz", "float4_e2m1fn": "float4e2m1", "float8_e8m0fnu": "float8e8m0",
            **_FROM_SHORT}

# Rank of each dtype inside its kind: promotion picks the wider one; bf16 and f16 meet at f32.
# float8 ranks below the half types (any float8 mix meets at float16 ... see promote_types) and the
# 4-bit ints below the 8-bit ones; uint64 ranks with int64 (a mix goes to int64, like JAX's weak rules
# would not: there is no wider signed type).
_FLOAT_RANK = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3,
               **{f: 0 for f in FLOAT8_DTYPES + FLOAT4_DTYPES + (E8M0,)}}
_INT_RANK = {"bool": 0, "uint8": 1, "int8": 1, "int16": 2, "int32": 3, "uint32": 3, "int64": 4,
             "uint16": 2, "uint64": 4, "int4": 0.5, "uint4": 0.5, "int2": 0.25, "uint2": 0.25}


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
    if dtype.kind in "OUS":  # object arrays of str, and NumPy's fixed-width unicode/bytes arrays
        return STRING
    for name, np_dtype in _NUMPY.items():
        if np_dtype == dtype:
            return name
    raise DTypeError(f"NumPy dtype {dtype} has no graphforge equivalent; expected one of {', '.join(DTYPES)}")


def to_numpy_dtype(dtype: str) -> np.dtype:
    return _NUMPY[canonical_dtype(dtype)]


def int_range(dtype: str) -> tuple[int, int]:
    """(min, max) of an integer dtype (4-bit types included, which ``np.iinfo`` does not know)."""
    info = ml_dtypes.iinfo(_NUMPY[dtype]) if dtype in PACKED_BITS else np.iinfo(_NUMPY[dtype])
    return int(info.min), int(info.max)


def float_max(dtype: str) -> float:
    """The largest finite value of a float dtype."""
    return float(ml_dtypes.finfo(_NUMPY[dtype]).max)


def min_onnx_opset(dtype: str) -> int:
    """The first ONNX opset whose ops (Cast, Identity, ...) take tensors of ``dtype``."""
    if dtype in FLOAT8_DTYPES:
        return 19
    if dtype in INT4_DTYPES:
        return 21
    if dtype in FLOAT4_DTYPES:
        return 23
    if dtype == E8M0:
        return 24
    if dtype in INT2_DTYPES:
        return 25
    return 1


def is_float(dtype: str) -> bool:
    return dtype in _FLOAT_RANK


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_string(dtype: str) -> bool:
    return dtype == STRING


def as_string_array(array) -> np.ndarray:
    """``array`` as graphforge holds string tensors: an object array of ``str`` (bytes decoded as UTF-8,
    NumPy's fixed-width ``<U``/``S`` arrays widened to objects)."""
    array = np.asarray(array)
    if array.dtype.kind == "O":
        bad = next((v for v in array.flat if not isinstance(v, (str, bytes))), None)
        if bad is not None:
            raise DTypeError(f"a string tensor holds str (or UTF-8 bytes), got a {type(bad).__name__} element")
    if array.dtype.kind == "S" or (array.dtype.kind == "O" and any(isinstance(v, bytes) for v in array.flat)):
        flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.flat]
        out = np.empty(array.shape, dtype=object)
        out.reshape(-1)[:] = flat if flat else []
        return out
    return array.astype(object)


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
    if STRING in (a, b):
        raise DTypeError(f"string tensors do not mix with {b if a == STRING else a} tensors; cast explicitly")
    if is_float(a) and is_float(b):
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:  # float16 with bfloat16, or two float8 formats
            return "float16" if _FLOAT_RANK[a] == 0 else "float32"
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if is_float(a):
        return a
    if is_float(b):
        return b
    ra, rb = _INT_RANK[a], _INT_RANK[b]
    if ra == rb:  # int8/uint8, int32/uint32, int4/uint4 or int64/uint64 mixes
        return {0.25: "int4", 0.5: "int8", 1: "int16", 2: "int32"}.get(ra, "int64")
    return a if ra > rb else b


def to_e8m0(x: np.ndarray, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """float → float8e8m0 as ONNX Cast defines it: the float32 exponent byte, rounded by ``round_mode``
    (``up``: any fraction rounds up, ``down``: truncated, ``nearest``: ties to even exponent); NaN and
    ±inf give NaN (0xFF); ``saturate`` keeps a round-up from the largest exponent (0xFE) at 0xFE."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.uint16)
    special = exponent == 0xFF
    if round_mode == "nearest":
        guard = (bits & 0x400000) > 0
        rest = ((bits & 0x200000) > 0) | ((bits & 0x1FFFFF) > 0) | (exponent > 0)
        up = guard & rest & ~special
    elif round_mode == "up":
        up = ((bits & 0x7FFFFF) > 0) & ~special
    elif round_mode == "down":
        up = np.zeros(bits.shape, bool)
    else:
        raise DTypeError(f"unknown float8e8m0 round_mode {round_mode!r}; expected up, down or nearest")
    if saturate:
        up = up & (exponent != 0xFE)
    out = np.where(special, 0xFF, exponent + up).astype(np.uint8)
    return out.view(_NUMPY[E8M0])
