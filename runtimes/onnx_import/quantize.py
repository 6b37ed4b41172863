"""Importers for ONNX's quantization ops onto ``graphforge/ops/quantize.py``: QuantizeLinear,
DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

A missing optional zero point that a later input makes positional is imported as a zero scalar
(ONNX's meaning of an absent zero point)."""
from __future__ import annotations

import numpy as np
import onnx

from graphforge.dtypes import to_numpy_dtype

from .importer import attrs_of, importer, onnx_dtype, unsupported
from .nn_ops import _spatial

__all__: list[str] = []


def _qdq_attrs(node, a) -> dict:
    return {"axis": int(a.get("axis", 1)), "block_size": int(a.get("block_size", 0))}


@importer("QuantizeLinear")
def _quantize(ctx, node):
    a = attrs_of(node)
    ins = [ctx.input(node, 0), ctx.input(node, 1)] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    out = onnx_dtype(int(a["output_dtype"])) if int(a.get("output_dtype", 0)) else None
    extra = {} if int(a.get("saturate", 1)) else {"saturate": False}  # only float8 outputs read it
    return [ctx.emit("quantize_linear", ins, output_dtype=out, **_qdq_attrs(node, a), **extra)]


@importer("DequantizeLinear")
def _dequantize(ctx, node):
    a = attrs_of(node)
    if int(a.get("output_dtype", 0)) not in (0, onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                             onnx.TensorProto.BFLOAT16):
        unsupported(node, f"output_dtype {a['output_dtype']} is not a float type graphforge has")
    ins = [ctx.input(node, 0), ctx.input(node, 1)] + ([ctx.input(node, 2)] if ctx.has(node, 2) else [])
    y = ctx.emit("dequantize_linear", ins, **_qdq_attrs(node, a))
    if int(a.get("output_dtype", 0)):
        y = ctx.cast(y, onnx_dtype(int(a["output_dtype"])))
    return [y]


@importer("DynamicQuantizeLinear")
def _dynamic_quantize(ctx, node):
    return ctx.emit_n("dynamic_quantize_linear", [ctx.input(node, 0)])


def _zero_points(ctx, node, first: int, operands) -> list:
    """The zero-point inputs at ``first``, ``first + 1`` (zeros filled where a later one is given)."""
    given = [ctx.has(node, first + i) for i in range(len(operands))]
    if not any(given):
        return []
    last = max(i for i, g in enumerate(given) if g)
    out = []
    for i in range(last + 1):
        out.append(ctx.input(node, first + i) if given[i] else
                   ctx.materialize(np.zeros((), to_numpy_dtype(operands[i].type.dtype)), "zero_point"))
    return out


@importer("MatMulInteger")
def _matmul_integer(ctx, node):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    return [ctx.emit("matmul_integer", [a, b] + _zero_points(ctx, node, 2, [a, b]))]


def _conv_attrs(ctx, node, x, w) -> dict:
    a = attrs_of(node)
    if len(w.type.shape) != 4:
        unsupported(node, f"only 2-D convolutions are supported (weight rank {len(w.type.shape)})")
    kernel = list(a.get("kernel_shape", w.type.shape[2:]))
    strides = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    pads = _spatial(ctx, node, x, kernel, strides, dil, list(a.get("pads", [0, 0, 0, 0])), a.get("auto_pad", "NOTSET"))
    return dict(strides=strides, pads=pads, dilations=dil, groups=int(a.get("group", 1)))


@importer("ConvInteger")
def _conv_integer(ctx, node):
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    return [ctx.emit("conv_integer", [x, w] + _zero_points(ctx, node, 2, [x, w]), **_conv_attrs(ctx, node, x, w))]


@importer("QLinearMatMul")
def _qlinear_matmul(ctx, node):
    return [ctx.emit("qlinear_matmul", [ctx.input(node, i) for i in range(8)])]


@importer("QLinearConv")
def _qlinear_conv(ctx, node):
    ins = [ctx.input(node, i) for i in range(8)] + ([ctx.input(node, 8)] if ctx.has(node, 8) else [])
    return [ctx.emit("qlinear_conv", ins, **_conv_attrs(ctx, node, ins[0], ins[3]))]
