"""ONNX lowerings of the quantized ops (``graphforge/ops/quantize.py``).

Each op is its ONNX namesake where the opset and onnxruntime's kernels allow: QuantizeLinear /
DequantizeLinear (blocked layouts and int16 need opset 21; below it they are spelled with Div,
Round, Clip and Cast, which compute the same float32 values), DynamicQuantizeLinear, MatMulInteger,
ConvInteger, QLinearMatMul, QLinearConv. A ``conv_integer`` with a constant weight whose partial
sums all fit float32's exact integers (|sum| < 2**24) is a float ``Conv`` over the integer values
instead: the same int32 result, bit for bit, through onnxruntime's much faster float kernel.
Per-tensor scales given as 1-element 1-D tensors are passed as they are (onnxruntime reads them as
per tensor).
"""
from __future__ import annotations

import functools

import numpy as np
from onnx import TensorProto, helper

from graphforge import dtypes as _dt
from graphforge.ir.dims import is_static
from graphforge.ir.types import TensorType
from graphforge.ops.quantize import FLOAT_QUANT_DTYPES, qrange

from .lower import NotExpressible, lowers, onnx_dtype
from .nn_windows import kernel_shape_attr

__all__ = ["ort_has_qdq_kernel", "qdq_opset", "default_provenance"]

_OPSET_INT16_BLOCKED = 21


def _per_tensor(t) -> bool:
    return t.rank == 0 or (t.rank == 1 and t.shape[0] == 1)


def _static(shape, what: str):
    if not all(is_static(d) for d in shape):
        raise NotExpressible(f"{what} needs static dims, got {tuple(shape)}")
    return [int(d) for d in shape]


def _expanded(ctx, p: str, p_type, x_type, axis: int, block: int) -> str:
    """``p`` (a scale or zero point) broadcastable against ``x`` in plain ONNX ops."""
    rank = x_type.rank
    if block == 0:
        if _per_tensor(p_type):
            return p if p_type.rank == 0 else ctx.op("Reshape", [p, ctx.ints([])])
        ax = axis % rank
        return ctx.op("Reshape", [p, ctx.ints([-1 if i == ax else 1 for i in range(rank)])])
    ax = axis % rank
    ps = _static(p_type.shape, "a blocked quantisation parameter below opset 21")
    n = _static([x_type.shape[ax]], "a blocked quantisation axis below opset 21")[0]
    u = ctx.op("Unsqueeze", [p, ctx.ints([ax + 1])])
    u = ctx.op("Expand", [u, ctx.ints(ps[:ax + 1] + [block] + ps[ax + 1:])])
    u = ctx.op("Reshape", [u, ctx.ints(ps[:ax] + [ps[ax] * block] + ps[ax + 1:])])
    if ps[ax] * block != n:
        u = ctx.op("Slice", [u, ctx.ints([0]), ctx.ints([n]), ctx.ints([ax])])
    return u


@functools.lru_cache(maxsize=None)
def ort_has_qdq_kernel(op_type: str, opset: int, int_type: int = TensorProto.INT8) -> bool:
    """True when the installed onnxruntime has a CPU kernel for ``op_type`` (QuantizeLinear or
    DequantizeLinear) at ``opset`` for ``int_type`` (onnxruntime 1.32 has none at opset 25+, where
    the newest onnx defines new versions). Without onnxruntime: True (the opset decides)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return True
    quantize = op_type == "QuantizeLinear"
    x_type = TensorProto.FLOAT if quantize else int_type
    inputs = [helper.make_tensor_value_info("x", x_type, [2])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]), helper.make_tensor("z", int_type, [], [0])]
    out = helper.make_tensor_value_info("y", int_type if quantize else TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node(op_type, ["x", "s", "z"], ["y"])], "probe", inputs, [out], inits)
    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - NOT_IMPLEMENTED (no kernel) or a type the opset lacks
        return False
    return True


def _native_params(ctx, attrs, op_type: str, int_dtype: str) -> bool:
    if int_dtype == "int16" and ctx.opset < _OPSET_INT16_BLOCKED:
        return False
    if attrs["block_size"] and ctx.opset < _OPSET_INT16_BLOCKED:
        return False
    return ort_has_qdq_kernel(op_type, ctx.opset, onnx_dtype(int_dtype))


def _refuse_float4(dtype: str, opset: int = 99) -> None:
    if opset < _dt.min_onnx_opset(dtype):
        raise NotExpressible(f"{dtype} tensors need opset {_dt.min_onnx_opset(dtype)} or newer")
    if dtype in _dt.FLOAT4_DTYPES:
        raise NotExpressible(f"{dtype} quantization: onnxruntime has no {dtype} QuantizeLinear, DequantizeLinear "
                             "or Cast kernel (graphforge's reference and JAX back ends run it)")


def _f32(ctx, name: str, t) -> str:
    return name if t.dtype == "float32" else ctx.cast(name, "float32")


def _quantize_float(ctx, args, attrs, out: str):
    """float8: the exporter computes storage types in float32 around a node (args arrive as float32,
    the float32 result is converted to ``out`` after, rounding to nearest even): here
    ``x / scale + zero_point``, clamped to the type's largest finite value when ``saturate``."""
    xt, st = ctx.in_types[0], ctx.in_types[1]
    ax, block = attrs["axis"], attrs["block_size"]
    y = ctx.op("Div", [_f32(ctx, args[0], xt), _f32(ctx, _expanded(ctx, args[1], st, xt, ax, block), st)])
    if len(args) == 3:
        zt = ctx.in_types[2]
        y = ctx.op("Add", [y, _f32(ctx, _expanded(ctx, args[2], zt, xt, ax, block), zt)])
    if attrs.get("saturate", True):
        limit = float(_dt.float_max(out))
        y = ctx.op("Clip", [y, ctx.scalar(-limit, "float32"), ctx.scalar(limit, "float32")])
    return [y]


@lowers("quantize_linear")
def _quantize(ctx, args, attrs):
    xt, st = ctx.in_types[0], ctx.in_types[1]
    out = ctx.out_types[0].dtype
    ax, block = attrs["axis"], attrs["block_size"]
    real = ctx.node.outputs[0].type.dtype  # out is float32 for a float8 node (see _quantize_float)
    if real in FLOAT_QUANT_DTYPES:
        _refuse_float4(real, ctx.opset)
        return _quantize_float(ctx, args, attrs, real)
    zp = args[2] if len(args) == 3 else None
    native = _native_params(ctx, attrs, "QuantizeLinear", out)
    if native and zp is None:
        if all(is_static(d) for d in st.shape):
            zp = ctx.const(np.zeros([int(d) for d in st.shape]), out)  # its dtype names the output type
        else:
            native = False
    if native:
        kw = {"axis": ax} if not _per_tensor(st) or block else {}
        if block:
            kw["block_size"] = block
        return [ctx.op("QuantizeLinear", [args[0], args[1], zp], **kw)]
    lo, hi = qrange(out)
    q = ctx.op("Round", [ctx.op("Div", [args[0], _expanded(ctx, args[1], st, xt, ax, block)])])
    if zp is not None:
        zpf = ctx.cast(_expanded(ctx, zp, ctx.in_types[2], xt, ax, block), "float32")
        q = ctx.op("Add", [q, zpf])
    q = ctx.op("Clip", [q, ctx.scalar(lo, "float32"), ctx.scalar(hi, "float32")])
    return [ctx.cast(q, out)]


@lowers("dequantize_linear")
def _dequantize(ctx, args, attrs):
    xt, st = ctx.in_types[0], ctx.in_types[1]
    ax, block = attrs["axis"], attrs["block_size"]
    real = ctx.node.inputs[0].type.dtype  # a float8 input arrives as float32 (see _quantize_float)
    if real in FLOAT_QUANT_DTYPES:  # (x - zero point) * scale in float32
        _refuse_float4(real, ctx.opset)
        q = _f32(ctx, args[0], xt)
        if len(args) == 3:
            zt = ctx.in_types[2]
            q = ctx.op("Sub", [q, _f32(ctx, _expanded(ctx, args[2], zt, xt, ax, block), zt)])
        y = ctx.op("Mul", [q, _f32(ctx, _expanded(ctx, args[1], st, xt, ax, block), st)])
        return [y if st.dtype == "float32" else ctx.cast(y, st.dtype)]
    native = _native_params(ctx, attrs, "DequantizeLinear", xt.dtype) \
        and not (xt.dtype == "int32" and len(args) == 3)  # ONNX allows an int32 zero point of 0 only
    if native:
        kw = {"axis": ax} if not _per_tensor(st) or block else {}
        if block:
            kw["block_size"] = block
        return [ctx.op("DequantizeLinear", list(args), **kw)]
    q = ctx.cast(args[0], "int32")
    if len(args) == 3:
        q = ctx.op("Sub", [q, ctx.cast(_expanded(ctx, args[2], ctx.in_types[2], xt, ax, block), "int32")])
    return [ctx.op("Mul", [ctx.cast(q, "float32"), _expanded(ctx, args[1], st, xt, ax, block)])]


@lowers("dynamic_quantize_linear")
def _dynamic_quantize(ctx, args, attrs):
    return list(ctx.op("DynamicQuantizeLinear", args, outputs=3))


@lowers("matmul_integer")
def _matmul_integer(ctx, args, attrs):
    return [ctx.op("MatMulInteger", args)]


def _conv_kw(attrs, weight_type=None):
    return dict(strides=list(attrs["strides"]), pads=list(attrs["pads"]), dilations=list(attrs["dilations"]),
                group=attrs["groups"], **kernel_shape_attr(weight_type))


# float32 holds every integer of magnitude up to 2**24 exactly
_F32_EXACT_INT = 2 ** 24


def _float_exact_bound(ctx) -> bool:
    """Whether every partial sum of this ``conv_integer`` is an integer below 2**24 in magnitude, so
    that a float32 convolution over the same integer values computes its result exactly: the weight
    (and its zero point) must be constants; ``|x - x_zero_point| <= 255`` for any 8-bit activation."""
    from .elementwise import static_array

    node = ctx.node
    if ctx.in_types[0].dtype not in ("uint8", "int8") or getattr(node, "inputs", None) is None:
        return False
    w = static_array(ctx, node.inputs[1])
    wz = static_array(ctx, node.inputs[3]) if len(node.inputs) > 3 else np.zeros(())
    if w is None or wz is None or w.ndim != 4:
        return False
    wz = wz.reshape(-1, 1, 1, 1) if wz.ndim == 1 else wz
    per_channel = np.abs(w.astype(np.int64) - wz.astype(np.int64)).reshape(w.shape[0], -1).sum(axis=1)
    return int(per_channel.max(initial=0)) * 255 < _F32_EXACT_INT


@lowers("conv_integer")
def _conv_integer(ctx, args, attrs):
    if _float_exact_bound(ctx):
        # onnxruntime's ConvInteger (CPU) runs an im2col and a small integer GEMM per image; with its
        # float Conv (NCHWc) instead the LeNet example's dynamic file runs 2x (batch 1) to 4.6x
        # (batch 64) faster (docs/serving.md §10). Over the integer
        # values (x - x_zero_point, w - w_zero_point) a float32 convolution is exact while every partial
        # sum stays below 2**24 (checked above from the constant weight), so the result is the same
        # int32 tensor, held as float32. The int8 weight stays int8 in the file; its Cast is a
        # constant that onnxruntime folds at load. A cast of the result to float32 reads the float
        # tensor directly (``Emitter.exact_float_of``), so no int32 round trip runs.
        x = ctx.cast(args[0], "float32")
        if len(args) > 2:
            x = ctx.op("Sub", [x, ctx.cast(args[2], "float32")])
        w = ctx.cast(args[1], "float32")
        if len(args) > 3:
            z = ctx.cast(args[3], "float32")
            if not _per_tensor(ctx.in_types[3]):
                z = ctx.op("Reshape", [z, ctx.ints([-1, 1, 1, 1])])
            w = ctx.op("Sub", [w, z])
        acc = ctx.op("Conv", [x, w], **_conv_kw(attrs, ctx.in_types[1]))
        out = ctx.cast(acc, "int32")
        ctx.exact_float_of[out] = acc
        return [out]
    if len(args) < 4 or _per_tensor(ctx.in_types[3]):
        return [ctx.op("ConvInteger", args, **_conv_kw(attrs, ctx.in_types[1]))]
    # onnxruntime's ConvInteger takes a per-tensor weight zero point only. conv(x', w - z) =
    # conv(x', w) - z[o] * (window sums of x'), the window sums being a ConvInteger with a ones kernel.
    wt = ctx.in_types[1]
    ones = ctx.const(np.ones(_static(wt.shape, "a per-channel weight zero point"), np.uint8))
    acc = ctx.op("ConvInteger", args[:3], **_conv_kw(attrs, wt))
    sums = ctx.op("ConvInteger", [args[0], ones, args[2]], **_conv_kw(attrs, wt))
    z = ctx.op("Reshape", [ctx.cast(args[3], "int32"), ctx.ints([1, -1, 1, 1])])
    return [ctx.op("Sub", [acc, ctx.op("Mul", [sums, z])])]


@lowers("qlinear_matmul")
def _qlinear_matmul(ctx, args, attrs):
    return [ctx.op("QLinearMatMul", args)]


@lowers("qlinear_conv")
def _qlinear_conv(ctx, args, attrs):
    return [ctx.op("QLinearConv", args, **_conv_kw(attrs, ctx.in_types[3]))]


_QDQ_OPS = {"quantize_linear": "QuantizeLinear", "dequantize_linear": "DequantizeLinear"}


def qdq_opset(graph, top: int) -> int:
    """The default export opset for ``graph``: ``top``, or for a graph with quantize/dequantize
    nodes the newest opset up to ``top`` at which onnxruntime has their kernels (a QDQ model
    spelled with Div/Round/Clip instead would not be fused into integer kernels)."""
    wanted = {_QDQ_OPS[n.op] for n in graph.walk() if n.op in _QDQ_OPS}
    if not wanted:
        return top
    if any(n.op == "quantize_linear" and n.outputs[0].type.dtype == "int8" for n in graph.walk()):
        # onnxruntime 1.32's int8 → uint8 activation rewrite (x86) builds QuantizeLinear nodes that
        # fail its own type check at opset >= 21 ("output_dtype INT8 does not match y_zero_point")
        top = min(top, 20)
    for opset in range(top, 16, -1):
        if all(ort_has_qdq_kernel(op, opset) for op in wanted):
            return opset
    return top


def default_provenance(graph):
    """The export's default ``provenance=`` for ``graph`` (see ``provenance.py``): ``"metadata"`` (one
    compact table, no node names or doc strings) for a quantized graph — a deployment file, where a
    small model's names and doc strings would be a sixth of its bytes —, else ``True``."""
    return "metadata" if any(n.op in _QUANTIZED_GRAPH_OPS for n in graph.walk()) else True


# the ops ``gf.quantize``'s three modes write (a graph holding one is a quantized, deployment graph)
_QUANTIZED_GRAPH_OPS = frozenset(_QDQ_OPS) | {"dynamic_quantize_linear", "matmul_integer", "conv_integer",
                                              "qlinear_matmul", "qlinear_conv"}
