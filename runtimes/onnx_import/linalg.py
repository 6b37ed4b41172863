"""Importers for ONNX MatMul and Gemm onto ``graphforge/ops/linalg.py``."""
from __future__ import annotations



from .importer import attrs_of, ImportContext, importer

__all__: list[str] = []


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
