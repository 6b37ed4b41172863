"""Importers for Mod, CumSum, GatherElements and the NegativeLogLikelihood / SoftmaxCrossEntropy losses,
written as compositions of graphforge registry ops."""
from __future__ import annotations

import numpy as np

from graphforge.dtypes import is_float
from graphforge.errors import UnsupportedOpError

from .importer import ImportContext, importer
from .ops_basic import attrs_of

__all__: list[str] = []


def _unsupported(node, why: str):
    raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: {why}", op=node.op_type)


@importer("Mod")
def _mod(ctx: ImportContext, node):
    """Integer: exact (truncating div, sign fix-up for fmod=0). Float (fmod=1): a - trunc(a/b)*b with
    trunc through an int64 cast (exact for |a/b| < 2**63)."""
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    fmod = int(attrs_of(node).get("fmod", 0))
    dt = a.type.dtype
    e = ctx.emit
    if is_float(dt):
        q = e("div", [a, b])
        t = e("cast", [e("cast", [q], dtype="int64")], dtype=dt)
        if not fmod:
            t = e("where", [e("greater", [t, q]), e("sub", [t, ctx.scalar(1, dt)]), t])
        return [e("sub", [a, e("mul", [t, b])])]
    if a.type.shape != b.type.shape:  # explicit broadcast: keeps integer div lowerings simple
        shape = e("add", [a, b]).type.shape
        a = e("broadcast_to", [a], shape=list(shape)) if a.type.shape != shape else a
        b = e("broadcast_to", [b], shape=list(shape)) if b.type.shape != shape else b
    r = e("sub", [a, e("mul", [e("div", [a, b]), b])])
    if fmod:
        return [r]
    zero = ctx.scalar(0, dt)
    fix = e("logical_and", [e("not_equal", [r, zero]), e("not_equal", [e("less", [r, zero]), e("less", [b, zero])])])
    return [e("where", [fix, e("add", [r, b]), r])]


@importer("CumSum")
def _cumsum(ctx, node):
    x = ctx.input(node, 0)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(np.asarray(ctx.need_const(node, 1, "axis")).reshape(-1)[0]) % rank
    n = x.type.shape[axis]
    if not isinstance(n, int):
        _unsupported(node, "symbolic axis length")
    i, j = np.indices((n, n))
    excl, rev = int(a.get("exclusive", 0)), int(a.get("reverse", 0))
    m = (j > i if excl else j >= i) if rev else (j < i if excl else j <= i)  # m[i, j]: x_j adds to y_i
    dt = x.type.dtype
    cdt = dt if is_float(dt) else "float64"
    xc = ctx.cast(x, cdt)
    perm = [d for d in range(rank) if d != axis] + [axis]
    xt = ctx.emit("transpose", [xc], perm=perm) if axis != rank - 1 else xc
    mt = ctx.materialize(m.T.astype(np.dtype(cdt) if cdt != "bfloat16" else np.float32), "cumsum_mask")
    mt = ctx.cast(mt, cdt)
    y = ctx.emit("matmul", [xt, mt])
    if axis != rank - 1:
        inv = list(np.argsort(perm))
        y = ctx.emit("transpose", [y], perm=[int(p) for p in inv])
    return [ctx.cast(y, dt)]


@importer("GatherElements")
def _gather_elements(ctx, node):
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", 0)) % rank
    xs, ishape = x.type.shape, idx.type.shape
    if not all(isinstance(d, int) for d in (*xs, *ishape)):
        _unsupported(node, "symbolic shapes")
    strides = [int(np.prod(xs[d + 1:], dtype=np.int64)) for d in range(rank)]
    grid = np.indices(ishape, dtype=np.int64) if ishape else np.zeros((rank,), np.int64)
    base = sum(grid[d] * strides[d] for d in range(rank) if d != axis)
    e = ctx.emit
    i = ctx.cast(idx, "int64")
    i = e("where", [e("less", [i, ctx.scalar(0, "int64")]), e("add", [i, ctx.scalar(xs[axis], "int64")]), i])
    flat = e("add", [e("mul", [i, ctx.scalar(strides[axis], "int64")]),
                     ctx.materialize(np.asarray(base, np.int64), "gather_elements_base")])
    return [e("gather", [e("reshape", [x], shape=[-1]), flat], axis=0)]


def _nll(ctx, node, logp, target, weight, a):
    """Negative log-likelihood of integer ``target`` under ``logp`` (N, C, d...) with ONNX reductions."""
    e = ctx.emit
    dt = logp.type.dtype
    rank = len(logp.type.shape)
    c = logp.type.shape[1]
    if not isinstance(c, int):
        _unsupported(node, "symbolic class dim")
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
