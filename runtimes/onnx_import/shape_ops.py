"""Importers for ONNX shape ops onto ``graphforge/ops/shape_ops.py``: Shape/Size (folded at import when
static), Reshape/Flatten/Transpose/Squeeze/Unsqueeze, Concat/Split/Slice,
Gather/GatherElements/GatherND, ScatterElements/ScatterND, Expand/Tile/Pad, Trilu, Depth/SpaceToDepth."""
from __future__ import annotations

import numpy as np

from graphforge.dtypes import is_float, to_numpy_dtype
from graphforge.errors import LoadError
from graphforge.ir.dims import dim_mul, dim_product

from .importer import attrs_of, importer, Known, unsupported
from .shape_values import as_dims, dims_array

__all__: list[str] = []


def _static_shape(ctx, node, x) -> list[int]:
    shape = list(x.type.shape)
    if not all(isinstance(d, int) for d in shape):
        unsupported(node, f"shape {x.type} has symbolic dims; only static shapes fold at import time")
    return shape


@importer("Shape")
def _shape(ctx, node):
    a = attrs_of(node)
    name = node.input[0]
    c = ctx.const(name)
    shape = list(c.shape) if c is not None else list(ctx.value(name).type.shape)
    start, end = int(a.get("start", 0)), a.get("end")
    sel = shape[start:] if end is None else shape[start:int(end)]
    if all(isinstance(d, int) for d in sel):
        return [np.array(sel, dtype=np.int64)]
    x = ctx.value(name)
    rank = len(shape)
    parts = []
    for i in range(rank)[start:None if end is None else int(end)]:
        parts.append(ctx.emit("reshape", [ctx.emit("dim_size", [x], axes=[i], dtype="int64")], shape=[1]))
    # also known at import time as dims, for the shape arithmetic that feeds Reshape/Expand/… (shape_values)
    return [Known(ctx.emit("concat", parts, axis=0) if len(parts) > 1 else parts[0], dims_array(sel))]


@importer("Size")
def _size(ctx, node):
    c = ctx.const(node.input[0])
    if c is not None:
        return [np.array(c.size, dtype=np.int64)]
    x = ctx.value(node.input[0])
    size = ctx.emit("dim_size", [x], axes=list(range(len(x.type.shape))), dtype="int64")
    if all(isinstance(d, int) for d in x.type.shape):  # static: shape arithmetic can still fold on it
        return [Known(size, np.array(int(np.prod(x.type.shape, dtype=np.int64)), dtype=np.int64))]
    return [size]


@importer("Reshape")
def _reshape(ctx, node):
    x = ctx.input(node, 0)
    shape = as_dims(ctx.need_const(node, 1, "shape", dims=True))
    allowzero = int(attrs_of(node).get("allowzero", 0))
    if not allowzero:
        shape = [x.type.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [ctx.emit("reshape", [x], shape=shape)]


@importer("Flatten")
def _flatten(ctx, node):
    x = ctx.input(node, 0)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        return [ctx.emit("reshape", [x], shape=[1, -1])]
    y = ctx.emit("flatten", [x], start_axis=axis, end_axis=-1) if axis < rank else x
    if axis > 1:
        y = ctx.emit("flatten", [y], start_axis=0, end_axis=axis - 1)
    if axis == rank:
        y = ctx.emit("unsqueeze", [y], axes=[-1])
    return [y]


@importer("Transpose")
def _transpose(ctx, node):
    perm = attrs_of(node).get("perm")
    return [ctx.emit("transpose", [ctx.input(node, 0)], perm=list(perm) if perm is not None else None)]


def _axes(ctx, node, idx: int):
    a = attrs_of(node)
    if "axes" in a:
        return [int(i) for i in a["axes"]]
    if ctx.has(node, idx):
        return [int(i) for i in ctx.need_const(node, idx, "axes").reshape(-1)]
    return None


@importer("Squeeze")
def _squeeze(ctx, node):
    return [ctx.emit("squeeze", [ctx.input(node, 0)], axes=_axes(ctx, node, 1))]


@importer("Unsqueeze")
def _unsqueeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _axes(ctx, node, 1)
    out_rank = len(x.type.shape) + len(axes)
    c = ctx.const(node.input[0])
    if c is not None and c.dtype != object and c.size <= 64:
        # (the evaluator folding constants picks Unsqueeze-13, which has no axes attribute: old opsets
        # would otherwise leave e.g. a Loop counter's Slice start unknown at import time)
        return [np.expand_dims(c, tuple(sorted(a % out_rank for a in axes)))]
    return [ctx.emit("unsqueeze", [x], axes=sorted(a % out_rank for a in axes))]


@importer("Concat")
def _concat(ctx, node):
    xs = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    return [ctx.emit("concat", xs, axis=int(attrs_of(node)["axis"]))]


@importer("Split")
def _split(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    axis = int(a.get("axis", 0))
    dim = x.type.shape[axis]
    if "split" in a:
        sizes = [int(s) for s in a["split"]]
    elif ctx.has(node, 1):  # sizes computed from Shape at run time stay dim expressions (split takes them)
        sizes = as_dims(ctx.need_const(node, 1, "split", dims=True))
    else:
        if not isinstance(dim, int):
            unsupported(node, "split of a symbolic dim without explicit sizes")
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-dim // n)
        sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    outs = ctx.emit_n("split", [x], axis=axis, sizes=sizes)
    return outs


@importer("Slice")
def _slice(ctx, node):
    x = ctx.input(node, 0)
    if ctx.opset < 10:
        a = attrs_of(node)
        starts, ends, axes, steps = list(a["starts"]), list(a["ends"]), a.get("axes"), None
    else:
        starts = as_dims(ctx.need_const(node, 1, "starts", dims=True))
        ends = as_dims(ctx.need_const(node, 2, "ends", dims=True))
        axes = [int(i) for i in ctx.need_const(node, 3, "axes")] if ctx.has(node, 3) else None
        steps = [int(i) for i in ctx.need_const(node, 4, "steps")] if ctx.has(node, 4) else None
    big = 2 ** 63 - 1
    ends = [e if isinstance(e, str) else min(max(e, -big), big) for e in ends]
    starts = [s if isinstance(s, str) else min(max(s, -big), big) for s in starts]
    return [ctx.emit("slice", [x], starts=starts, ends=ends,
                     axes=list(map(int, axes)) if axes is not None else None, steps=steps)]


@importer("Gather")
def _gather(ctx, node):
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    axis = int(attrs_of(node).get("axis", 0))
    shape = x.type.shape
    if axis in (0, -len(shape)) and len(shape) >= 2 and is_float(x.type.dtype) and \
            all(isinstance(d, int) for d in shape[1:]):
        # rows of a table (token embeddings, …): the embedding op, whose VJP is a scatter_add of rows
        table = x if len(shape) == 2 else ctx.emit("reshape", [x], shape=[shape[0], -1])
        y = ctx.emit("embedding", [table, idx])
        return [y if len(shape) == 2 else ctx.emit("reshape", [y], shape=list(idx.type.shape) + list(shape[1:]))]
    return [ctx.emit("gather", [x, idx], axis=axis)]


@importer("Expand")
def _expand(ctx, node):
    x = ctx.input(node, 0)
    shape = as_dims(ctx.need_const(node, 1, "shape", dims=True))
    xs = list(x.type.shape)
    rank = max(len(xs), len(shape))
    xs = [1] * (rank - len(xs)) + xs
    shape = [1] * (rank - len(shape)) + shape
    out = [a if b == 1 else b for a, b in zip(xs, shape)]
    return [ctx.emit("broadcast_to", [x], shape=out)]


_TILE_CONCAT_MAX = 64  # total extra copies a Tile may spell as concat inputs


@importer("Tile")
def _tile(ctx, node):
    x = ctx.input(node, 0)
    reps = as_dims(ctx.need_const(node, 1, "repeats", dims=True))
    if len(reps) != len(x.type.shape) or any(isinstance(r, int) and r < 0 for r in reps):
        raise LoadError(f"Tile node {node.name!r}: repeats {reps} must be {len(x.type.shape)} non-negative ints")
    if not all(isinstance(r, int) for r in reps):
        return [_tile_symbolic(ctx, x, reps)]
    if sum(r for r in reps if r != 1) > _TILE_CONCAT_MAX:
        # many copies: one broadcast (x viewed as (1, d0, 1, d1, …) → (r0, d0, r1, d1, …)) instead of a
        # concat with r inputs, so a hostile repeat count builds no giant node list
        if not all(isinstance(d, int) for d in x.type.shape):
            unsupported(node, f"repeats {reps} on a symbolic-shape input")
        xs = list(x.type.shape)
        spread = [v for d in xs for v in (1, d)]
        big = [v for r, d in zip(reps, xs) for v in (r, d)]
        y = ctx.emit("broadcast_to", [ctx.emit("reshape", [x], shape=spread)], shape=big)
        return [ctx.emit("reshape", [y], shape=[r * d for r, d in zip(reps, xs)])]
    for axis, r in enumerate(reps):
        if r != 1:
            x = ctx.emit("concat", [x] * r, axis=axis) if r > 0 else ctx.emit("slice", [x], starts=[0], ends=[0], axes=[axis])
    return [x]


def _pad_symbolic(ctx, node, x, full, mode, value):
    """Constant padding by amounts computed from ``Shape`` at run time (``F.pad`` to a multiple of a
    window, ``(w - W % w) % w``): per padded axis a concat of blocks of ``value`` broadcast to the
    padded sizes around x — the output dim is the expression ``W + pad``. Edge and reflect padding
    become one ``pad`` node whose amounts are dims (reflect's ``pad < dim`` is a guard of that node,
    checked when the inputs are bound). Negative (cropping) pads of symbolic size and wrap padding
    need their amounts at import time."""
    if any(isinstance(p, int) and p < 0 for p in full):
        unsupported(node, f"negative pads {full} mixed with pads computed at run time")
    if mode in ("edge", "reflect"):
        return ctx.emit("pad", [x], pads=[p if isinstance(p, int) else str(p) for p in full], mode=mode, value=value)
    if mode != "constant":
        unsupported(node, f"mode {mode!r} with pads computed at run time (constant, edge and reflect only)")
    fill = ctx.emit("constant", [], value=np.array(value, dtype=to_numpy_dtype(x.type.dtype)))
    for ax in range(len(x.type.shape)):
        lo, hi = full[2 * ax], full[2 * ax + 1]
        if lo == 0 and hi == 0:
            continue
        parts = []
        for amount, after in ((lo, False), (hi, True)):
            if amount == 0:
                continue
            shape = list(x.type.shape)
            shape[ax] = amount
            block = ctx.emit("broadcast_to", [fill], shape=shape)
            parts.append((after, block))
        x = ctx.emit("concat", [b for a, b in parts if not a] + [x] + [b for a, b in parts if a], axis=ax)
    return x


def _tile_symbolic(ctx, x, reps):
    """Tile by repeats computed from ``Shape`` at run time (``cls.repeat(batch, 1, 1)``): a size-1 axis
    is broadcast to its repeat; otherwise x is viewed as (1, d0, 1, d1, …), broadcast to
    (r0, d0, r1, d1, …) and folded back to (r0*d0, r1*d1, …) — one node each, any repeat."""
    xs = list(x.type.shape)
    if all(d == 1 or r == 1 for d, r in zip(xs, reps)):
        return ctx.emit("broadcast_to", [x], shape=[r if d == 1 else d for d, r in zip(xs, reps)])
    spread = [v for d in xs for v in (1, d)]
    big = [v for r, d in zip(reps, xs) for v in (r, d)]
    y = ctx.emit("broadcast_to", [ctx.emit("reshape", [x], shape=spread)], shape=big)
    return ctx.emit("reshape", [y], shape=[dim_mul(r, d) for r, d in zip(reps, xs)])


@importer("Pad")
def _pad(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    rank = len(x.type.shape)
    mode = a.get("mode", "constant")
    if ctx.opset < 11:
        pads, value, axes = list(a["pads"]), float(a.get("value", 0.0)), None
    else:
        pads = as_dims(ctx.need_const(node, 1, "pads", dims=True))
        value = float(ctx.need_const(node, 2, "constant_value").reshape(-1)[0]) if ctx.has(node, 2) else 0.0
        axes = [int(i) % rank for i in ctx.need_const(node, 3, "axes")] if ctx.has(node, 3) else None
    axes = axes if axes is not None else list(range(rank))
    n = len(axes)
    full = [0] * (2 * rank)
    for k, ax in enumerate(axes):
        full[2 * ax], full[2 * ax + 1] = pads[k], pads[k + n]
    if not all(isinstance(p, int) for p in full):
        return [_pad_symbolic(ctx, node, x, full, mode, value)]
    if mode == "wrap":  # a gather per padded axis (runtimes/onnx_import/signal_misc.py)
        from .signal_misc import wrap_pad
        return [wrap_pad(ctx, node, x, full)]
    if mode not in ("constant", "reflect", "edge"):
        unsupported(node, f"mode {mode!r}")
    if any(p < 0 for p in full):
        # negative pads crop
        starts = [max(-full[2 * i], 0) for i in range(rank)]
        ends = [(-full[2 * i + 1] if full[2 * i + 1] < 0 else 2 ** 63 - 1) for i in range(rank)]
        ends = [e if e != 0 else 2 ** 63 - 1 for e in ends]
        x = ctx.emit("slice", [x], starts=starts, ends=ends, axes=list(range(rank)))
        full = [max(p, 0) for p in full]
    if not any(full):
        return [x]
    return [ctx.emit("pad", [x], pads=full, mode=mode, value=value)]


@importer("Trilu")
def _trilu(ctx, node):
    x = ctx.input(node, 0)
    upper = int(attrs_of(node).get("upper", 1))
    k = int(np.asarray(ctx.need_const(node, 1, "k")).reshape(-1)[0]) if ctx.has(node, 1) else 0
    n, m = x.type.shape[-2:]
    if not isinstance(n, int) or not isinstance(m, int):
        unsupported(node, "symbolic matrix dims")
    ctx.require((n, m), 1, f"the ({n}, {m}) Trilu mask")
    mask = np.triu(np.ones((n, m), bool), k) if upper else np.tril(np.ones((n, m), bool), k)
    zero = np.zeros((), dtype=np.dtype(x.type.dtype) if x.type.dtype != "bfloat16" else np.float32)
    return [ctx.emit("where", [ctx.materialize(mask, "trilu_mask"), x,
                               ctx.emit("cast", [ctx.materialize(zero)], dtype=x.type.dtype)])]


@importer("DepthToSpace", "SpaceToDepth")
def _d2s(ctx, node):
    x = ctx.input(node, 0)
    a = attrs_of(node)
    b = int(a["blocksize"])
    n, c, h, w = x.type.shape
    if node.op_type == "SpaceToDepth":
        t = ctx.emit("reshape", [x], shape=[n, c, h // b, b, w // b, b])
        crd = a.get("mode", "DCR") == "CRD"
        t = ctx.emit("transpose", [t], perm=[0, 1, 3, 5, 2, 4] if crd else [0, 3, 5, 1, 2, 4])
        return [ctx.emit("reshape", [t], shape=[n, c * b * b, h // b, w // b])]
    if a.get("mode", "DCR") == "DCR":
        t = ctx.emit("reshape", [x], shape=[n, b, b, c // (b * b), h, w])
        t = ctx.emit("transpose", [t], perm=[0, 3, 4, 1, 5, 2])
    else:
        t = ctx.emit("reshape", [x], shape=[n, c // (b * b), b, b, h, w])
        t = ctx.emit("transpose", [t], perm=[0, 1, 4, 2, 5, 3])
    return [ctx.emit("reshape", [t], shape=[n, c // (b * b), h * b, w * b])]


@importer("GatherElements")
def _gather_elements(ctx, node):
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", 0)) % rank
    xs, ishape = x.type.shape, idx.type.shape
    e = ctx.emit
    flat = e("add", [e("mul", [_wrap(ctx, idx, xs[axis]), _dim_scalar(ctx, dim_product(xs[axis + 1:]))]),
                     _grid_offsets(ctx, xs, ishape, axis, "gather_elements_base")])
    return [e("gather", [e("reshape", [x], shape=[-1]), flat], axis=0)]


def _dim_scalar(ctx, d):
    """An int64 scalar holding the dim ``d``: a constant, or its run-time value when symbolic."""
    return ctx.scalar(int(d), "int64") if isinstance(d, int) else ctx.emit("dim_value", [], dim=d, dtype="int64")


def _grid_offsets(ctx, xs, ishape, axis: int, hint: str):
    """Σ over every dim d but ``axis`` of (position along d) · stride_d of a row-major array of shape
    ``xs``, over the index grid ``ishape`` (GatherElements/ScatterElements: each index's element
    offset without its own axis)."""
    return _grid_sum(ctx, ishape, [(d, dim_product(xs[d + 1:])) for d in range(len(xs)) if d != axis], hint)


def _grid_sum(ctx, grid, terms, hint: str):
    """Σ of (position along grid dim d) · stride for each ``(d, stride)`` of ``terms``, over the index
    grid ``grid``. A constant when every size is static; with symbolic ones, built at run time from
    ``arange`` along each dim and broadcast (nothing materialised at import)."""
    rank = len(grid)
    if all(isinstance(x, int) for x in (*grid, *(st for _, st in terms))):
        ctx.require((rank + 1, *grid), 8, "the index grid")
        pos = np.indices(grid, dtype=np.int64) if grid else np.zeros((0,), np.int64)
        base = sum((pos[d] * st for d, st in terms), np.zeros(grid, np.int64))
        return ctx.materialize(np.asarray(base, np.int64), hint)
    e = ctx.emit
    total = None
    for d, st in terms:
        if grid[d] == 1:
            continue
        term = e("mul", [_positions(ctx, grid[d], d, rank, hint), _dim_scalar(ctx, st)])
        total = term if total is None else e("add", [total, term])
    if total is None:
        total = ctx.scalar(0, "int64")
    return e("broadcast_to", [total], shape=list(grid))


def _positions(ctx, size, axis: int, rank: int, hint: str):
    """0, 1, …, size-1 along ``axis`` of a rank-``rank`` tensor (size 1 elsewhere): a constant when
    ``size`` is static, an ``arange`` when it is a symbolic dim."""
    shape = [1] * rank
    shape[axis] = size
    if isinstance(size, int):
        return ctx.materialize(np.arange(size, dtype=np.int64).reshape(shape), hint)
    return ctx.emit("reshape", [ctx.emit("arange", [], start=0, stop=size, step=1, dtype="int64")], shape=shape)


# ---- scatters -------------------------------------------------------------------------------------
def _lowest(dt: str, highest: bool):
    from graphforge.dtypes import to_numpy_dtype

    npdt = np.dtype(to_numpy_dtype(dt)) if dt != "bfloat16" else np.dtype(np.float32)
    if npdt.kind == "f":
        return np.inf if highest else -np.inf
    info = np.iinfo(npdt)
    return info.max if highest else info.min


def _scatter_rows(ctx, node, data, idx, upd, reduction: str):
    """``data`` (N, *rest) with rows ``idx`` (U,) (already in [0, N)) combined with ``upd`` (U, *rest).

    add → ``scatter_add``; none → the rows replaced (through two ``scatter_add``s: indices are unique
    per ONNX); mul/max/min → a dense (U, N) row-match mask reduced over U (exact, O(U·N))."""
    e = ctx.emit
    dt = data.type.dtype
    n, rest = data.type.shape[0], list(data.type.shape[1:])
    u = idx.type.shape[0]
    if reduction == "add":
        return e("scatter_add", [data, idx, upd], axis=0)
    if reduction == "none":
        zeros = e("broadcast_to", [ctx.scalar(0, dt)], shape=[n, *rest])
        hits = e("scatter_add", [e("broadcast_to", [ctx.scalar(0, "int32")], shape=[n, *rest]), idx,
                                 e("broadcast_to", [ctx.scalar(1, "int32")], shape=[u, *rest])], axis=0)
        vals = e("scatter_add", [zeros, idx, upd], axis=0)
        return e("where", [e("greater", [hits, ctx.scalar(0, "int32")]), vals, data])
    if reduction not in ("mul", "max", "min"):
        unsupported(node, f"reduction {reduction!r}")
    ones_rest = [1] * len(rest)
    rows = _positions(ctx, n, 1, 2 + len(rest), "scatter_rows")
    match = e("equal", [e("reshape", [idx], shape=[u, 1, *ones_rest]), rows])
    cand_upd = e("reshape", [upd], shape=[u, 1, *rest])
    if reduction == "mul":
        picked = e("where", [match, cand_upd, ctx.scalar(1, dt)])
        return e("mul", [data, e("prod", [picked], axes=[0], keepdims=False)])
    op = "max" if reduction == "max" else "min"
    picked = e("where", [match, cand_upd, ctx.scalar(_lowest(dt, highest=op == "min"), dt)])
    red = e(op, [picked], axes=[0], keepdims=False)
    return e("maximum" if op == "max" else "minimum", [data, red])


def _index_depth(node, ishape) -> int:
    """ScatterND/GatherND's index depth (the indices' last dim), which shapes the result: static."""
    if not ishape or not isinstance(ishape[-1], int):
        unsupported(node, f"an index tuple of symbolic length ({ishape[-1] if ishape else 'rank 0'})")
    return int(ishape[-1])


def _wrap(ctx, i, n):
    """Indices ``i`` into a dim of size ``n`` (an int or a symbolic dim) with negatives wrapped."""
    e = ctx.emit
    i = ctx.cast(i, "int64")
    return e("where", [e("less", [i, ctx.scalar(0, "int64")]), e("add", [i, _dim_scalar(ctx, n)]), i])


@importer("ScatterElements", "Scatter")
def _scatter_elements(ctx, node):
    data, idx, upd = (ctx.input(node, i) for i in range(3))
    a = attrs_of(node)
    rank = len(data.type.shape)
    axis = int(a.get("axis", 0)) % rank
    xs, ishape = data.type.shape, idx.type.shape
    e = ctx.emit
    flat = e("add", [e("mul", [_wrap(ctx, idx, xs[axis]), _dim_scalar(ctx, dim_product(xs[axis + 1:]))]),
                     _grid_offsets(ctx, xs, ishape, axis, "scatter_base")])
    u = dim_product(ishape)
    out = _scatter_rows(ctx, node, e("reshape", [data], shape=[-1]), e("reshape", [flat], shape=[u]),
                        e("reshape", [upd], shape=[u]), a.get("reduction", "none"))
    return [e("reshape", [out], shape=list(xs))]


@importer("ScatterND")
def _scatter_nd(ctx, node):
    data, idx, upd = (ctx.input(node, i) for i in range(3))
    a = attrs_of(node)
    xs, ishape = data.type.shape, idx.type.shape
    k = _index_depth(node, ishape)
    lead = list(ishape[:-1])
    u = dim_product(lead)
    rest = list(xs[k:])
    e = ctx.emit
    i2 = e("reshape", [idx], shape=[u, k])
    flat = None
    for j in range(k):  # row index into data reshaped to (prod(xs[:k]), *xs[k:])
        col = e("reshape", [e("slice", [i2], starts=[j], ends=[j + 1], axes=[1])], shape=[u])
        term = e("mul", [_wrap(ctx, col, xs[j]), _dim_scalar(ctx, dim_product(xs[j + 1:k]))])
        flat = term if flat is None else e("add", [flat, term])
    rows = dim_product(xs[:k])
    out = _scatter_rows(ctx, node, e("reshape", [data], shape=[rows, *rest]), flat,
                        e("reshape", [upd], shape=[u, *rest]), a.get("reduction", "none"))
    return [e("reshape", [out], shape=list(xs))]


@importer("GatherND")
def _gather_nd(ctx, node):
    data, idx = ctx.input(node, 0), ctx.input(node, 1)
    b = int(attrs_of(node).get("batch_dims", 0))
    xs, ishape = data.type.shape, idx.type.shape
    k = _index_depth(node, ishape)
    lead = list(ishape[:-1])
    u = dim_product(lead)
    strides = [dim_product(xs[d + 1:b + k]) for d in range(b + k)]
    e = ctx.emit
    i2 = e("reshape", [idx], shape=[u, k])
    flat = e("reshape", [_grid_sum(ctx, lead, [(d, strides[d]) for d in range(b)], "gather_nd_base")], shape=[u])
    for j in range(k):
        col = e("reshape", [e("slice", [i2], starts=[j], ends=[j + 1], axes=[1])], shape=[u])
        flat = e("add", [flat, e("mul", [_wrap(ctx, col, xs[b + j]), _dim_scalar(ctx, strides[b + j])])])
    rest = list(xs[b + k:])
    rows = e("reshape", [data], shape=[dim_product(xs[:b + k]), *rest])
    y = e("gather", [rows, flat], axis=0)
    return [e("reshape", [y], shape=lead + rest)]
