"""Importers for ONNX linear-algebra and neural-network ops (Gemm, MatMul, Conv, pools, norms)."""
from __future__ import annotations

import numpy as np

from graphforge.errors import UnsupportedOpError

from .importer import ImportContext, importer
from .ops_basic import attrs_of

__all__: list[str] = []


def _unsupported(node, why: str):
    raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: {why}", op=node.op_type)


@importer("MatMul")
def _matmul(ctx: ImportContext, node):
    return [ctx.emit("matmul", [ctx.input(node, 0), ctx.input(node, 1)])]


@importer("Gemm")
def _gemm(ctx, node):
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if int(a.get("transA", 0)):
        x = ctx.emit("transpose", [x], perm=[1, 0])
    trans_b = bool(int(a.get("transB", 0)))
    has_c = ctx.has(node, 2)
    dt = x.type.dtype
    if alpha == 1.0 and (not has_c or beta == 1.0):
        c = ctx.input(node, 2) if has_c else None
        if c is not None and len(c.type.shape) == 1:
            return [ctx.emit("linear", [x, w, c], transpose_b=trans_b)]
        y = ctx.emit("linear", [x, w], transpose_b=trans_b)
        return [ctx.emit("add", [y, c]) if c is not None else y]
    y = ctx.emit("linear", [x, w], transpose_b=trans_b)
    if alpha != 1.0:
        y = ctx.emit("mul", [y, ctx.scalar(alpha, dt)])
    if has_c and beta != 0.0:
        c = ctx.input(node, 2)
        if beta != 1.0:
            c = ctx.emit("mul", [c, ctx.scalar(beta, dt)])
        y = ctx.emit("add", [y, c])
    return [y]


def _spatial(ctx, node, x, kernel, strides, dilations, pads, auto_pad):
    shape = x.type.shape
    if len(shape) != 4:
        _unsupported(node, f"only 2-D (NCHW) inputs are supported, got rank {len(shape)}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            size = shape[2 + i]
            if not isinstance(size, int):
                _unsupported(node, "auto_pad with a symbolic spatial dim")
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[2 + i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    return pads


@importer("Conv")
def _conv(ctx, node):
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    one_d = len(w.type.shape) == 3
    if one_d:  # 1-D conv as a 2-D conv over (N, C, 1, W)
        x, w = ctx.emit("unsqueeze", [x], axes=[2]), ctx.emit("unsqueeze", [w], axes=[2])
        a = _as_2d(a)
    if len(w.type.shape) != 4:
        _unsupported(node, f"only 1-D and 2-D convolutions are supported (weight rank {len(w.type.shape)})")
    kernel = list(a.get("kernel_shape", w.type.shape[2:]))
    strides = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0, 0, 0, 0])), a.get("auto_pad", "NOTSET"))
    ins = [x, w] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    y = ctx.emit("conv2d", ins, strides=strides, pads=pads, dilations=dil, groups=int(a.get("group", 1)))
    return [ctx.emit("squeeze", [y], axes=[2]) if one_d else y]


def _as_2d(a: dict) -> dict:
    """Attributes of a 1-D conv/pool rewritten for the (1, W) 2-D form."""
    a = dict(a)
    for k, fill in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
        if k in a:
            a[k] = [fill] + list(a[k])
    if "pads" in a:
        a["pads"] = [0, a["pads"][0], 0, a["pads"][1]]
    return a


@importer("ConvTranspose")
def _conv_t(ctx, node):
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    if len(w.type.shape) != 4:
        _unsupported(node, "only 2-D transposed convolutions are supported")
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        _unsupported(node, "output_shape / SAME auto_pad are not supported")
    ins = [x, w] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    return [ctx.emit("conv_transpose2d", ins, strides=list(a.get("strides", [1, 1])),
                     pads=list(a.get("pads", [0, 0, 0, 0])), dilations=list(a.get("dilations", [1, 1])),
                     groups=int(a.get("group", 1)), output_padding=list(a.get("output_padding", [0, 0])))]


@importer("MaxPool", "AveragePool")
def _pool(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    if len(node.output) > 1 and node.output[1]:
        _unsupported(node, "the Indices output is not supported")
    if len(a["kernel_shape"]) == 1:
        x = ctx.emit("unsqueeze", [x], axes=[2])
        a = _as_2d(a)
        ys = _pool2d(ctx, node, x, a)
        return [ctx.emit("squeeze", [ys], axes=[2])]
    return [_pool2d(ctx, node, x, a)]


def _pool2d(ctx, node, x, a):
    kernel = list(a["kernel_shape"])
    if len(kernel) != 2:
        _unsupported(node, "only 2-D pooling is supported")
    strides = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    if dil != [1, 1]:
        _unsupported(node, "dilated pooling is not supported")
    if int(a.get("storage_order", 0)):
        _unsupported(node, "storage_order=1")
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0, 0, 0, 0])), a.get("auto_pad", "NOTSET"))
    ceil = bool(int(a.get("ceil_mode", 0)))
    include = bool(int(a.get("count_include_pad", 0)))
    if node.op_type == "AveragePool" and not any(pads) and list(kernel) == list(x.type.shape[2:]):
        return ctx.emit("global_avg_pool2d", [x])  # one window over the whole image (ResNet/Inception heads)
    big = any(pads[i] > kernel[i % 2] // 2 for i in range(4))
    if big and not ceil and (node.op_type == "MaxPool" or include):
        # pads wider than half the kernel: pad explicitly (-inf for max, 0 counted for average)
        fill = -np.inf if node.op_type == "MaxPool" else 0.0
        if node.op_type == "MaxPool" and not x.type.dtype.startswith(("float", "bfloat")):
            _unsupported(node, "integer max pool with pads wider than half the kernel")
        x = ctx.emit("pad", [x], pads=[0, 0, 0, 0, pads[0], pads[2], pads[1], pads[3]], value=fill)
        pads = [0, 0, 0, 0]
    if node.op_type == "MaxPool":
        return ctx.emit("max_pool2d", [x], kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil)
    return ctx.emit("avg_pool2d", [x], kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil,
                    count_include_pad=include)


@importer("GlobalAveragePool", "GlobalMaxPool")
def _gpool(ctx, node):
    x = ctx.input(node, 0)
    rank = len(x.type.shape)
    if node.op_type == "GlobalAveragePool" and rank == 4:
        return [ctx.emit("global_avg_pool2d", [x])]
    op = "mean" if node.op_type == "GlobalAveragePool" else "max"
    return [ctx.emit(op, [x], axes=list(range(2, rank)), keepdims=True)]


@importer("BatchNormalization")
def _bn(ctx, node):
    a = attrs_of(node)
    if int(a.get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
        _unsupported(node, "training-mode BatchNormalization (extra outputs) is not supported on import")
    ins = [ctx.input(node, i) for i in range(5)]
    return [ctx.emit("batch_norm", ins, eps=float(a.get("epsilon", 1e-5)), training=False)]


@importer("LayerNormalization")
def _ln(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    axis = int(a.get("axis", -1))
    if int(a.get("stash_type", 1)) != 1 or x.type.dtype != "float32":
        return _ln_decomposed(ctx, node, x, axis, float(a.get("epsilon", 1e-5)), int(a.get("stash_type", 1)))
    extra = []
    if len([o for o in node.output if o]) > 1:  # Mean / InvStdDev requested: computed beside layer_norm
        extra = _ln_decomposed(ctx, node, x, axis, float(a.get("epsilon", 1e-5)), 1)[1:]
    scale = ctx.input(node, 1)
    want = tuple(x.type.shape[axis:])
    if tuple(scale.type.shape) != want:
        scale = ctx.emit("broadcast_to", [scale], shape=list(want))
    ins = [x, scale]
    if ctx.has(node, 2):
        b = ctx.input(node, 2)
        ins.append(b if tuple(b.type.shape) == want else ctx.emit("broadcast_to", [b], shape=list(want)))
    return [ctx.emit("layer_norm", ins, axis=axis, eps=float(a.get("epsilon", 1e-5)))] + extra


@importer("LRN")
def _lrn(ctx, node):
    """y = x / (bias + alpha/size * sum_{window over C} x^2) ** beta.

    The channel-window sum is one ``conv2d`` over x² viewed as (N, 1, C, H·W) with a (1, 1, size, 1)
    kernel filled with alpha/size (padded (size-1)//2 before, the rest after), so the whole op is seven
    nodes that every back end runs natively."""
    a = attrs_of(node)
    x = ctx.input(node, 0)
    size = int(a["size"])
    alpha, beta, bias = float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)), float(a.get("bias", 1.0))
    shape = x.type.shape
    if len(shape) < 3 or not all(isinstance(d, int) for d in shape[1:]):
        _unsupported(node, "LRN needs static channel and spatial dims (N, C, ...)")
    dt = x.type.dtype
    c, rest = shape[1], int(np.prod(shape[2:], dtype=np.int64))
    lo = (size - 1) // 2
    sq = ctx.emit("reshape", [ctx.emit("mul", [x, x])], shape=[shape[0], 1, c, rest])
    npdt = np.float32 if dt in ("float16", "bfloat16") else np.dtype(dt)
    w = ctx.cast(ctx.materialize(np.full((1, 1, size, 1), alpha / size, npdt), "lrn_window"), dt)
    acc = ctx.emit("conv2d", [sq, w], strides=[1, 1], pads=[lo, 0, size - 1 - lo, 0], dilations=[1, 1], groups=1)
    den = ctx.emit("add", [ctx.emit("reshape", [acc], shape=list(shape)), ctx.scalar(bias, dt)])
    return [ctx.emit("div", [x, ctx.emit("pow", [den, ctx.scalar(beta, dt)])])]


def _ln_decomposed(ctx, node, x, axis, eps, stash):
    """LayerNormalization with its Mean / InvStdDev outputs (computed in float32 when stash_type=1)."""
    dt = x.type.dtype
    rank = len(x.type.shape)
    axes = list(range(axis % rank, rank))
    xc = ctx.cast(x, "float32") if stash == 1 else x
    cdt = xc.type.dtype
    mean = ctx.emit("mean", [xc], axes=axes, keepdims=True)
    d = ctx.emit("sub", [xc, mean])
    var = ctx.emit("mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=True)
    inv = ctx.emit("rsqrt", [ctx.emit("add", [var, ctx.scalar(eps, cdt)])])
    y = ctx.cast(ctx.emit("mul", [d, inv]), dt)
    y = ctx.emit("mul", [y, ctx.input(node, 1)])
    if ctx.has(node, 2):
        y = ctx.emit("add", [y, ctx.input(node, 2)])
    return [y, mean, inv]
