"""Shape ops: reshape, transpose, broadcast_to, concat, split, slice, gather, scatter_add, squeeze,
unsqueeze, flatten, pad, dim_size; and Python indexing (``x[:, 0]``) built from them."""
from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.dims import (dim_add, dim_ceildiv, dim_divide, dim_floordiv, dim_monomial, dim_product, dim_sub,
                       is_polynomial, is_static, require_divisible, require_equal, require_le, resolve_attr_dims,
                       resolve_dim)
from ..ir.types import TensorType
from ..trace.tensor import SymDim, Tensor, apply
from ._shapes import broadcast_shapes, normalize_axes, normalize_axis, same_dtype
from .common import numel, unbroadcast
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, elementwise as _elementwise

__all__ = ["reshape", "transpose", "broadcast_to", "concat", "split", "chunk", "slice", "gather", "take",
           "scatter_add", "squeeze", "unsqueeze", "flatten", "pad", "dim_size", "getitem", "stack"]

F32 = "float32"
builtins_slice = builtins.slice  # this module defines its own ``slice`` op
INT_MAX = 2 ** 63 - 1


def _free(i, o, a):
    return 0


def _env_shape(shape, env):
    return tuple(d if isinstance(d, int) else resolve_dim(d, env or {}) for d in shape)


# ---- reshape --------------------------------------------------------------------------------

def _reshape_target(in_shape, spec) -> tuple:
    total = dim_product(in_shape)
    if sum(1 for d in spec if d == -1) > 1:
        raise ShapeError(f"reshape: at most one -1 allowed in {list(spec)}")
    known = dim_product([d for d in spec if d != -1])
    if -1 in spec:
        rest = dim_divide(total, known)
        if rest is None:
            rest = _divide_with_guard(total, known, in_shape, spec)
        return tuple(rest if d == -1 else d for d in spec)
    if known != total:
        if is_polynomial(known) and is_polynomial(total):
            raise ShapeError(f"cannot reshape ({', '.join(map(str, in_shape))}) with {total} elements "
                             f"to ({', '.join(map(str, spec))}) with {known}")
        # e.g. (batch, floor(seq/2), 2) back to (batch, seq): equal exactly when seq is even
        require_equal(known, total, f"reshape of ({', '.join(map(str, in_shape))}) to {list(spec)}")
    return tuple(spec)


def _divide_with_guard(total, known, in_shape, spec):
    """``total / known`` for a -1 whose size divides only for some bindings (``seq`` split by 4):
    ``floor(total/k)`` with the guard ``total % k == 0``; a static remainder is a ShapeError."""
    mono = dim_monomial(known)
    part = None
    if mono is not None and mono[0] > 0 and not isinstance(total, int):
        coef, syms = mono
        part = dim_divide(total, dim_product(syms)) if syms else total
    if part is None or isinstance(part, int):
        raise ShapeError(f"cannot reshape ({', '.join(map(str, in_shape))}) to {list(spec)}: "
                         f"{total} elements do not divide by {known}")
    require_divisible(part, coef, f"reshape of ({', '.join(map(str, in_shape))}) to {list(spec)}")
    return dim_floordiv(part, coef)


def _reshape_rule(ts, attrs):
    for d in attrs["shape"]:
        if isinstance(d, int) and d < -1:
            raise ShapeError(f"reshape: invalid dim {d}")
    return [TensorType(_reshape_target(ts[0].shape, attrs["shape"]), ts[0].dtype)]


def _reshape_ref(xs, attrs, env=None):
    return [np.reshape(xs[0], _env_shape(attrs["shape"], env))]


register_op(OpDef(
    name="reshape", family="shape", num_inputs=(1, 1), attrs={"shape": Attr("dims")},
    type_rule=_reshape_rule, reference=_reshape_ref, flops=_free,
    vjp=lambda i, o, g, a: [None if g[0] is None else reshape(g[0], i[0].shape)],
    samples=[Sample([TensorType((2, 6), F32)], attrs={"shape": [3, 4]}),
             Sample([TensorType(("batch", 4, 4), F32)], attrs={"shape": ["batch", -1]}, bind={"batch": 2}),
             Sample([TensorType(("batch", 6), F32)], attrs={"shape": [-1, 3]}, bind={"batch": 3}),
             Sample([TensorType((4,), "int64")], attrs={"shape": [2, 1, 2]}, domain=["int:0:9"], grad=False),
             # -1 beside a static 2 splits seq: floor(seq/2), guarded by seq % 2 == 0
             Sample([TensorType(("batch", "seq"), F32)], attrs={"shape": ["batch", -1, 2]}, bind={"batch": 2, "seq": 6})],
))


def reshape(x, shape):
    """Reshape to ``shape`` (ints, symbolic dims like ``x.shape[0]``, and at most one -1)."""
    shape = [d if isinstance(d, int) else str(d) for d in shape]
    if isinstance(x, Tensor) and tuple(shape) == tuple(x.type.shape):
        return x
    return apply("reshape", x, shape=shape)


# ---- transpose ------------------------------------------------------------------------------

def _perm(attrs, rank):
    perm = attrs["perm"]
    if perm is None:
        return list(range(rank))[::-1]
    if sorted(p % rank if rank else p for p in perm) != list(range(rank)) or len(perm) != rank:
        raise ShapeError(f"transpose: {perm} is not a permutation of {rank} axes")
    return [p % rank for p in perm]


def _transpose_rule(ts, attrs):
    t = ts[0]
    return [TensorType(tuple(t.shape[p] for p in _perm(attrs, t.rank)), t.dtype)]


def _transpose_vjp(inputs, outputs, cots, attrs):
    if cots[0] is None:
        return [None]
    perm = _perm(attrs, inputs[0].ndim)
    return [transpose(cots[0], list(np.argsort(perm)))]


register_op(OpDef(
    name="transpose", family="shape", num_inputs=(1, 1), attrs={"perm": Attr("ints", None, optional=True)},
    type_rule=_transpose_rule, reference=lambda xs, a, env=None: [np.transpose(xs[0], _perm(a, xs[0].ndim))],
    flops=_free, vjp=_transpose_vjp,
    samples=[Sample([TensorType((2, 3), F32)], attrs={"perm": None}),
             Sample([TensorType(("batch", 3, 4), F32)], attrs={"perm": [1, 0, 2]}, bind={"batch": 2}),
             Sample([TensorType((2, 3, 4, 5), "float64")], attrs={"perm": [0, 2, 3, 1]})],
))


def transpose(x, perm=None):
    """Permute axes (``perm=None`` reverses them).

    Args:
        x: the input Tensor.
        perm: the new order of the axes.
    """
    if perm is not None:
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return x
    return apply("transpose", x, perm=perm)


# ---- broadcast_to ---------------------------------------------------------------------------

def _broadcast_rule(ts, attrs):
    target = tuple(attrs["shape"])
    got = broadcast_shapes(ts[0].shape, target)
    if got != target:
        raise ShapeError(f"cannot broadcast ({', '.join(map(str, ts[0].shape))}) to ({', '.join(map(str, target))})")
    return [TensorType(target, ts[0].dtype)]


register_op(OpDef(
    name="broadcast_to", family="shape", num_inputs=(1, 1), attrs={"shape": Attr("dims")},
    type_rule=_broadcast_rule,
    reference=lambda xs, a, env=None: [np.array(np.broadcast_to(xs[0], _env_shape(a["shape"], env)))],
    flops=_free, vjp=lambda i, o, g, a: [None if g[0] is None else unbroadcast(g[0], i[0].shape)],
    samples=[Sample([TensorType((3, 1), F32)], attrs={"shape": [2, 3, 4]}),
             Sample([TensorType(("batch", 1), F32)], attrs={"shape": ["batch", 4]}, bind={"batch": 3}),
             Sample([TensorType((), "float64")], attrs={"shape": [2, 2]})],
))


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules)."""
    shape = [d if isinstance(d, int) else str(d) for d in shape]
    if isinstance(x, Tensor) and tuple(shape) == tuple(x.type.shape):
        return x
    return apply("broadcast_to", x, shape=shape)


# ---- concat / split -------------------------------------------------------------------------

def _concat_rule(ts, attrs):
    dtype = same_dtype(ts, "concat inputs")
    rank = ts[0].rank
    axis = normalize_axis(attrs["axis"], rank)
    total = 0
    for t in ts:
        if t.rank != rank:
            raise ShapeError(f"concat: inputs have ranks {[t.rank for t in ts]}")
        for i, (a, b) in enumerate(zip(t.shape, ts[0].shape)):
            if i != axis and a != b:
                raise ShapeError(f"concat along axis {axis}: dim {i} differs ({a} vs {b})")
        total = dim_add(total, t.shape[axis])
    shape = list(ts[0].shape)
    shape[axis] = total
    return [TensorType(tuple(shape), dtype)]


def _concat_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    axis = normalize_axis(attrs["axis"], inputs[0].ndim)
    sizes = [t.shape[axis] for t in inputs]
    parts = split(g, sizes, axis) if len(sizes) > 1 else (g,)
    return list(parts)


register_op(OpDef(
    name="concat", family="shape", num_inputs=(1, None), attrs={"axis": Attr("int", 0)},
    type_rule=_concat_rule, reference=lambda xs, a, env=None: [np.concatenate(xs, axis=a["axis"])],
    flops=_free, vjp=_concat_vjp,
    samples=[Sample([TensorType((2, 3), F32), TensorType((2, 5), F32)], attrs={"axis": 1}),
             Sample([TensorType(("batch", 2), F32), TensorType(("batch", 1), F32), TensorType(("batch", 3), F32)],
                    attrs={"axis": -1}, bind={"batch": 2}),
             Sample([TensorType((1, 3), "float64"), TensorType((2, 3), "float64")], attrs={"axis": 0}),
             Sample([TensorType(("batch", "seq"), F32), TensorType(("batch", 3), F32)], attrs={"axis": 1},
                    bind={"batch": 2, "seq": 4}, note="a symbolic concat axis: seq+3")],
))


def concat(tensors, axis: int = 0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if len(tensors) == 1:
        return tensors[0]
    return apply("concat", *tensors, axis=axis)


def stack(tensors, axis: int = 0):
    """Join tensors along a new axis."""
    tensors = list(tensors)
    return concat([unsqueeze(t, [axis]) for t in tensors], axis)


def _split_rule(ts, attrs):
    t = ts[0]
    axis = normalize_axis(attrs["axis"], t.rank)
    sizes = attrs["sizes"]
    if not sizes or any(is_static(s) and s < 0 for s in sizes):
        raise ShapeError(f"split: invalid sizes {sizes}")
    total = dim_add(*sizes)
    if t.shape[axis] != total:
        if is_polynomial(total) and is_polynomial(t.shape[axis]):
            raise ShapeError(f"split: sizes {sizes} add up to {total}, but axis {axis} has {t.shape[axis]}")
        # chunks of a symbolic axis (2*floor(seq/2) vs seq): equal exactly when the axis divides
        require_equal(total, t.shape[axis], f"split of axis {axis} ({t.shape[axis]}) into {sizes}")
    out = []
    for s in sizes:
        shape = list(t.shape)
        shape[axis] = s
        out.append(TensorType(tuple(shape), t.dtype))
    return out


def _split_ref(xs, attrs, env=None):
    offsets = np.cumsum(resolve_attr_dims(attrs, ("sizes",), env or {})["sizes"])[:-1]
    return [np.array(p) for p in np.split(xs[0], offsets, axis=attrs["axis"])]


def _split_vjp(inputs, outputs, cots, attrs):
    if all(g is None for g in cots):
        return [None]
    parts = []
    for g, out in zip(cots, outputs):
        if g is None:
            g = broadcast_to(_elementwise.cast(_zero_like_scalar(out), out.dtype), out.shape)
        parts.append(g)
    return [concat(parts, attrs["axis"])]


def _zero_like_scalar(t):
    return _creation.constant(np.zeros((), dtype=_dt.to_numpy_dtype(t.dtype)), t.dtype)


register_op(OpDef(
    name="split", family="shape", num_inputs=(1, 1), attrs={"axis": Attr("int", 0), "sizes": Attr("dims")},
    type_rule=_split_rule, reference=_split_ref, flops=_free, vjp=_split_vjp,
    samples=[Sample([TensorType((2, 6), F32)], attrs={"axis": 1, "sizes": [2, 4]}),
             Sample([TensorType(("batch", 6), F32)], attrs={"axis": -1, "sizes": [3, 3]}, bind={"batch": 2}),
             Sample([TensorType((5, 2), "float64")], attrs={"axis": 0, "sizes": [1, 1, 3]}),
             Sample([TensorType(("batch", "seq+2"), F32)], attrs={"axis": 1, "sizes": [2, "seq"]},
                    bind={"batch": 2, "seq": 3}, note="symbolic sizes: the axis is seq+2")],
))


def split(x, sizes, axis: int = 0):
    """Split along ``axis`` into pieces of the given sizes (an int splits into equal pieces).

    Args:
        x: the input Tensor.
        sizes: the pieces' sizes, or an int for equal pieces.
        axis: the axis split.
    """
    if isinstance(sizes, int):
        dim = x.shape[axis]
        if isinstance(dim, int) and dim % sizes:
            raise ShapeError(f"split: axis {axis} of size {dim} does not divide into {sizes} equal parts")
        sizes = [dim // sizes] * sizes  # a symbolic axis: floor(seq/n) each, guarded by seq % n == 0
    out = apply("split", x, axis=axis, sizes=[d if isinstance(d, int) else str(d) for d in sizes])
    return out if isinstance(out, tuple) else (out,)


def chunk(x, chunks: int, axis: int = 0):
    """Split into ``chunks`` equal pieces along ``axis``.

    Args:
        x: the input Tensor.
        chunks: how many pieces.
        axis: the axis split.
    """
    return split(x, chunks, axis)


# ---- slice ----------------------------------------------------------------------------------

def _slice_params(attrs, rank):
    axes = attrs["axes"] if attrs["axes"] is not None else list(range(len(attrs["starts"])))
    steps = attrs["steps"] if attrs["steps"] is not None else [1] * len(axes)
    if not (len(axes) == len(attrs["starts"]) == len(attrs["ends"]) == len(steps)):
        raise ShapeError("slice: starts, ends, axes and steps must have the same length")
    return [(normalize_axis(a, rank), s, e, st) for a, s, e, st in zip(axes, attrs["starts"], attrs["ends"], steps)]


def _slice_rule(ts, attrs):
    t = ts[0]
    shape = list(t.shape)
    for axis, start, end, step in _slice_params(attrs, t.rank):
        if step == 0:
            raise ShapeError("slice: step must not be 0")
        dim = shape[axis]
        if is_static(dim) and is_static(start) and is_static(end):
            shape[axis] = len(range(*builtins_slice(start, end, step).indices(dim)))
            continue
        if start == 0 and is_static(end) and end >= INT_MAX and step == 1:
            continue
        shape[axis] = _symbolic_extent(dim, start, end, step, axis)
    return [TensorType(tuple(shape), t.dtype)]


def _symbolic_bounds(dim, start, end, step, axis):
    """Python's slice bounds on an axis of size ``dim`` where ``dim`` or a bound is symbolic.

    Python clamps bounds to the axis; a symbolic bound cannot be clamped at trace time, so the
    slice *requires* that it lies inside the axis (``seq <= 64`` for ``table[:seq]`` on a 64-row
    table): the guard is recorded with the node and checked when inputs are bound."""
    if step < 0:
        raise ShapeError(f"slice: a negative step on axis {axis} needs static bounds and a static dim, "
                         f"got [{start}:{end}:{step}] on a dim of size {dim}",
                         hint="flip with a static size, or index with gf.gather(x, gf.arange(...))")
    where = f"slice [{start}:{end}] of axis {axis} (size {dim})"

    def bound(b):
        if is_static(b) and b >= INT_MAX:
            return dim
        if is_static(b) and b < 0:
            require_le(-b, dim, where)
            return dim_add(dim, b)
        require_le(b, dim, where)
        if not is_static(b):
            require_le(0, b, where)
        return b

    s, e = bound(start), bound(end)
    require_le(s, e, where)
    return s, e


def _symbolic_extent(dim, start, end, step, axis):
    s, e = _symbolic_bounds(dim, start, end, step, axis)
    return dim_ceildiv(dim_sub(e, s), step)


def _slice_ref(xs, attrs, env=None):
    x = xs[0]
    attrs = resolve_attr_dims(attrs, ("starts", "ends"), env or {})
    index = [builtins_slice(None)] * x.ndim
    for axis, start, end, step in _slice_params(attrs, x.ndim):
        index[axis] = builtins_slice(start, end, step)
    return [np.array(x[tuple(index)])]


def _slice_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    shape = list(g.shape)
    # Scatter the cotangent back one sliced axis at a time (works for any step sign).
    for axis, start, end, step in reversed(_slice_params(attrs, x.ndim)):
        dim = x.shape[axis]
        if isinstance(dim, int) and is_static(start) and is_static(end):
            idx = _creation.constant(np.arange(dim)[builtins_slice(start, end, step)].astype(np.int64))
        elif start == 0 and is_static(end) and end >= INT_MAX and step == 1:
            continue  # the whole axis
        else:  # symbolic bounds: the positions are a run-time range
            s, e = _symbolic_bounds(dim, start, end, step, axis)
            idx = _creation.arange(s, e, step)
        shape[axis] = dim
        base = broadcast_to(_zero_like_scalar(x), shape)
        g = scatter_add(base, idx, g, axis)
    return [g]


register_op(OpDef(
    name="slice", family="shape", num_inputs=(1, 1),
    attrs={"starts": Attr("dims"), "ends": Attr("dims"), "axes": Attr("ints", None, optional=True),
           "steps": Attr("ints", None, optional=True)},
    type_rule=_slice_rule, reference=_slice_ref, flops=_free, vjp=_slice_vjp,
    samples=[Sample([TensorType((4, 6), F32)], attrs={"starts": [1], "ends": [5], "axes": [1]}),
             Sample([TensorType(("batch", 6), F32)], attrs={"starts": [0], "ends": [6], "axes": [1], "steps": [2]},
                    bind={"batch": 2}),
             Sample([TensorType((5, 4), "float64")], attrs={"starts": [4, -1], "ends": [-6, 0], "axes": [0, 1],
                                                            "steps": [-2, -1]}),
             Sample([TensorType(("batch", "seq"), F32)], attrs={"starts": [1], "ends": [INT_MAX], "axes": [1]},
                    bind={"batch": 2, "seq": 5}, note="x[:, 1:] on a symbolic axis: seq-1"),
             Sample([TensorType((6, "seq"), F32)], attrs={"starts": [0, 0], "ends": ["seq", -1], "axes": [0, 1]},
                    bind={"seq": 4}, note="symbolic bounds: table[:seq, :-1], guarded by seq <= 6")],
))


def slice(x, starts, ends, axes=None, steps=None):  # noqa: A001
    """Slice with per-axis ``starts``/``ends``/``steps`` (Python semantics, ends clamp). Bounds may be
    symbolic dims (``x.shape[1] - 1``); a symbolic bound must lie inside its axis (a recorded guard).

    Args:
        x: the input Tensor.
        starts: per-axis starts.
        ends: per-axis ends.
        axes: the axes sliced (default: the first ones).
        steps: per-axis steps (default 1).
    """
    starts = [b if isinstance(b, int) else str(b) for b in starts]
    ends = [b if isinstance(b, int) else str(b) for b in ends]
    return apply("slice", x, starts=starts, ends=ends, axes=None if axes is None else list(axes),
                 steps=None if steps is None else list(steps))


# ---- gather / scatter_add -------------------------------------------------------------------

def _gather_rule(ts, attrs):
    data, idx = ts
    if not _dt.is_int(idx.dtype):
        raise DTypeError(f"gather: indices must be integers, got {idx}")
    axis = normalize_axis(attrs["axis"], data.rank)
    return [TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)]


def _check_index_range(op: str, idx: np.ndarray, n: int) -> None:
    """Indices must lie in [-n, n) (negative ones wrap once): below -n NumPy would wrap twice and a
    back end clamps, so out-of-range indices are refused like embedding's (the semantics all agree on)."""
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"{op} index out of range [{-n}, {n}): min {idx.min()}, max {idx.max()}")


def _gather_ref(xs, attrs, env=None):
    data, idx = xs
    axis = attrs["axis"] % data.ndim
    _check_index_range("gather", idx, data.shape[axis])
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take(data, idx, axis=axis)]


def _gather_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None]
    data, idx = inputs
    base = broadcast_to(_zero_like_scalar(data), data.shape)
    return [scatter_add(base, idx, g, attrs["axis"]), None]


register_op(OpDef(
    name="gather", family="shape", num_inputs=(2, 2), attrs={"axis": Attr("int", 0)},
    type_rule=_gather_rule, reference=_gather_ref, flops=_free, vjp=_gather_vjp, nondiff_inputs=(1,),
    samples=[Sample([TensorType((5, 3), F32), TensorType((4,), "int64")], attrs={"axis": 0},
                    domain=["any", "int:0:5"]),
             Sample([TensorType(("batch", 6), F32), TensorType((2, 2), "int32")], attrs={"axis": 1},
                    bind={"batch": 2}, domain=["any", "int:-6:6"]),
             Sample([TensorType((4, 2), "float64"), TensorType(("batch",), "int64")], attrs={"axis": 0},
                    bind={"batch": 3}, domain=["any", "int:0:4"])],
))


def gather(x, indices, axis: int = 0):
    """Take entries of ``x`` at integer ``indices`` along ``axis`` (negative indices wrap)."""
    return apply("gather", x, indices, axis=axis)


def take(x, indices, axis: int = 0):
    """Alias of :func:`gather` (NumPy's name).

    Args:
        x: the input Tensor.
        indices: an integer Tensor.
        axis: the axis indexed.
    """
    return gather(x, indices, axis)


def _scatter_rule(ts, attrs):
    base, idx, upd = ts
    if not _dt.is_int(idx.dtype):
        raise DTypeError(f"scatter_add: indices must be integers, got {idx}")
    same_dtype([base, upd], "scatter_add's base and updates")
    axis = normalize_axis(attrs["axis"], base.rank)
    want = base.shape[:axis] + idx.shape + base.shape[axis + 1:]
    if tuple(upd.shape) != tuple(want):
        raise ShapeError(f"scatter_add: updates have shape {upd}, expected {list(want)}")
    return [base]


def _scatter_ref(xs, attrs, env=None):
    base, idx, upd = xs
    axis = attrs["axis"] % base.ndim
    _check_index_range("scatter_add", idx, base.shape[axis])
    idx = np.where(idx < 0, idx + base.shape[axis], idx)
    out = np.array(base, copy=True)
    moved = np.moveaxis(out, axis, 0)
    upd_moved = np.moveaxis(upd.reshape(base.shape[:axis] + (idx.size,) + base.shape[axis + 1:]), axis, 0)
    np.add.at(moved, idx.reshape(-1), upd_moved)
    return [out]


def _scatter_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None, None]
    return [g, None, gather(g, inputs[1], attrs["axis"])]


register_op(OpDef(
    name="scatter_add", family="shape", num_inputs=(3, 3), attrs={"axis": Attr("int", 0)},
    type_rule=_scatter_rule, reference=_scatter_ref, flops=lambda i, o, a: numel(i[2]), vjp=_scatter_vjp,
    nondiff_inputs=(1,),
    doc="``base`` with ``updates`` added at ``indices`` along ``axis`` (repeated indices accumulate).",
    samples=[Sample([TensorType((5, 3), F32), TensorType((4,), "int64"), TensorType((4, 3), F32)],
                    attrs={"axis": 0}, domain=["any", "int:0:5", "any"]),
             Sample([TensorType(("batch", 4), F32), TensorType((2, 3), "int64"), TensorType(("batch", 2, 3), F32)],
                    attrs={"axis": 1}, bind={"batch": 2}, domain=["any", "int:0:4", "any"])],
))


def scatter_add(base, indices, updates, axis: int = 0):
    """Add ``updates`` into ``base`` at ``indices`` along ``axis``."""
    return apply("scatter_add", base, indices, updates, axis=axis)


# ---- squeeze / unsqueeze / flatten ----------------------------------------------------------

def _squeeze_rule(ts, attrs):
    t = ts[0]
    axes = [i for i, d in enumerate(t.shape) if d == 1] if attrs["axes"] is None else normalize_axes(attrs["axes"], t.rank)
    for a in axes:
        if t.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} has size {t.shape[a]}, not 1")
    return [TensorType(tuple(d for i, d in enumerate(t.shape) if i not in axes), t.dtype)]


def _unsqueeze_rule(ts, attrs):
    t = ts[0]
    rank = t.rank + len(attrs["axes"])
    axes = normalize_axes(attrs["axes"], rank)
    it = iter(t.shape)
    return [TensorType(tuple(1 if i in axes else next(it) for i in range(rank)), t.dtype)]


def _back_to_input(inputs, outputs, cots, attrs):
    return [None if cots[0] is None else reshape(cots[0], inputs[0].shape)]


def _reshape_like_ref(xs, attrs, env=None, *, rule):
    t = TensorType(xs[0].shape, _dt.from_numpy_dtype(xs[0].dtype))
    return [np.reshape(xs[0], rule([t], attrs)[0].shape)]


register_op(OpDef(
    name="squeeze", family="shape", num_inputs=(1, 1), attrs={"axes": Attr("ints", None, optional=True)},
    type_rule=_squeeze_rule, reference=lambda xs, a, env=None: _reshape_like_ref(xs, a, rule=_squeeze_rule),
    flops=_free, vjp=_back_to_input,
    samples=[Sample([TensorType((3, 1, 4), F32)], attrs={"axes": [1]}),
             Sample([TensorType(("batch", 1), F32)], attrs={"axes": [-1]}, bind={"batch": 2}),
             Sample([TensorType((1, 2, 1), "float64")], attrs={"axes": None})],
))
register_op(OpDef(
    name="unsqueeze", family="shape", num_inputs=(1, 1), attrs={"axes": Attr("ints")},
    type_rule=_unsqueeze_rule, reference=lambda xs, a, env=None: _reshape_like_ref(xs, a, rule=_unsqueeze_rule),
    flops=_free, vjp=_back_to_input,
    samples=[Sample([TensorType((3, 4), F32)], attrs={"axes": [0]}),
             Sample([TensorType(("batch", 4), F32)], attrs={"axes": [1, -1]}, bind={"batch": 2}),
             Sample([TensorType((), "float64")], attrs={"axes": [0]})],
))


def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or those in ``axis``).

    Args:
        x: the input Tensor.
        axis: None, an int or a list of ints.
    """
    axes = [axis] if isinstance(axis, int) else (list(axis) if axis is not None else None)
    return apply("squeeze", x, axes=axes)


def unsqueeze(x, axis):
    """Insert size-1 axes at ``axis`` (positions in the result).

    Args:
        x: the input Tensor.
        axis: an int or a list of ints.
    """
    axes = [axis] if isinstance(axis, int) else list(axis)
    return apply("unsqueeze", x, axes=axes)


def _flatten_shape(t, attrs):
    if t.rank == 0:
        return (1,)
    start = normalize_axis(attrs["start_axis"], t.rank)
    end = normalize_axis(attrs["end_axis"], t.rank)
    if end < start:
        raise ShapeError(f"flatten: end_axis {end} comes before start_axis {start}")
    return t.shape[:start] + (dim_product(t.shape[start:end + 1]),) + t.shape[end + 1:]


register_op(OpDef(
    name="flatten", family="shape", num_inputs=(1, 1),
    attrs={"start_axis": Attr("int", 1), "end_axis": Attr("int", -1)},
    type_rule=lambda ts, a: [TensorType(_flatten_shape(ts[0], a), ts[0].dtype)],
    reference=lambda xs, a, env=None: [np.reshape(xs[0], _env_shape(
        _flatten_shape(TensorType(xs[0].shape, _dt.from_numpy_dtype(xs[0].dtype)), a), env))],
    flops=_free, vjp=_back_to_input,
    decompose=lambda inputs, a: [reshape(inputs[0], _flatten_shape(inputs[0].type, a))],
    samples=[Sample([TensorType((2, 3, 4), F32)]),
             Sample([TensorType(("batch", 2, 2, 3), F32)], attrs={"start_axis": 1, "end_axis": 2}, bind={"batch": 2}),
             Sample([TensorType((2, 3), "float64")], attrs={"start_axis": 0}),
             Sample([TensorType(("batch", "seq", 3), F32)], attrs={"start_axis": 0, "end_axis": 1},
                    bind={"batch": 2, "seq": 3}, note="batch*seq")],
))


def flatten(x, start_axis: int = 1, end_axis: int = -1):
    """Merge axes ``start_axis..end_axis`` into one (PyTorch's default keeps the batch axis).

    Args:
        x: the input Tensor.
        start_axis: the first merged axis.
        end_axis: the last merged axis.
    """
    return apply("flatten", x, start_axis=start_axis, end_axis=end_axis)


# ---- pad ------------------------------------------------------------------------------------

def _pad_pairs(attrs, rank):
    pads = attrs["pads"]
    if len(pads) != 2 * rank:
        raise ShapeError(f"pad: expected {2 * rank} pad amounts (before, after per axis), got {len(pads)}")
    if any(is_static(p) and p < 0 for p in pads):
        raise ShapeError(f"pad: negative padding {pads} (use slice to crop)")
    return [(pads[2 * i], pads[2 * i + 1]) for i in range(rank)]


def _pad_rule(ts, attrs):
    t = ts[0]
    shape = []
    for axis, (d, (b, a)) in enumerate(zip(t.shape, _pad_pairs(attrs, t.rank))):
        # amounts computed from the input shapes (an imported Pad fed by Shape arithmetic) are dims:
        # they must not crop, a recorded guard where it cannot be proved
        for p in (b, a):
            if not is_static(p):
                require_le(0, p, f"pad: the padding {p} of axis {axis} must not be negative")
        if b != 0 or a != 0:
            if attrs["mode"] == "reflect":
                if is_static(d) and is_static(b) and is_static(a) and (b >= d or a >= d):
                    raise ShapeError(f"pad: reflect padding ({b}, {a}) must be smaller than the dim ({d})")
                if is_static(b) and is_static(a):
                    require_le(max(b, a) + 1, d, f"reflect padding ({b}, {a})")
                else:  # one guard per side: each reflected run must be shorter than the axis
                    for p in (b, a):
                        if p != 0:
                            require_le(dim_add(p, 1), d, f"reflect padding ({b}, {a}) of axis {axis}")
            elif attrs["mode"] == "edge" and not is_static(d):
                require_le(1, d, f"edge padding ({b}, {a})")
            shape.append(dim_add(d, b, a))
        else:
            shape.append(d)
    return [TensorType(tuple(shape), t.dtype)]


def _pad_indices(dim, before, after, mode):
    """Source index of each padded position along one axis (edge/reflect)."""
    idx = np.arange(-before, dim + after)
    if mode == "edge":
        return np.clip(idx, 0, dim - 1)
    period = 2 * (dim - 1) if dim > 1 else 1
    idx = np.abs(idx) % period
    return np.where(idx >= dim, period - idx, idx)


def _pad_index_graph(dim, before, after, mode):
    """``_pad_indices`` as graph ops, for a symbolic axis or pad amount: the source positions are a
    run-time ``arange(-before, dim + after)`` folded into ``[0, dim)`` — clipped (edge) or reflected
    once, ``(dim-1) - |(dim-1) - |i||`` (reflect: each pad is below ``dim``, a guard of the node)."""
    i = _creation.arange(dim_sub(0, before), dim_add(dim, after))
    last = _creation.dim_value(dim_sub(dim, 1))
    if mode == "edge":
        return _elementwise.maximum(_elementwise.minimum(i, last), _creation.constant(np.array(0), "int64"))
    return last - _elementwise.abs(last - _elementwise.abs(i))


def _pad_ref(xs, attrs, env=None):
    x = xs[0]
    pairs = _pad_pairs(resolve_attr_dims(attrs, ("pads",), env or {}), x.ndim)
    if attrs["mode"] == "constant":
        return [np.pad(x, pairs, mode="constant", constant_values=np.array(attrs["value"]).astype(x.dtype))]
    return [np.pad(x, pairs, mode="edge" if attrs["mode"] == "edge" else "reflect")]


def _pad_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    pairs = _pad_pairs(attrs, x.ndim)
    if attrs["mode"] == "constant":
        axes = [i for i, (b, a) in enumerate(pairs) if b != 0 or a != 0]
        return [slice(g, [pairs[i][0] for i in axes], [dim_add(pairs[i][0], x.shape[i]) for i in axes], axes)]
    shape = list(g.shape)
    for axis, (b, a) in enumerate(pairs):
        if b != 0 or a != 0:
            shape[axis] = x.shape[axis]
            base = broadcast_to(_zero_like_scalar(x), shape)
            if all(is_static(v) for v in (x.shape[axis], b, a)):
                idx = _creation.constant(_pad_indices(x.shape[axis], b, a, attrs["mode"]).astype(np.int64))
            else:
                idx = _pad_index_graph(x.shape[axis], b, a, attrs["mode"])
            g = scatter_add(base, idx, g, axis)
    return [g]


register_op(OpDef(
    name="pad", family="shape", num_inputs=(1, 1),
    attrs={"pads": Attr("dims"), "mode": Attr("str", "constant", choices=("constant", "reflect", "edge")),
           "value": Attr("float", 0.0)},
    type_rule=_pad_rule, reference=_pad_ref, flops=_free, vjp=_pad_vjp,
    samples=[Sample([TensorType((2, 3), F32)], attrs={"pads": [1, 0, 2, 1], "value": 0.5}),
             Sample([TensorType(("batch", 4), F32)], attrs={"pads": [0, 0, 2, 1], "mode": "reflect"}, bind={"batch": 2}),
             Sample([TensorType((3, 2), "float64")], attrs={"pads": [1, 2, 1, 1], "mode": "edge"}),
             Sample([TensorType(("batch", "seq"), F32)], attrs={"pads": [0, 0, 1, 2]}, bind={"batch": 2, "seq": 3},
                    note="a padded symbolic axis: seq+3"),
             Sample([TensorType(("batch", "seq"), F32)], attrs={"pads": [1, 0, 2, 1], "mode": "edge"},
                    bind={"batch": 2, "seq": 3}, note="edge padding of symbolic axes: batch+1, seq+3"),
             Sample([TensorType((2, "seq"), "float64")], attrs={"pads": [1, 1, 2, "seq-2"], "mode": "reflect"},
                    bind={"seq": 4}, note="reflect by an amount computed from the dim: 2*seq, guarded by 3 <= seq"),
             Sample([TensorType((3, "seq"), F32)], attrs={"pads": [0, 0, "seq-1", 1], "mode": "constant", "value": 2.0},
                    bind={"seq": 3}, note="constant padding by a symbolic amount: 2*seq")],
))


def pad(x, pads, mode: str = "constant", value: float = 0.0):
    """Pad with ``pads`` = [before0, after0, before1, after1, ...]; mode constant, reflect or edge.

    Args:
        x: the input Tensor.
        pads: see above.
        mode: ``"constant"``, ``"reflect"`` or ``"edge"``.
        value: the fill value of constant mode.
    """
    pads = [p if isinstance(p, int) else str(p) for p in pads]  # symbolic amounts (x.shape[1] % 4) stay dims
    return apply("pad", x, pads=pads, mode=mode, value=value)


# ---- dim_size -------------------------------------------------------------------------------

def _dim_size_ref(xs, attrs, env=None):
    n = 1
    for a in attrs["axes"]:
        n *= xs[0].shape[a]
    return [np.array(n, dtype=_dt.to_numpy_dtype(attrs["dtype"]))]


register_op(OpDef(
    name="dim_size", family="shape", num_inputs=(1, 1),
    attrs={"axes": Attr("ints"), "dtype": Attr("dtype", "int64")},
    type_rule=lambda ts, a: [TensorType((), a["dtype"])] if all(
        0 <= x < max(ts[0].rank, 1) for x in a["axes"]) else (_ for _ in ()).throw(
        ShapeError(f"dim_size: axes {a['axes']} out of range for {ts[0]}")),
    reference=_dim_size_ref, flops=_free, vjp=NOT_DIFFERENTIABLE,
    doc="The product of the sizes of ``axes`` as a scalar (run-time value of symbolic dims).",
    samples=[Sample([TensorType(("batch", 3), F32)], attrs={"axes": [0, 1], "dtype": "float32"}, bind={"batch": 4}),
             Sample([TensorType((2, 5), "int64")], attrs={"axes": [1]}, domain=["int:0:3"])],
))


def dim_size(x, axes, dtype="int64"):
    """The run-time product of ``x``'s dims over ``axes``; a constant when they are static.

    Args:
        x: the input Tensor.
        axes: the axes whose sizes are multiplied.
        dtype: the result's dtype.
    """

    axes = [normalize_axis(a, x.ndim) for a in ([axes] if isinstance(axes, int) else axes)]
    dims = [x.type.shape[a] for a in axes]
    if all(is_static(d) for d in dims):
        return _creation.constant(np.array(int(np.prod(dims, dtype=np.int64))), dtype)
    return apply("dim_size", x, axes=axes, dtype=dtype)


# ---- Python indexing ------------------------------------------------------------------------

def _bound(b):
    """A slice bound as an attribute: an int, or the text of a symbolic dim (``x.shape[1] - 1``)."""
    if isinstance(b, SymDim):
        return str(b)
    try:
        return int(b)
    except (TypeError, ValueError):
        raise ShapeError(f"a slice bound must be an int or a symbolic dim, got {type(b).__name__}",
                         hint="a bound computed from tensor values is not supported; use gf.gather") from None


def getitem(x, index):
    """``x[...]`` with NumPy semantics: ints, slices (with steps), None, Ellipsis and one integer
    array index (a Tensor, list or NumPy array, gathered along its axis)."""

    if not isinstance(index, tuple):
        index = (index,)
    for item in index:
        if isinstance(item, (bool, np.bool_)):
            raise ShapeError(f"boolean index {item!r} is not supported", hint="use gf.where(mask, x, 0) "
                             "or x[None] for a new axis")
    is_array = [isinstance(i, (Tensor, list, np.ndarray)) for i in index]
    if sum(is_array) > 1:
        raise ShapeError("indexing with more than one integer array is not supported",
                         hint="index one axis at a time, or use gf.gather")
    n_ellipsis = sum(1 for i in index if i is Ellipsis)
    if n_ellipsis > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > x.ndim:
        raise ShapeError(f"too many indices ({used}) for a tensor of rank {x.ndim}")
    if n_ellipsis:
        pos = index.index(Ellipsis)
        index = index[:pos] + (builtins_slice(None),) * (x.ndim - used) + index[pos + 1:]
    else:
        index = index + (builtins_slice(None),) * (x.ndim - used)
    starts, ends, axes, steps, int_axes = [], [], [], [], []
    parts: list[str] = []  # result axes in index order: "axis" (sliced), "new" (None), "adv" (array)
    advanced_positions = []
    array_axis, array_index = None, None
    axis = 0
    for position, item in enumerate(index):
        if item is None:
            parts.append("new")
            continue
        if isinstance(item, builtins_slice):
            if item != builtins_slice(None):
                step = 1 if item.step is None else int(item.step)
                if step == 0:
                    raise ShapeError("slice step cannot be zero")
                start = item.start if item.start is not None else (0 if step > 0 else INT_MAX)
                end = item.stop if item.stop is not None else (INT_MAX if step > 0 else -INT_MAX)
                starts.append(_bound(start)); ends.append(_bound(end)); axes.append(axis); steps.append(step)
            parts.append("axis")
        elif isinstance(item, (int, np.integer)):
            dim = x.shape[axis]
            i = int(item)
            if isinstance(dim, int) and not -dim <= i < dim:
                raise ShapeError(f"index {i} is out of bounds for axis {axis} with size {dim}")
            if not isinstance(dim, int) and i < 0:
                raise ShapeError(f"negative index {i} on the symbolic axis {axis} ({dim})")
            starts.append(i); ends.append(i + 1 if i != -1 else INT_MAX); axes.append(axis); steps.append(1)
            int_axes.append(axis)
            advanced_positions.append(position)
        elif isinstance(item, SymDim):  # a symbolic dim (x[:, x.shape[1] - 1]): a run-time position
            i = _bound(item)
            starts.append(i); ends.append(dim_add(i, 1)); axes.append(axis); steps.append(1)
            int_axes.append(axis)
            advanced_positions.append(position)
        elif isinstance(item, (Tensor, list, np.ndarray)):
            array_axis, array_index = axis, item
            parts.append("adv")
            advanced_positions.append(position)
        else:
            raise ShapeError(f"unsupported index {item!r}")
        axis += 1
    out = x
    if starts:
        out = slice(out, starts, ends, axes, steps)
    k = 0  # rank of the array index
    if array_axis is not None:
        idx = array_index if isinstance(array_index, Tensor) else _creation.constant(np.asarray(array_index, dtype=np.int64))
        k = idx.ndim
        out = gather(out, idx, array_axis)
    if int_axes:
        # Axes after the gathered one moved by k - 1.
        out = squeeze(out, [a if array_axis is None or a < array_axis else a + k - 1 for a in int_axes])
    if array_axis is not None and advanced_positions != list(range(advanced_positions[0],
                                                                  advanced_positions[-1] + 1)):
        # NumPy puts the array's dims first when the advanced indices (the array and the ints)
        # are not next to each other.
        before = sum(1 for p in parts[:parts.index("adv")] if p == "axis")
        perm = list(range(before, before + k)) + list(range(before)) + list(range(before + k, out.ndim))
        out = transpose(out, perm)
        parts.remove("adv")
        parts.insert(0, "adv")
    new_axes, position = [], 0
    for p in parts:
        if p == "new":
            new_axes.append(position)
        position += k if p == "adv" else 1
    if new_axes:
        out = unsqueeze(out, new_axes)
    return out
