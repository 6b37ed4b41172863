"""ONNX lowerings of the shape ops: reshape family, broadcast, transpose, concat/split/slice, pad,
gather/scatter_add, dim_size.

Target shapes come from the node's output type. A shape with symbolic dims (``["batch", -1]``,
``"4*batch"``) becomes ``Flatten`` or a constant shape with ``0`` (copy the input's dim) / ``-1``
where that is exactly equivalent (``Emitter.reshape``/``expand``), and is computed at run time from
the graph inputs otherwise (``Emitter.shape``); one exported file serves every batch size. Ops that
change nothing (one-part concat/split, zero pads) return their input instead of an Identity node.
"""
from __future__ import annotations

from graphforge.ir.dims import dim_product

from .lower import lowers

__all__: list[str] = []

_INT64_MAX = 2 ** 63 - 1


@lowers("reshape", "flatten", "squeeze", "unsqueeze")
def _reshape(ctx, args, attrs):
    return [ctx.reshape(args[0], ctx.in_types[0].shape, ctx.out_types[0].shape)]


@lowers("broadcast_to")
def _broadcast_to(ctx, args, attrs):
    return [ctx.expand(args[0], ctx.in_types[0].shape, ctx.out_types[0].shape)]


@lowers("transpose")
def _transpose(ctx, args, attrs):
    rank = ctx.in_types[0].rank
    perm = attrs.get("perm")
    perm = list(range(rank))[::-1] if perm is None else [p % rank for p in perm]
    return [ctx.transpose(args[0], perm)]


@lowers("concat")
def _concat(ctx, args, attrs):
    rank = ctx.in_types[0].rank
    if len(args) == 1:
        return [args[0]]
    return [ctx.op("Concat", args, axis=attrs["axis"] % rank)]


@lowers("split")
def _split(ctx, args, attrs):
    rank = ctx.in_types[0].rank
    sizes = [s if isinstance(s, str) else int(s) for s in attrs["sizes"]]
    if len(sizes) == 1:
        return [args[0]]
    return ctx.op("Split", [args[0], ctx.shape(sizes)], outputs=len(sizes), axis=attrs["axis"] % rank)


@lowers("slice")
def _slice(ctx, args, attrs):
    rank = ctx.in_types[0].rank
    starts = list(attrs["starts"])
    axes = attrs.get("axes")
    axes = list(range(len(starts))) if axes is None else [a % rank for a in axes]
    steps = attrs.get("steps") or [1] * len(axes)
    ends = [e if isinstance(e, str) else min(int(e), _INT64_MAX) for e in attrs["ends"]]
    # symbolic bounds (x[:, :seq-1]) are computed from the input shapes at run time
    return [ctx.op("Slice", [args[0], ctx.shape(starts), ctx.shape(ends), ctx.ints(axes), ctx.ints(steps)])]


@lowers("pad")
def _pad(ctx, args, attrs):
    t = ctx.in_types[0]
    pads = list(attrs["pads"])
    onnx_pads = pads[0::2] + pads[1::2]  # ONNX: every axis's begin, then every axis's end
    mode = attrs.get("mode", "constant")
    if not any(p != 0 for p in onnx_pads):
        return [args[0]]
    # symbolic amounts (pads computed from Shape in an imported model) are computed at run time
    amounts = ctx.shape(onnx_pads)
    if mode == "constant":
        value = ctx.scalar(attrs.get("value", 0.0), t.dtype)
        return [ctx.op("Pad", [args[0], amounts, value], mode="constant")]
    return [ctx.op("Pad", [args[0], amounts], mode="edge" if mode == "edge" else "reflect")]


@lowers("gather")
def _gather(ctx, args, attrs):
    rank = ctx.in_types[0].rank
    if ctx.in_types[0].dtype == "string" and attrs["axis"] % rank != rank - 1:
        from .strings import string_gather  # onnxruntime's string Gather copies one element per row

        return [string_gather(ctx, args, attrs["axis"] % rank)]
    return [ctx.op("Gather", args, axis=attrs["axis"] % rank)]  # negative indices wrap, like np.take


@lowers("scatter_add")
def _scatter_add(ctx, args, attrs):
    base, idx, upd = args
    bt, it, ut = ctx.in_types
    axis = attrs["axis"] % bt.rank
    # updates (base[:axis], *idx.shape, base[axis+1:]) -> (base[:axis], n, base[axis+1:]); indices
    # broadcast to that shape, then ScatterElements accumulates duplicates with reduction="add".
    flat = list(bt.shape[:axis]) + [it.numel] + list(bt.shape[axis + 1:])
    upd = ctx.reshape(upd, ut.shape, flat)
    if it.dtype != "int64":
        idx = ctx.cast(idx, "int64")
    lead = [1] * axis + [it.numel] + [1] * (bt.rank - axis - 1)
    idx = ctx.reshape(idx, it.shape, lead)
    idx = ctx.expand(idx, lead, flat)
    return [ctx.op("ScatterElements", [base, idx, upd], axis=axis, reduction="add")]




@lowers("dim_size")
def _dim_size(ctx, args, attrs):
    t = ctx.in_types[0]
    dims = [t.shape[a % t.rank] for a in attrs["axes"]]
    dtype = ctx.out_types[0].dtype
    total = dim_product(dims) if dims else 1
    if isinstance(total, int):
        return [ctx.scalar(total, dtype)]
    n = ctx.numel(dims)
    return [ctx.cast(n, dtype) if dtype != "int64" else n]
