"""ONNX lowering of the random ops (``graphforge/ops/random.py``) and the counter-based hash they
share with dropout; shapes may be symbolic (the index range is built from ``Shape``)."""
from __future__ import annotations

import numpy as np

from graphforge.ir.dims import dim_product

from .lower import lowers

__all__ = ["counter_hash"]


def counter_hash(ctx, shape, key) -> str:
    """The contract's uint32 hash of every flat index of ``shape`` under ``key``."""
    from .nn_ops import _shr, _xor_u32

    u32 = lambda v: ctx.scalar(v, "uint32")  # noqa: E731
    n = ctx.numel(shape) if shape else ctx.const(np.array(1, np.int64))
    i = ctx.op("Range", [ctx.const(np.array(0, np.int64)), n, ctx.const(np.array(1, np.int64))])
    i = ctx.reshape(ctx.cast(i, "uint32"), [dim_product(list(shape))], list(shape))
    h = ctx.op("Add", [i, ctx.op("Mul", [key, u32(0x9E3779B9)])])
    h = _xor_u32(ctx, h, _shr(ctx, h, 16))
    h = ctx.op("Mul", [h, u32(0x7FEB352D)])
    h = _xor_u32(ctx, h, _shr(ctx, h, 15))
    h = ctx.op("Mul", [h, u32(0x846CA68B)])
    return _xor_u32(ctx, h, _shr(ctx, h, 16))


@lowers("random_uniform")
def _random_uniform(ctx, args, attrs):
    out = ctx.out_types[0]
    bits = ctx.cast(ctx.op("BitShift", [counter_hash(ctx, list(out.shape), args[0]), ctx.scalar(9, "uint32")],
                           direction="RIGHT"), "float32")                  # < 2**23: exact in float32
    u = ctx.op("Mul", [ctx.op("Add", [bits, ctx.scalar(0.5, "float32")]), ctx.scalar(2.0 ** -23, "float32")])
    return [ctx.cast(u, out.dtype) if out.dtype != "float32" else u]
