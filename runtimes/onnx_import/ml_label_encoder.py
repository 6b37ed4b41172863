"""Importer for ``ai.onnx.ml`` LabelEncoder: a key → value lookup table, as registry ops.

Each element of X is compared with every key (``equal`` against the keys on a new last axis; string
keys too, ops/strings.py), the first matching position is ``argmax`` of the matches and a missing key
picks one extra slot holding the default; ``gather`` reads the value table (keys and values from the
``keys_*``/``values_*`` lists or ``*_tensor`` attributes, default from ``default_*``/``default_tensor``).
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from graphforge import dtypes as _dt

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []

# ONNX's defaults when no default_* attribute is given (ai.onnx.ml LabelEncoder-4)
_DEFAULTS = {"string": "_Unused", "int64": -1, "float32": -0.0}


def _table(node, a, kind: str):
    """(array, dtype) of the ``keys``/``values`` attribute."""
    if f"{kind}_tensor" in a:
        arr = numpy_helper.to_array(a[f"{kind}_tensor"])
    elif f"{kind}_strings" in a:
        arr = np.array(list(a[f"{kind}_strings"]), dtype=object)
    elif f"{kind}_int64s" in a:
        arr = np.array(a[f"{kind}_int64s"], dtype=np.int64)
    elif f"{kind}_floats" in a:
        arr = np.array(a[f"{kind}_floats"], dtype=np.float32)
    else:
        unsupported(node, f"no {kind}_* attribute")
    if arr.dtype.kind in "OUS":
        arr = _dt.as_string_array(arr)
    return arr.reshape(-1), _dt.from_numpy_dtype(arr.dtype)


@importer("ai.onnx.ml::LabelEncoder")
def _label_encoder(ctx, node):
    a = attrs_of(node)
    keys, kdt = _table(node, a, "keys")
    values, vdt = _table(node, a, "values")
    if len(keys) != len(values):
        unsupported(node, f"{len(keys)} keys but {len(values)} values")
    if "default_tensor" in a:
        default = numpy_helper.to_array(a["default_tensor"]).reshape(-1)[:1]
    else:
        name = {"string": "default_string", "int64": "default_int64", "float32": "default_float"}.get(vdt)
        default = np.array([a.get(name, _DEFAULTS.get(vdt, 0)) if name else _DEFAULTS.get(vdt, 0)])
    if vdt == "string":
        default = _dt.as_string_array(default.astype(object))
    table = np.concatenate([values, default.astype(values.dtype)])
    x = ctx.input(node, 0)
    if x.type.dtype != kdt:
        x = ctx.cast(x, kdt)
    n = len(keys)
    keys_v = ctx.emit("constant", [], value=keys)
    hits = ctx.emit("equal", [ctx.emit("unsqueeze", [x], axes=[x.type.rank]), keys_v])      # (..., n)
    hits = ctx.cast(hits, "int64")
    first = ctx.emit("argmax", [hits], axis=-1)                                           # (...)
    missing = ctx.emit("sub", [ctx.scalar(1, "int64"), ctx.emit("max", [hits], axes=[-1])])  # 1 where no key matched
    slot = ctx.emit("add", [first, ctx.emit("mul", [missing, ctx.scalar(n, "int64")])])
    return [ctx.emit("gather", [ctx.emit("constant", [], value=table), slot], axis=0)]
