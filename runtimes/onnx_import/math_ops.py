"""Importers for the ONNX elementwise math ops onto ``graphforge/ops/math_ops.py``, one node each."""
from __future__ import annotations

from .importer import ImportContext, attrs_of, importer, onnx_dtype

__all__: list[str] = []

_UNARY = {"Floor": "floor", "Ceil": "ceil", "Round": "round", "Acos": "acos", "Asin": "asin", "Atan": "atan",
          "Acosh": "acosh", "Asinh": "asinh", "Atanh": "atanh", "Sinh": "sinh", "Cosh": "cosh", "Tan": "tan",
          "IsNaN": "isnan", "BitwiseNot": "bitwise_not"}
_BINARY = {"BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor"}


@importer(*_UNARY)
def _unary(ctx: ImportContext, node):
    return [ctx.emit(_UNARY[node.op_type], [ctx.input(node, 0)])]


@importer(*_BINARY)
def _binary(ctx: ImportContext, node):
    return [ctx.emit(_BINARY[node.op_type], [ctx.input(node, 0), ctx.input(node, 1)])]


@importer("IsInf")
def _isinf(ctx: ImportContext, node):
    a = attrs_of(node)
    return [ctx.emit("isinf", [ctx.input(node, 0)], detect_positive=bool(int(a.get("detect_positive", 1))),
                     detect_negative=bool(int(a.get("detect_negative", 1))))]


@importer("Mod")
def _mod(ctx: ImportContext, node):
    fmod = bool(int(attrs_of(node).get("fmod", 0)))
    return [ctx.emit("mod", [ctx.input(node, 0), ctx.input(node, 1)], fmod=fmod)]


@importer("BitShift")
def _bit_shift(ctx: ImportContext, node):
    direction = attrs_of(node)["direction"]
    direction = direction.decode() if isinstance(direction, bytes) else direction
    return [ctx.emit("bit_shift", [ctx.input(node, 0), ctx.input(node, 1)], direction=direction)]


@importer("BitCast")
def _bitcast(ctx: ImportContext, node):
    return [ctx.emit("bitcast", [ctx.input(node, 0)], dtype=onnx_dtype(attrs_of(node)["to"]))]
