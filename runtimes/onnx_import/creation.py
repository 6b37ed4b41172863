"""Importers for ONNX constant-making ops onto ``graphforge/ops/creation.py``: Constant, ConstantOfShape,
Range, OneHot, EyeLike."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from graphforge.dtypes import from_numpy_dtype
from graphforge.errors import LoadError

from .importer import attrs_of, importer, Known, unsupported
from .shape_values import as_dim, as_dims, is_dims

__all__: list[str] = []


# ---- constants and shapes -----------------------------------------------------------------------
@importer("Constant")
def _constant(ctx, node):
    a = attrs_of(node)
    if "value" in a:
        return [numpy_helper.to_array(a["value"])]
    for k, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if k in a:
            return [np.array(a[k], dtype=dt)]
    for k, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if k in a:
            return [np.array(list(a[k]), dtype=dt)]
    unsupported(node, f"constant attribute {sorted(a)} is not supported")


@importer("ConstantOfShape")
def _cos(ctx, node):
    shape = as_dims(ctx.need_const(node, 0, "shape", dims=True))
    a = attrs_of(node)
    val = numpy_helper.to_array(a["value"]).reshape(-1)[0] if "value" in a else np.float32(0)
    if not all(isinstance(d, int) for d in shape):  # a run-time shape: a broadcast scalar
        return [ctx.emit("broadcast_to", [ctx.materialize(np.asarray(val))], shape=shape)]
    dt = np.asarray(val).dtype
    if any(d < 0 for d in shape):
        raise LoadError(f"ConstantOfShape node {node.name!r}: negative dimension in shape {shape}")
    if ctx.afford(shape, dt.itemsize):
        return [np.full(shape, val, dtype=dt)]
    # over the import budget: a run-time broadcast of the scalar (nothing is allocated here)
    return [ctx.emit("broadcast_to", [ctx.materialize(np.asarray(val, dtype=dt))], shape=shape)]


@importer("Range")
def _range(ctx, node):
    s, l, d = (np.asarray(ctx.need_const(node, i, n, dims=True)).reshape(()) for i, n in
               enumerate(("start", "limit", "delta")))
    if is_dims(s) or is_dims(l):  # bounds from run-time shapes: an arange with symbolic bounds
        if is_dims(d) or int(d) <= 0:
            unsupported(node, "a Range over symbolic bounds needs a static positive delta")
        dtype = from_numpy_dtype(d.dtype) if d.dtype.kind in "iu" else "int64"
        return [ctx.emit("arange", [], start=as_dim(s.item()), stop=as_dim(l.item()), step=int(d), dtype=dtype)]
    dt = np.asarray(s).dtype
    # ONNX: n = max(ceil((limit - start) / delta), 0), element i = start + i * delta (in the input dtype)
    with np.errstate(all="ignore"):
        count = np.ceil((float(l) - float(s)) / float(d)) if float(d) != 0 else 0.0
    if not np.isfinite(count):
        raise LoadError(f"Range node {node.name!r}: start={s}, limit={l}, delta={d} give no finite length")
    n = max(int(count), 0)
    fits = ctx.afford((n,), dt.itemsize)
    arr = ((s + np.arange(n, dtype=dt) * d).astype(dt) if n else np.zeros((0,), dt)) if fits else None
    if dt.kind in "iu" and n:  # integer ranges stay an `arange` node (no stored table)
        v = ctx.emit("arange", [], start=int(s), stop=int(s) + n * int(d), step=int(d),
                     dtype=from_numpy_dtype(dt))
        return [Known(v, arr) if fits else v]
    if fits:
        return [arr]
    # an over-budget float range: start + arange(n) * delta computed at run time
    gdt = from_numpy_dtype(dt)
    idx = ctx.emit("cast", [ctx.emit("arange", [], start=0, stop=n, step=1, dtype="int64")], dtype=gdt)
    return [ctx.emit("add", [ctx.emit("mul", [idx, ctx.scalar(d, gdt)]), ctx.scalar(s, gdt)])]


@importer("OneHot")
def _onehot(ctx, node):
    idx = ctx.input(node, 0)
    depth = int(np.asarray(ctx.need_const(node, 1, "depth")).reshape(-1)[0])
    vals = ctx.need_const(node, 2, "values")
    axis = int(attrs_of(node).get("axis", -1))
    dt = from_numpy_dtype(vals.dtype)
    idx = ctx.cast(idx, "int64")
    # negative indices wrap
    idx = ctx.emit("where", [ctx.emit("less", [idx, ctx.scalar(0, "int64")]),
                             ctx.emit("add", [idx, ctx.scalar(depth, "int64")]), idx])
    oh = ctx.emit("one_hot", [idx], num_classes=depth, dtype="bool")
    y = ctx.emit("where", [oh, ctx.scalar(vals[1], dt), ctx.scalar(vals[0], dt)])
    rank = len(y.type.shape)
    if axis % rank != rank - 1:
        perm = list(range(rank - 1))
        perm.insert(axis % rank, rank - 1)
        y = ctx.emit("transpose", [y], perm=perm)
    return [y]


@importer("EyeLike")
def _eyelike(ctx, node):
    from .importer import onnx_dtype
    from graphforge.dtypes import to_numpy_dtype

    x = ctx.input(node, 0)
    a = attrs_of(node)
    dt = onnx_dtype(a["dtype"]) if "dtype" in a else x.type.dtype
    n, m = x.type.shape
    if not isinstance(n, int) or not isinstance(m, int):
        unsupported(node, "symbolic dims")
    ctx.require((n, m), np.dtype(to_numpy_dtype(dt)).itemsize, f"the ({n}, {m}) identity")
    return [np.eye(n, m, int(a.get("k", 0)), dtype=to_numpy_dtype(dt))]
