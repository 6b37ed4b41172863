"""Importer for ONNX Einsum onto ``graphforge/ops/contraction.py`` (the equation canonicalised from
the operand ranks: implicit output and ``...`` become explicit letters)."""
from __future__ import annotations

from graphforge.errors import GraphforgeError
from graphforge.ops.contraction import canonical_equation

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []


@importer("Einsum")
def _einsum(ctx, node):
    a = attrs_of(node)
    ins = [ctx.input(node, i) for i in range(len(node.input))]
    try:
        eq = canonical_equation(str(a["equation"]), [len(v.type.shape) for v in ins])
    except GraphforgeError as e:
        unsupported(node, str(e))
    return [ctx.emit("einsum", ins, equation=eq)]
