"""Importers for ONNX neural-network ops onto ``graphforge/ops/nn_ops.py``: Conv/ConvTranspose, pools,
Batch/Layer/Instance/Group/RMS/Lp/MeanVariance normalisation, LRN, Dropout and the
NegativeLogLikelihood/SoftmaxCrossEntropy losses (``nn_attention.py``: Attention; ``nn_resize.py``:
Resize/Upsample)."""
from __future__ import annotations

import numpy as np

from graphforge.dtypes import is_float
from graphforge.ops.nn_norm import normalize
from graphforge.ops.nn_pool import pool_window_counts
from graphforge.trace.tensor import Tensor

from .importer import attrs_of, float_input, importer, unsupported

__all__: list[str] = []


def _spatial(ctx, node, x, kernel, strides, dilations, pads, auto_pad):
    """Explicit pads (begins, then ends) for 1-3 spatial axes, SAME_UPPER/SAME_LOWER resolved."""
    shape = x.type.shape
    n = len(shape) - 2
    if n not in (1, 2, 3):
        unsupported(node, f"only 1-D, 2-D and 3-D inputs (N, C, *spatial) are supported, got rank {len(shape)}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * n)
        for i in range(n):
            size = shape[2 + i]
            if not isinstance(size, int):
                unsupported(node, "auto_pad with a symbolic spatial dim")
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[n + i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID" or not pads:
        pads = [0] * (2 * n)
    return pads


@importer("Conv")
def _conv(ctx, node):
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    n = len(w.type.shape) - 2
    kernel = list(a.get("kernel_shape", w.type.shape[2:]))
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0] * (2 * n))), a.get("auto_pad", "NOTSET"))
    ins = [x, w] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    return [ctx.emit("conv2d", ins, strides=strides, pads=pads, dilations=dil, groups=int(a.get("group", 1)))]


@importer("ConvTranspose")
def _conv_t(ctx, node):
    """ConvTranspose onto conv_transpose2d. ``output_shape`` and SAME auto_pad become explicit pads
    (ONNX's total-padding rule); a negative end pad (an output longer than the natural one) becomes
    output_padding; longer still is refused, as onnxruntime and onnx's reference do."""
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    n = len(w.type.shape) - 2
    if n not in (1, 2, 3) or len(x.type.shape) != n + 2:
        unsupported(node, f"only 1-D, 2-D and 3-D transposed convolutions are supported (weight rank {n + 2})")
    kernel = list(a.get("kernel_shape", w.type.shape[2:]))
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    out_pad = list(a.get("output_padding", [0] * n))
    pads = list(a.get("pads", [0] * (2 * n)))
    auto_pad = a.get("auto_pad", "NOTSET")
    if "output_shape" in a or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = x.type.shape[2:]
        if not all(isinstance(d, int) for d in sizes):
            unsupported(node, "output_shape / SAME auto_pad with a symbolic spatial dim")
        want = list(a["output_shape"])[-n:] if "output_shape" in a else [sizes[i] * strides[i] for i in range(n)]
        pads = [0] * (2 * n)
        for i in range(n):
            total = strides[i] * (sizes[i] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1 - want[i]
            if auto_pad == "SAME_UPPER":
                pads[i], pads[n + i] = total // 2, total - total // 2
            else:  # SAME_LOWER and output_shape without auto_pad: the extra pad goes first
                pads[i], pads[n + i] = total - total // 2, total // 2
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    for i in range(n):
        if pads[i] < 0:
            unsupported(node, f"a negative begin pad {pads[i]} (output_shape longer than the transposed conv)")
        if pads[n + i] < 0:  # a longer output: output_padding, as far as it reaches
            extra, room = -pads[n + i], max(strides[i], dil[i]) - 1 - out_pad[i]
            if extra > room:
                unsupported(node, f"output_shape {list(a.get('output_shape', []))} needs {extra} extra rows on axis "
                                  f"{i}, more than output_padding can add (onnxruntime and onnx's reference refuse it too)")
            pads[n + i], out_pad[i] = 0, out_pad[i] + extra
    ins = [x, w] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    return [ctx.emit("conv_transpose2d", ins, strides=strides, pads=pads, dilations=dil,
                     groups=int(a.get("group", 1)), output_padding=out_pad)]


@importer("MaxPool", "AveragePool", "LpPool")
def _pool(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    if len(node.output) > 1 and node.output[1]:
        return _max_pool_with_indices(ctx, node, x, a)
    return [_pool_nd(ctx, node, x, a)]


def _max_pool_with_indices(ctx, node, x, a):
    """MaxPool's (Y, Indices): max_pool2d beside max_pool2d_indices with the same attrs
    (storage_order=1 is column-major spatial indexing)."""
    kernel = list(a["kernel_shape"])
    n = len(kernel)
    strides, dil = list(a.get("strides", [1] * n)), list(a.get("dilations", [1] * n))
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0] * (2 * n))), a.get("auto_pad", "NOTSET"))
    attrs = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=bool(int(a.get("ceil_mode", 0))), dilations=dil)
    if any(pads[i] > dil[i % n] * (kernel[i % n] - 1) for i in range(2 * n)):
        unsupported(node, "the Indices output with pads that leave windows wholly in the padding")
    y = ctx.emit("max_pool2d", [x], **attrs)
    idx = ctx.emit("max_pool2d_indices", [x], column_major=bool(int(a.get("storage_order", 0))), **attrs)
    return [y, idx]


def _pool_nd(ctx, node, x, a):
    kernel = list(a["kernel_shape"])
    n = len(kernel)
    if len(x.type.shape) != n + 2 or n not in (1, 2, 3):
        unsupported(node, f"only 1-D, 2-D and 3-D pooling is supported (kernel {kernel}, input rank {len(x.type.shape)})")
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    # storage_order only orders the Indices output (_max_pool_with_indices); Y does not depend on it
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0] * (2 * n))), a.get("auto_pad", "NOTSET"))
    ceil = bool(int(a.get("ceil_mode", 0)))
    include = bool(int(a.get("count_include_pad", 0)))
    op = node.op_type
    if op == "AveragePool" and n == 2 and not any(pads) and dil == [1, 1] and list(kernel) == list(x.type.shape[2:]):
        return ctx.emit("global_avg_pool2d", [x])  # one window over the whole image (ResNet/Inception heads)
    if op == "LpPool":
        p = int(a.get("p", 2))
        if not is_float(x.type.dtype):
            unsupported(node, f"LpPool of a {x.type.dtype} tensor")
        dt = x.type.dtype
        base = ctx.emit("abs", [x]) if p % 2 else x
        powered = ctx.emit("mul", [x, x]) if p == 2 else ctx.emit("pow", [base, ctx.scalar(float(p), dt)])
        # sum of |x|^p over each window = the zero-padded average times its window count
        x, include = powered, True
    big = any(pads[i] > dil[i % n] * (kernel[i % n] - 1) for i in range(2 * n))  # windows wholly in padding
    if big and not ceil and (op == "MaxPool" or include):
        # pads wider than half the kernel: pad explicitly (-inf for max, 0 counted for average)
        fill = -np.inf if op == "MaxPool" else 0.0
        if op == "MaxPool" and not x.type.dtype.startswith(("float", "bfloat")):
            unsupported(node, "integer max pool with pads wider than half the kernel")
        x = ctx.emit("pad", [x], pads=[0, 0, 0, 0] + [p for i in range(n) for p in (pads[i], pads[n + i])], value=fill)
        pads = [0] * (2 * n)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil, dilations=dil)
    if op == "MaxPool":
        return ctx.emit("max_pool2d", [x], **attrs)
    y = ctx.emit("avg_pool2d", [x], count_include_pad=include, **attrs)
    if op == "AveragePool":
        return y
    sizes = x.type.shape[2:]
    if not all(isinstance(d, int) for d in sizes):
        unsupported(node, "LpPool with a symbolic spatial dim")
    counts = pool_window_counts(tuple(sizes), dict(attrs, count_include_pad=True))
    dt = x.type.dtype
    total = ctx.emit("mul", [y, ctx.cast(ctx.materialize(counts.astype(np.float32 if dt in ("float16", "bfloat16")
                                                                      else np.dtype(dt)), "lppool_counts"), dt)])
    p = int(a.get("p", 2))
    if p == 2:
        return ctx.emit("sqrt", [total])
    return ctx.emit("pow", [total, ctx.scalar(1.0 / p, dt)])


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
    if int(a.get("training_mode", 0)):  # batch statistics, ONNX's momentum (runtimes/onnx_import/nn_training.py)
        from .nn_training import batch_norm_training
        return batch_norm_training(ctx, node)
    if len([o for o in node.output if o]) > 1:
        unsupported(node, "training-mode BatchNormalization (extra outputs) is not supported on import")
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
        unsupported(node, "LRN needs static channel and spatial dims (N, C, ...)")
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
    xc = ctx.cast(x, "float32") if stash == 1 else x
    y, mean, inv = _normalize(ctx, xc, list(range(axis % rank, rank)), eps)
    y = ctx.emit("mul", [ctx.cast(y, dt), ctx.input(node, 1)])
    if ctx.has(node, 2):
        y = ctx.emit("add", [y, ctx.input(node, 2)])
    return [y, mean, inv]


@importer("Dropout")
def _dropout(ctx, node):
    """Inference: identity. Training mode (``training_mode`` a constant true): graphforge's own
    ``dropout`` op, its mask seeded by the ``seed`` attribute. The kept/dropped pattern therefore differs
    from onnxruntime's RNG, but it is a proper dropout and reproducible on every graphforge back end."""
    x = ctx.input(node, 0)
    training = ctx.has(node, 2) and bool(np.asarray(ctx.need_const(node, 2, "training_mode")).item())
    want_mask = len(node.output) > 1 and bool(node.output[1])
    if not training:
        outs = [x]
        if want_mask:
            static = all(isinstance(d, int) for d in x.type.shape) and ctx.afford(x.type.shape, 1)
            outs.append(np.ones(x.type.shape, dtype=bool) if static
                        else ctx.emit("broadcast_to", [ctx.scalar(True, "bool")], shape=list(x.type.shape)))
        return outs
    if not is_float(x.type.dtype):
        unsupported(node, f"training-mode Dropout of a {x.type.dtype} tensor")
    a = attrs_of(node)
    ratio = float(np.asarray(ctx.need_const(node, 1, "ratio")).reshape(())) if ctx.has(node, 1) else \
        float(a.get("ratio", 0.5))
    key = ctx.scalar(int(a.get("seed", 0)) % (1 << 32), "uint32")
    y = ctx.emit("dropout", [x, key], p=ratio)
    outs = [y]
    if want_mask:  # the same key on a tensor of ones: kept elements are exactly the non-zero ones
        ones = ctx.emit("broadcast_to", [ctx.scalar(1, x.type.dtype)], shape=list(x.type.shape))
        kept = ctx.emit("dropout", [ones, key], p=ratio)
        outs.append(ctx.emit("not_equal", [kept, ctx.scalar(0, x.type.dtype)]))
    return outs


@importer("LpNormalization")
def _lpnorm(ctx, node):
    x, dt = float_input(ctx, node)
    a = attrs_of(node)
    axis, p = int(a.get("axis", -1)), int(a.get("p", 2))
    if p == 1:
        n = ctx.emit("sum", [ctx.emit("abs", [x])], axes=[axis], keepdims=True)
    elif p == 2:
        n = ctx.emit("sqrt", [ctx.emit("sum", [ctx.emit("mul", [x, x])], axes=[axis], keepdims=True)])
    else:
        unsupported(node, f"p={p}")
    zero = ctx.scalar(0, dt)
    safe = ctx.emit("where", [ctx.emit("equal", [n, zero]), ctx.scalar(1, dt), n])
    return [ctx.emit("where", [ctx.emit("equal", [n, zero]), zero, ctx.emit("div", [x, safe])])]


def _normalize(ctx, x, axes, eps):
    """(x - mean) / sqrt(var + eps) over ``axes`` plus mean and inv-std (keepdims), with the registry's
    one spelling of it (``graphforge.ops.nn_norm.normalize``, also layer_norm's decomposition)."""
    b = ctx.builder
    with b.activate(), b.provenance(ctx.node_name, ""):
        return tuple(t.value for t in normalize(Tensor(x, b), axes, eps))


def _channel_affine(ctx, y, scale, bias, rank):
    shape = [-1] + [1] * (rank - 2)
    y = ctx.emit("mul", [y, ctx.emit("reshape", [scale], shape=shape)])
    return ctx.emit("add", [y, ctx.emit("reshape", [bias], shape=shape)])


@importer("InstanceNormalization")
def _instnorm(ctx, node):
    x, dt = float_input(ctx, node)
    rank = len(x.type.shape)
    y, _, _ = _normalize(ctx, x, list(range(2, rank)), float(attrs_of(node).get("epsilon", 1e-5)))
    return [_channel_affine(ctx, y, ctx.input(node, 1), ctx.input(node, 2), rank)]


@importer("GroupNormalization")
def _groupnorm(ctx, node):
    x, dt = float_input(ctx, node)
    a = attrs_of(node)
    groups = int(a["num_groups"])
    shape = list(x.type.shape)
    rank = len(shape)
    if ctx.opset < 21:
        unsupported(node, "opset-18 GroupNormalization (per-group scale) is not supported")
    c = shape[1]
    if not isinstance(c, int):
        unsupported(node, "symbolic channel dim")
    xg = ctx.emit("reshape", [x], shape=[shape[0], groups, -1])
    y, _, _ = _normalize(ctx, xg, [2], float(a.get("epsilon", 1e-5)))
    y = ctx.emit("reshape", [y], shape=shape)
    return [_channel_affine(ctx, y, ctx.input(node, 1), ctx.input(node, 2), rank)]


@importer("MeanVarianceNormalization")
def _mvn(ctx, node):
    x, dt = float_input(ctx, node)
    axes = [int(i) for i in attrs_of(node).get("axes", [0, 2, 3])]
    mean = ctx.emit("mean", [x], axes=axes, keepdims=True)
    d = ctx.emit("sub", [x, mean])
    var = ctx.emit("mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=True)
    return [ctx.emit("div", [d, ctx.emit("add", [ctx.emit("sqrt", [var]), ctx.scalar(1e-9, dt)])])]


@importer("RMSNormalization")
def _rmsnorm(ctx, node):
    x, dt = float_input(ctx, node)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(a.get("axis", -1)) % rank
    stash = int(a.get("stash_type", 1))
    xc = ctx.cast(x, "float32") if stash == 1 and dt != "float32" else x
    cdt = xc.type.dtype
    ms = ctx.emit("mean", [ctx.emit("mul", [xc, xc])], axes=list(range(axis, rank)), keepdims=True)
    y = ctx.emit("mul", [xc, ctx.emit("rsqrt", [ctx.emit("add", [ms, ctx.scalar(float(a.get("epsilon", 1e-5)), cdt)])])])
    y = ctx.cast(y, dt)
    return [ctx.emit("mul", [y, ctx.input(node, 1)])]


def _nll(ctx, node, logp, target, weight, a):
    """Negative log-likelihood of integer ``target`` under ``logp`` (N, C, d...) with ONNX reductions."""
    e = ctx.emit
    dt = logp.type.dtype
    rank = len(logp.type.shape)
    c = logp.type.shape[1]
    if not isinstance(c, int):
        unsupported(node, "symbolic class dim")
    t = ctx.cast(target, "int64")
    ignore = a.get("ignore_index")
    mask = None
    if ignore is not None:
        mask = e("not_equal", [t, ctx.scalar(int(ignore), "int64")])
        t = e("where", [mask, t, ctx.scalar(0, "int64")])
    oh = e("one_hot", [t], num_classes=c, dtype=dt)  # (N, d..., C)
    if rank > 2:
        oh = e("transpose", [oh], perm=[0, rank - 1] + list(range(1, rank - 1)))
    picked = e("sum", [e("mul", [oh, logp])], axes=[1], keepdims=False)
    w = e("gather", [weight, t], axis=0) if weight is not None else None
    if mask is not None:
        m = e("cast", [mask], dtype=dt)
        w = m if w is None else e("mul", [w, m])
    loss = e("neg", [picked])
    if w is not None:
        loss = e("mul", [loss, w])
    red = a.get("reduction", "mean")
    if red == "none":
        return loss
    total = e("sum", [loss], axes=None, keepdims=False)
    if red == "sum":
        return total
    if w is None:
        return e("mean", [loss], axes=None, keepdims=False)
    return e("div", [total, e("sum", [w], axes=None, keepdims=False)])


@importer("NegativeLogLikelihoodLoss")
def _nll_loss(ctx, node):
    a = attrs_of(node)
    w = ctx.input(node, 2) if ctx.has(node, 2) else None
    return [_nll(ctx, node, ctx.input(node, 0), ctx.input(node, 1), w, a)]


@importer("SoftmaxCrossEntropyLoss")
def _sce(ctx, node):
    a = attrs_of(node)
    scores = ctx.input(node, 0)
    logp = ctx.emit("log_softmax", [scores], axis=1)
    w = ctx.input(node, 2) if ctx.has(node, 2) else None
    return [_nll(ctx, node, logp, ctx.input(node, 1), w, a), logp]


@importer("CausalConvWithState")
def _causal_conv_with_state(ctx, node):
    """Stateful causal depthwise 1-D conv (opset 27): the past state (zeros when absent) concatenated
    before the input along the length, one depthwise ``conv2d`` with no padding (+ bias, + SiLU for
    'silu'/'swish'), and the last k-1 positions of the concatenation as the present state."""
    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    n, c, length = x.type.shape
    k = w.type.shape[-1]
    if not (isinstance(c, int) and isinstance(k, int)):
        unsupported(node, "symbolic channels or kernel size")
    act = a.get("activation", "none")
    if act not in ("none", "silu", "swish"):
        unsupported(node, f"activation {act!r}")
    if k > 1:
        past = ctx.input(node, 3) if ctx.has(node, 3) else \
            ctx.emit("broadcast_to", [ctx.scalar(0, x.type.dtype)], shape=[n, c, k - 1])
        padded = ctx.emit("concat", [past, x], axis=2)
        present = ctx.emit("slice", [padded], starts=[-(k - 1)], ends=[2 ** 63 - 1], axes=[2])
    else:
        padded = x
        present = ctx.emit("slice", [x], starts=[length], ends=[length], axes=[2])  # (N, C, 0)
    ins = [padded, w] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    y = ctx.emit("conv2d", ins, strides=[1], pads=[0, 0], dilations=[1], groups=c)
    if act != "none":
        y = ctx.emit("silu", [y])
    return [y, present]
