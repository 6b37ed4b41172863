"""ONNX lowering of ``einsum`` (``graphforge/ops/contraction.py``): pairwise contractions along the
op's greedy path. A pair that contracts at least one letter becomes one ``MatMul`` (operands
transposed to (batch, free, contracted) / (batch, contracted, free) and flattened to 3 groups when
needed, so a plain (batched) matrix product is exactly one MatMul); a pair without a contracted
letter (an outer or elementwise product), a single operand's sum or diagonal, and the final
transpose are ``Einsum`` nodes / Transpose."""
from __future__ import annotations

from graphforge.ir.dims import dim_product
from graphforge.ops.contraction import contraction_path, split_equation

from .lower import lowers

__all__: list[str] = []


def _reduce_to(ctx, x, subs, keep):
    want = "".join(c for c in dict.fromkeys(subs) if c in keep)
    if want == subs:
        return x, subs
    return ctx.op("Einsum", [x], equation=f"{subs}->{want}"), want


def _contract(ctx, a, sa, b, sb, keep, size):
    a, sa = _reduce_to(ctx, a, sa, set(sb) | set(keep))
    b, sb = _reduce_to(ctx, b, sb, set(sa) | set(keep))
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    afree = [c for c in sa if c not in sb]
    bfree = [c for c in sb if c not in sa]
    result = "".join(batch + afree + bfree)
    if not contract:
        return ctx.op("Einsum", [a, b], equation=f"{sa},{sb}->{result}"), result
    ta, tb = batch + afree + contract, batch + contract + bfree
    a = ctx.transpose(a, [sa.index(c) for c in ta])
    b = ctx.transpose(b, [sb.index(c) for c in tb])
    dims = lambda letters: [size[c] for c in letters]  # noqa: E731
    grouped = len(afree) == 1 and len(contract) == 1 and len(bfree) == 1
    if grouped:
        return ctx.op("MatMul", [a, b]), result
    m, k, n = dim_product(dims(afree)), dim_product(dims(contract)), dim_product(dims(bfree))
    a = ctx.reshape(a, dims(ta), dims(batch) + [m, k])
    b = ctx.reshape(b, dims(tb), dims(batch) + [k, n])
    y = ctx.op("MatMul", [a, b])
    return ctx.reshape(y, dims(batch) + [m, n], dims(batch + afree + bfree)), result


@lowers("einsum")
def _einsum(ctx, args, attrs):
    subs, out = split_equation(attrs["equation"])
    size = {c: d for s, t in zip(subs, ctx.in_types) for c, d in zip(s, t.shape)}
    work = list(zip(args, subs))
    for i, j, keep in contraction_path(subs, out, [t.shape for t in ctx.in_types]):
        (a, sa), (b, sb) = work[i], work[j]
        y = _contract(ctx, a, sa, b, sb, keep, size)
        work = [w for k, w in enumerate(work) if k not in (i, j)] + [y]
    (y, sy), = work
    y, sy = _reduce_to(ctx, y, sy, set(out))
    if sy != out:
        y = ctx.transpose(y, [sy.index(c) for c in out])
    return [y]
