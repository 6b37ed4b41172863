"""ONNX lowering of ``det`` (``graphforge/ops/linalg_det.py``): Det (opset 11) for float32 and
float16. onnxruntime has no float64 Det kernel, and rounding through float32 would lose the
precision asked for, so float64 matrices of static size n <= 5 use the Leibniz sum
``sum over permutations s of sign(s) * prod_i x[i, s(i)]`` (n! products of Gathers, then a MatMul
with the signs); larger float64 matrices are not expressible (a typed export error names them)."""
from __future__ import annotations

import itertools

import numpy as np

from graphforge.ir.dims import is_static

from .lower import NotExpressible, lowers

__all__: list[str] = []

_LEIBNIZ_MAX_N = 5  # 120 products; beyond this the sum is too large (and too inexact) to emit


def _perm_sign(p) -> float:
    sign, seen = 1.0, list(p)
    for i in range(len(seen)):
        while seen[i] != i:
            j = seen[i]
            seen[i], seen[j] = seen[j], seen[i]
            sign = -sign
    return sign


def _leibniz(ctx, x, shape):
    n = int(shape[-1])
    batch = len(shape) - 2
    flat = ctx.op("Reshape", [x, ctx.ints([0] * batch + [n * n])])
    perms = list(itertools.permutations(range(n)))
    prod = None
    for i in range(n):
        col = ctx.op("Gather", [flat, ctx.ints([i * n + p[i] for p in perms])], axis=-1)  # (*b, n!)
        prod = col if prod is None else ctx.op("Mul", [prod, col])
    signs = ctx.const(np.array([_perm_sign(p) for p in perms], dtype=np.float64))
    return ctx.op("MatMul", [prod, signs])


@lowers("det")
def _det(ctx, args, attrs):
    t = ctx.in_types[0]
    if t.dtype in ("float32", "float16"):
        return [ctx.op("Det", [args[0]])]
    if t.dtype == "float64":
        n = t.shape[-1]
        if not is_static(n) or int(n) > _LEIBNIZ_MAX_N:
            raise NotExpressible(f"det of float64 {t}: onnxruntime's Det is float32/float16 only and the exact "
                                 f"float64 expansion is emitted for static n <= {_LEIBNIZ_MAX_N}")
        if int(n) == 0:
            raise NotExpressible(f"det of empty matrices {t}")
        return [_leibniz(ctx, args[0], t.shape)]
    return [ctx.cast(ctx.op("Det", [ctx.cast(args[0], "float32")]), t.dtype)]  # bfloat16: exact in float32
