"""ONNX lowerings of the nn ops (``graphforge/ops/nn_ops.py``): conv, pools, norms, dropout,
embedding, attention — written from the contract in docs/ARCHITECTURE.md "nn ops".

Native ONNX ops are used where their semantics match the contract (Conv, ConvTranspose, MaxPool on
explicitly padded input, BatchNormalization, and the composites LayerNormalization and Attention
where ``ctx.native`` allows: the opset defines them and onnxruntime has a kernel, see
``kernels.py``; otherwise LayerNorm goes through its decomposition and attention through
MatMul-Softmax-MatMul); float64
convolutions and all average pools go through the slice form of ``nn_windows`` (onnxruntime has
no float64 Conv/AveragePool kernels, and the contract's divisor is easiest to state exactly).
Dropout's mask is the counter-based hash of the contract in uint32 arithmetic (onnxruntime's uint32
Mul wraps mod 2**32); below opset 18, which has no BitwiseXor, ``x ^ y`` is computed bit by bit.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from graphforge import dtypes as _dt
from graphforge.ir.dims import dim_add, dim_mul, dim_product, dim_sub

from .lower import HALF, lowers, reduce
from .nn_windows import (avg_divisor, conv_by_slices, dilate, kernel_shape_attr, pad_or_crop, pad_pairs, pool_pads,
                         window_counts, windows)

__all__: list[str] = []

_INT64_MAX = 2 ** 63 - 1
_NATIVE_CONV = ("float32",)


def _bias(ctx, y, args, rank):
    if len(args) > 2:
        b = ctx.op("Reshape", [args[2], ctx.ints([1, -1] + [1] * (rank - 2))])
        y = ctx.op("Add", [y, b])
    return y


@lowers("conv2d")
def _conv2d(ctx, args, attrs):
    xt, wt = ctx.in_types[0], ctx.in_types[1]
    dtype = xt.dtype
    if dtype in _NATIVE_CONV:
        return [ctx.op("Conv", args, strides=list(attrs["strides"]), pads=list(attrs["pads"]),
                       dilations=list(attrs["dilations"]), group=attrs["groups"], **kernel_shape_attr(wt))]
    xp = pad_or_crop(ctx, args[0], pad_pairs(attrs["pads"]), 0.0, dtype)
    out = ctx.out_types[0].shape[2:]
    y = conv_by_slices(ctx, xp, args[1], xt.shape, wt.shape, out, attrs["strides"], attrs["dilations"],
                       attrs["groups"])
    return [_bias(ctx, y, args, xt.rank)]


@lowers("conv_transpose2d")
def _conv_transpose2d(ctx, args, attrs):
    xt, wt = ctx.in_types[0], ctx.in_types[1]
    dtype = xt.dtype
    nsp = xt.rank - 2
    out_pad = list(attrs.get("output_padding") or [0] * nsp)
    if dtype in _NATIVE_CONV:
        return [ctx.op("ConvTranspose", args, strides=list(attrs["strides"]), pads=list(attrs["pads"]),
                       dilations=list(attrs["dilations"]), group=attrs["groups"], output_padding=out_pad,
                       **kernel_shape_attr(wt))]
    # a stride-1 conv over the zero-dilated input with the flipped, in/out-swapped kernel
    g = attrs["groups"]
    cin, cout_g = wt.shape[0], wt.shape[1]
    kernel = list(wt.shape[2:])
    strides, dil = attrs["strides"], attrs["dilations"]
    n = xt.shape[0]
    sizes = list(xt.shape[2:])
    xd = dilate(ctx, args[0], xt.shape, strides)
    pads = []
    for i, (lo, hi) in enumerate(pad_pairs(attrs["pads"])):
        full = dil[i] * (kernel[i] - 1)
        pads.append((full - lo, full - hi + out_pad[i]))
    xp = pad_or_crop(ctx, xd, pads, 0.0, dtype)
    wr = ctx.op("Reshape", [args[1], ctx.ints([g, cin // g, cout_g] + kernel)])
    wr = ctx.op("Transpose", [wr], perm=[0, 2, 1] + list(range(3, 3 + nsp)))
    wr = ctx.op("Reshape", [wr, ctx.ints([g * cout_g, cin // g] + kernel)])
    wr = ctx.op("Slice", [wr, ctx.ints([-1] * nsp), ctx.ints([-_INT64_MAX] * nsp), ctx.ints(list(range(2, 2 + nsp))),
                          ctx.ints([-1] * nsp)])
    out = ctx.out_types[0].shape[2:]
    # (dim arithmetic: a symbolic H or W stays an expression; fuzz seed 39801)
    padded = [dim_add(dim_mul(dim_sub(sizes[i], 1), strides[i]), 1 + pads[i][0] + pads[i][1]) for i in range(nsp)]
    y = conv_by_slices(ctx, xp, wr, [n, cin] + padded, [g * cout_g, cin // g] + kernel, out, [1] * nsp, dil, g)
    return [_bias(ctx, y, args, xt.rank)]


def _dils(attrs):
    return list(attrs.get("dilations") or [1] * len(attrs["kernel"]))


@lowers("max_pool2d")
def _max_pool(ctx, args, attrs):
    xt = ctx.in_types[0]
    out = ctx.out_types[0].shape[2:]
    pads = pool_pads(xt.shape[2:], out, attrs)
    floating = _dt.is_float(xt.dtype)
    low = -math.inf if floating else int(np.iinfo(_dt.to_numpy_dtype(xt.dtype)).min)
    xp = pad_or_crop(ctx, args[0], pads, low, xt.dtype)
    if xt.dtype in ("float32", "float64"):
        # the padding (incl. ceil_mode rows) is explicit, so MaxPool sees no pads and floor mode
        y = ctx.op("MaxPool", [xp], kernel_shape=list(attrs["kernel"]), strides=list(attrs["strides"]),
                   dilations=_dils(attrs))
        if attrs["ceil_mode"] and not all(isinstance(d, int) for d in out):
            # symbolic ceil_mode: the bound s-1 extra rows may give one window too many; cut to ``out``
            nsp = len(out)
            y = ctx.op("Slice", [y, ctx.ints([0] * nsp), ctx.shape(out), ctx.ints(list(range(2, 2 + nsp)))])
        return [y]
    stack = windows(ctx, xp, attrs["kernel"], attrs["strides"], _dils(attrs), out)
    return [reduce(ctx, "ReduceMax", stack, [2], False)]


@lowers("max_pool2d_grad")
def _max_pool_grad(ctx, args, attrs):
    # ONNX has no pooling-gradient op: per window, a one-hot of its first maximum (ArgMax keeps the
    # first on ties, the contract's rule) times the cotangent, then each kernel offset's slice is
    # strided back onto the padded image (dilate + Pad) and the prod(kernel) slices are summed
    xt, gt = ctx.in_types
    n, c = xt.shape[:2]
    sizes, out = list(xt.shape[2:]), list(gt.shape[2:])
    kernel, strides, dil = list(attrs["kernel"]), list(attrs["strides"]), _dils(attrs)
    nsp = len(kernel)
    pads = pool_pads(sizes, out, attrs)
    xp = pad_or_crop(ctx, args[0], pads, -math.inf, xt.dtype)
    padded = [dim_add(sizes[i], *pads[i]) for i in range(nsp)]
    stack = windows(ctx, xp, kernel, strides, dil, out)          # (N, C, K, *out)
    arg = ctx.op("ArgMax", [stack], axis=2, keepdims=1, select_last_index=0)
    k = ctx.const(np.arange(int(np.prod(kernel)), dtype=np.int64).reshape([1, 1, -1] + [1] * nsp))
    pick = ctx.cast(ctx.op("Equal", [arg, k]), xt.dtype)
    contrib = ctx.op("Mul", [pick, ctx.op("Unsqueeze", [args[1], ctx.ints([2])])])
    total = None
    for flat, offs in enumerate(itertools.product(*(range(kk) for kk in kernel))):
        part = ctx.op("Gather", [contrib, ctx.ints([flat])], axis=2)
        part = ctx.op("Squeeze", [part, ctx.ints([2])])
        part = dilate(ctx, part, [n, c] + out, strides)
        spans = [dim_add(dim_mul(out[i], strides[i]), 1 - strides[i]) for i in range(nsp)]
        place = [(offs[i] * dil[i], dim_sub(padded[i], dim_add(spans[i], offs[i] * dil[i]))) for i in range(nsp)]
        part = pad_or_crop(ctx, part, place, 0.0, xt.dtype)
        total = part if total is None else ctx.op("Add", [total, part])
    return [pad_or_crop(ctx, total, [(-lo, -hi) for lo, hi in pads])]


@lowers("avg_pool2d")
def _avg_pool(ctx, args, attrs):
    xt = ctx.in_types[0]
    out = ctx.out_types[0].shape[2:]
    pads = pool_pads(xt.shape[2:], out, attrs)
    xp = pad_or_crop(ctx, args[0], pads, 0.0, xt.dtype)
    if not all(isinstance(d, int) for d in xt.shape[2:]):
        # symbolic spatial sizes: window sums over the stack of strided slices, divided by the window
        # counts computed in the model (a static divisor map would need the sizes)
        total = reduce(ctx, "ReduceSum", windows(ctx, xp, attrs["kernel"], attrs["strides"], _dils(attrs), out),
                       [2], False)
        div = window_counts(ctx, args[0], xt.shape, attrs, out, pads)
        return [ctx.op("Div", [total, div if xt.dtype == "float32" else ctx.cast(div, xt.dtype)])]
    div = avg_divisor(xt.shape[2:], attrs)
    k = int(np.prod(attrs["kernel"]))
    if xt.dtype == "float32" and all(d == 1 for d in _dils(attrs)):
        # the padding is explicit, so AveragePool (no pads) gives sum / prod(kernel); where the
        # contract's divisor is smaller (windows clipped at the border) one constant multiply corrects it
        mean = ctx.op("AveragePool", [xp], kernel_shape=list(attrs["kernel"]), strides=list(attrs["strides"]))
        if np.all(div == k):
            return [mean]
        return [ctx.op("Mul", [mean, ctx.const(k / div, xt.dtype)])]
    # float64 (onnxruntime has no AveragePool kernel) and dilated windows: sums of strided slices
    stack = windows(ctx, xp, attrs["kernel"], attrs["strides"], _dils(attrs), out)
    total = reduce(ctx, "ReduceSum", stack, [2], False)
    return [ctx.op("Div", [total, ctx.const(div, xt.dtype)])]


@lowers("global_avg_pool2d")
def _global_avg_pool(ctx, args, attrs):
    return [reduce(ctx, "ReduceMean", args[0], [2, 3], True)]


@lowers("batch_norm")
def _batch_norm(ctx, args, attrs):
    x, scale, bias, rm, rv = args
    xt = ctx.in_types[0]
    dtype = xt.dtype
    eps = float(attrs["eps"])
    if not attrs["training"]:
        return [ctx.op("BatchNormalization", args, epsilon=eps)]
    rank = xt.rank
    shp = ctx.ints([1, -1] + [1] * (rank - 2))
    axes = [0] + list(range(2, rank))
    mu = reduce(ctx, "ReduceMean", x, axes, True)
    d = ctx.op("Sub", [x, mu])
    var = reduce(ctx, "ReduceMean", ctx.op("Mul", [d, d]), axes, True)
    inv = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar(eps, dtype)])])
    y = ctx.op("Div", [d, inv])
    y = ctx.op("Add", [ctx.op("Mul", [y, ctx.op("Reshape", [scale, shp])]), ctx.op("Reshape", [bias, shp])])
    m = ctx.scalar(attrs["momentum"], dtype)
    keep = ctx.scalar(1.0 - attrs["momentum"], dtype)
    flat = ctx.ints([-1])
    mu_c, var_c = ctx.op("Reshape", [mu, flat]), ctx.op("Reshape", [var, flat])
    n_dims = [xt.shape[a] for a in axes]
    n = ctx.cast(ctx.numel(n_dims), dtype)
    one = ctx.scalar(1.0, dtype)
    # unbiased = var * n / (n - 1), and var itself when n == 1 (as the reference)
    factor = ctx.op("Div", [n, ctx.op("Max", [ctx.op("Sub", [n, one]), one])])
    factor = ctx.op("Where", [ctx.op("Greater", [n, one]), factor, one])
    unbiased = ctx.op("Mul", [var_c, factor])
    new_rm = ctx.op("Add", [ctx.op("Mul", [keep, rm]), ctx.op("Mul", [m, mu_c])])
    new_rv = ctx.op("Add", [ctx.op("Mul", [keep, rv]), ctx.op("Mul", [m, unbiased])])
    return [y, new_rm, new_rv]


def _native_layer_norm(node, target) -> bool:
    """Whether the export emits this layer_norm as one LayerNormalization (else it is decomposed)."""
    xt = node.inputs[0].type
    if xt.dtype not in ("float32",) + HALF:  # onnxruntime's float64 LayerNormalization is only ~1e-10 accurate
        return False
    # without a scale the export makes ones of the normalised shape, which must then be static
    static = all(isinstance(d, int) for d in xt.shape[node.attrs["axis"] % xt.rank:])
    return target.native("LayerNormalization") and (len(node.inputs) > 1 or static)


def _fusable_residual_sum(ctx, x: str, rank: int, axis: int) -> bool:
    """Whether onnxruntime would fuse ``x``'s producer and a LayerNormalization reading it into
    ``SkipLayerNormalization``: a 3-D normalisation over the last axis of a one-node ``Add`` of two
    3-D tensors (its SkipLayerNormFusion also wants the shapes equal and the sum read once; where
    they are not, the detour below costs one aliasing Reshape, ~1 µs)."""
    if rank != 3 or axis != 2:
        return False
    add, ir_add = ctx.producer(x), getattr(ctx.node.inputs[0], "producer", None)
    return (add is not None and add.op_type == "Add" and ir_add is not None and ir_add.op == "add"
            and all(i.type.rank == 3 for i in ir_add.inputs))


@lowers("layer_norm", when=_native_layer_norm)
def _layer_norm(ctx, args, attrs):
    xt = ctx.in_types[0]
    axis = attrs["axis"] % xt.rank
    inputs = list(args)
    if len(inputs) == 1:
        inputs.append(ctx.const(np.ones(xt.shape[axis:]), xt.dtype))
    eps = float(attrs["eps"])
    if not _fusable_residual_sum(ctx, inputs[0], xt.rank, axis):
        return [ctx.op("LayerNormalization", inputs, axis=axis, epsilon=eps)]
    # A residual sum feeding the norm: onnxruntime's load-time SkipLayerNormFusion would turn the
    # pair into its SkipLayerNormalization kernel, which onnxruntime 1.32's CPU provider runs 2-6x
    # slower than the Add and the LayerNormalization it replaces (docs/serving.md §11: (64, 64, 128)
    # 2.39 ms fused vs 0.47 ms, (8, 128, 768) 3.54 vs 0.71 ms, one thread; the same with two). The
    # fusion matches an Add feeding the norm directly, so the norm reads the sum through a Reshape to
    # its own shape: it aliases (copies nothing) and onnxruntime keeps it. (A detour through a 4-D
    # view would need a second Reshape after the norm, which copies when it makes a graph output.)
    same = ctx.op("Reshape", [inputs[0], ctx.ints([0, 0, -1])])
    return [ctx.op("LayerNormalization", [same] + inputs[1:], axis=axis, epsilon=eps)]


# ---- dropout ---------------------------------------------------------------------------------------

def _xor_u32(ctx, a, b):
    if ctx.opset >= 18:
        return ctx.op("BitwiseXor", [a, b])
    # opset 17 has Xor for bools only: split both operands into their 32 bits (last axis), xor the
    # bits, and put the word back together (in int64, where the sum of the bit values is exact)
    shifts = ctx.const(np.arange(32, dtype=np.uint32))
    two = ctx.scalar(2, "uint32")
    bits = []
    for v in (a, b):
        u = ctx.op("Unsqueeze", [v, ctx.ints([-1])])
        bits.append(ctx.cast(ctx.op("Mod", [ctx.op("BitShift", [u, shifts], direction="RIGHT"), two]), "bool"))
    x = ctx.cast(ctx.op("Xor", bits), "int64")
    word = ctx.op("Mul", [x, ctx.const(2 ** np.arange(32, dtype=np.int64))])
    return ctx.cast(reduce(ctx, "ReduceSum", word, [-1], False), "uint32")


def _shr(ctx, h, k):
    return ctx.op("BitShift", [h, ctx.scalar(k, "uint32")], direction="RIGHT")


def dropout_keep(ctx, shape, key, p: float) -> str:
    """The contract's keep mask for a tensor of ``shape`` (dims may be symbolic)."""
    from .random import counter_hash

    return ctx.op("GreaterOrEqual", [_shr(ctx, counter_hash(ctx, shape, key), 8), ctx.scalar(round(p * 2 ** 24), "uint32")])


@lowers("dropout")
def _dropout(ctx, args, attrs):
    x, key = args
    xt = ctx.in_types[0]
    p = float(attrs["p"])
    keep = dropout_keep(ctx, list(xt.shape), key, p)
    scaled = ctx.op("Div", [x, ctx.scalar(1.0 - p, xt.dtype)])
    return [ctx.op("Where", [keep, scaled, ctx.scalar(0.0, xt.dtype)])]


@lowers("embedding")
def _embedding(ctx, args, attrs):
    return [ctx.op("Gather", args, axis=0)]


# ---- attention ---------------------------------------------------------------------------------------

def _causal(ctx, sq, sk):
    """(Sq, Sk) bool, query i sees keys j <= i (top-left aligned), sizes possibly symbolic."""
    zero, one = ctx.const(np.array(0, np.int64)), ctx.const(np.array(1, np.int64))
    rows = ctx.op("Range", [zero, ctx.numel([sq]), one])
    cols = ctx.op("Range", [zero, ctx.numel([sk]), one])
    return ctx.op("LessOrEqual", [ctx.op("Unsqueeze", [cols, ctx.ints([0])]),
                                  ctx.op("Unsqueeze", [rows, ctx.ints([1])])])


def _broadcast(a, b):
    """The NumPy broadcast of two shapes (dims may be symbolic; a 1 gives way to the other dim)."""
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    return [y if x == 1 else x for x, y in zip(a, b)]


@lowers("attention")
def _attention(ctx, args, attrs):
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else None
    qt, kt = ctx.in_types[0], ctx.in_types[1]
    mask_shape = list(ctx.in_types[3].shape) if mask is not None else None
    dtype = qt.dtype
    d = qt.shape[3]
    scale = attrs.get("scale")
    causal = bool(attrs.get("causal"))
    sq, sk = qt.shape[2], kt.shape[2]
    if causal:
        tri = _causal(ctx, sq, sk)
        mask = tri if mask is None else ctx.op("And", [mask, tri])
        mask_shape = _broadcast(mask_shape or [], [sq, sk])
    if ctx.native("Attention") and dtype == "float32":  # (onnxruntime's float64 Attention is ~1e-10 accurate)
        if scale is None and not isinstance(d, int):
            scale_attr = None  # Attention's default is 1/sqrt(D) of the run-time head size
        else:
            scale_attr = float(scale) if scale is not None else 1.0 / math.sqrt(d)
        native_mask = []
        if mask is not None:  # onnxruntime wants the mask's (Sq, Sk) spelled out, not broadcast
            native_mask = [ctx.expand(mask, mask_shape, list(qt.shape[:2]) + [sq, sk])]
        out = ctx.op("Attention", [q, k, v] + native_mask, scale=scale_attr)
    else:
        s = ctx.op("MatMul", [q, ctx.transpose(k, [0, 1, 3, 2])])
        if scale is not None:
            s = ctx.op("Mul", [s, ctx.scalar(float(scale), dtype)])
        elif isinstance(d, int):
            s = ctx.op("Mul", [s, ctx.scalar(1.0 / math.sqrt(d), dtype)])
        else:
            s = ctx.op("Div", [s, ctx.op("Sqrt", [ctx.cast(ctx.numel([d]), dtype)])])
        if mask is not None:
            s = ctx.op("Where", [mask, s, ctx.scalar(-math.inf, dtype)])
        out = ctx.op("MatMul", [ctx.op("Softmax", [s], axis=-1), v])
    if mask is not None:
        # the contract (and PyTorch): a query row that may attend to nothing is NaN
        any_key = reduce(ctx, "ReduceMax", ctx.cast(mask, "int32"), [-1], True)  # (..., Sq, 1)
        out = ctx.op("Where", [ctx.cast(any_key, "bool"), out, ctx.scalar(math.nan, dtype)])
    return [out]


def _float_pool(node, target) -> bool:
    # (symbolic spatial sizes: the decomposition computes the index table in the model)
    t = node.inputs[0].type
    return t.dtype in ("float32", "float64") and all(isinstance(d, int) for d in t.shape[2:])


@lowers("max_pool2d_indices", when=_float_pool)
def _max_pool_indices(ctx, args, attrs):
    # MaxPool's own Indices over the explicitly padded input index (N, C, *padded) row-major; a
    # constant table maps each padded position to the contract's index into the unpadded image
    # (integer inputs go through the op's decomposition)
    xt = ctx.in_types[0]
    sizes, out = list(xt.shape[2:]), ctx.out_types[0].shape[2:]
    pads = pool_pads(sizes, out, attrs)
    xp = pad_or_crop(ctx, args[0], pads, -math.inf, xt.dtype)
    _, idx = ctx.op("MaxPool", [xp], outputs=2, kernel_shape=list(attrs["kernel"]), strides=list(attrs["strides"]),
                    dilations=_dils(attrs))
    padded = [s + lo + hi for s, (lo, hi) in zip(sizes, pads)]
    grids = np.meshgrid(*[np.arange(p) - lo for p, (lo, _) in zip(padded, pads)], indexing="ij")
    inside = np.logical_and.reduce([(g >= 0) & (g < s) for g, s in zip(grids, sizes)])
    clipped = [np.clip(g, 0, s - 1) for g, s in zip(grids, sizes)]
    table = np.where(inside, np.ravel_multi_index(clipped, sizes, order="F" if attrs["column_major"] else "C"), -1)
    big, image = int(np.prod(padded)), int(np.prod(sizes))
    nc = ctx.op("Div", [idx, ctx.const(np.array(big, np.int64))])
    pos = ctx.op("Gather", [ctx.const(table.reshape(-1).astype(np.int64)),
                            ctx.op("Mod", [idx, ctx.const(np.array(big, np.int64))])], axis=0)
    return [ctx.op("Add", [ctx.op("Mul", [nc, ctx.const(np.array(image, np.int64))]), pos])]
