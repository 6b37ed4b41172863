"""Importers for Mod, CumSum/CumProd, GatherElements/GatherND, ScatterElements/ScatterND and the NegativeLogLikelihood /
SoftmaxCrossEntropy losses, written as compositions of graphforge registry ops."""
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


def _cumulative_mask(ctx, node):
    """The input, its rank, the normalised axis and the (n, n) bool mask of a CumSum/CumProd node:
    ``m[i, j]`` is true when x_j contributes to y_i under the node's exclusive/reverse attributes."""
    x = ctx.input(node, 0)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(np.asarray(ctx.need_const(node, 1, "axis")).reshape(-1)[0]) % rank
    n = x.type.shape[axis]
    if not isinstance(n, int):
        _unsupported(node, "symbolic axis length")
    i, j = np.indices((n, n))
    excl, rev = int(a.get("exclusive", 0)), int(a.get("reverse", 0))
    return x, rank, axis, (j > i if excl else j >= i) if rev else (j < i if excl else j <= i)


@importer("CumSum")
def _cumsum(ctx, node):
    x, rank, axis, m = _cumulative_mask(ctx, node)
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


# ---- scatters -------------------------------------------------------------------------------------
def _lowest(dt: str, highest: bool):
    from graphforge.dtypes import to_numpy_dtype

    npdt = np.dtype(to_numpy_dtype(dt)) if dt != "bfloat16" else np.dtype(np.float32)
    if npdt.kind == "f":
        return np.inf if highest else -np.inf
    info = np.iinfo(npdt)
    return info.max if highest else info.min


def _scatter_rows(ctx, node, data, idx, upd, reduction: str):
    """``data`` (N, *rest) with rows ``idx`` (U,) (already in [0, N)) combined with ``upd`` (U, *rest).

    add → ``scatter_add``; none → the rows replaced (through two ``scatter_add``s: indices are unique
    per ONNX); mul/max/min → a dense (U, N) row-match mask reduced over U (exact, O(U·N))."""
    e = ctx.emit
    dt = data.type.dtype
    n, rest = data.type.shape[0], list(data.type.shape[1:])
    u = idx.type.shape[0]
    if reduction == "add":
        return e("scatter_add", [data, idx, upd], axis=0)
    if reduction == "none":
        zeros = e("broadcast_to", [ctx.scalar(0, dt)], shape=[n, *rest])
        hits = e("scatter_add", [e("broadcast_to", [ctx.scalar(0, "int32")], shape=[n, *rest]), idx,
                                 e("broadcast_to", [ctx.scalar(1, "int32")], shape=[u, *rest])], axis=0)
        vals = e("scatter_add", [zeros, idx, upd], axis=0)
        return e("where", [e("greater", [hits, ctx.scalar(0, "int32")]), vals, data])
    if reduction not in ("mul", "max", "min"):
        _unsupported(node, f"reduction {reduction!r}")
    ones_rest = [1] * len(rest)
    match = e("equal", [e("reshape", [idx], shape=[u, 1, *ones_rest]),
                        ctx.materialize(np.arange(n, dtype=np.int64).reshape(1, n, *ones_rest), "scatter_rows")])
    cand_upd = e("reshape", [upd], shape=[u, 1, *rest])
    if reduction == "mul":
        picked = e("where", [match, cand_upd, ctx.scalar(1, dt)])
        return e("mul", [data, e("prod", [picked], axes=[0], keepdims=False)])
    op = "max" if reduction == "max" else "min"
    picked = e("where", [match, cand_upd, ctx.scalar(_lowest(dt, highest=op == "min"), dt)])
    red = e(op, [picked], axes=[0], keepdims=False)
    return e("maximum" if op == "max" else "minimum", [data, red])


def _static(node, *types):
    for t in types:
        if not all(isinstance(d, int) for d in t.shape):
            _unsupported(node, "symbolic shapes")


def _wrap(ctx, i, n):
    e = ctx.emit
    i = ctx.cast(i, "int64")
    return e("where", [e("less", [i, ctx.scalar(0, "int64")]), e("add", [i, ctx.scalar(n, "int64")]), i])


@importer("ScatterElements", "Scatter")
def _scatter_elements(ctx, node):
    data, idx, upd = (ctx.input(node, i) for i in range(3))
    a = attrs_of(node)
    rank = len(data.type.shape)
    axis = int(a.get("axis", 0)) % rank
    xs, ishape = data.type.shape, idx.type.shape
    _static(node, data.type, idx.type)
    strides = [int(np.prod(xs[d + 1:], dtype=np.int64)) for d in range(rank)]
    grid = np.indices(ishape, dtype=np.int64)
    base = sum((grid[d] * strides[d] for d in range(rank) if d != axis), np.zeros(ishape, np.int64))
    e = ctx.emit
    flat = e("add", [e("mul", [_wrap(ctx, idx, xs[axis]), ctx.scalar(strides[axis], "int64")]),
                     ctx.materialize(np.asarray(base, np.int64), "scatter_base")])
    u = int(np.prod(ishape, dtype=np.int64))
    out = _scatter_rows(ctx, node, e("reshape", [data], shape=[-1]), e("reshape", [flat], shape=[u]),
                        e("reshape", [upd], shape=[u]), a.get("reduction", "none"))
    return [e("reshape", [out], shape=list(xs))]


@importer("ScatterND")
def _scatter_nd(ctx, node):
    data, idx, upd = (ctx.input(node, i) for i in range(3))
    a = attrs_of(node)
    xs, ishape = data.type.shape, idx.type.shape
    _static(node, data.type, idx.type)
    k = ishape[-1]
    lead = [int(d) for d in ishape[:-1]]
    u = int(np.prod(lead, dtype=np.int64))
    rest = list(xs[k:])
    e = ctx.emit
    i2 = e("reshape", [idx], shape=[u, k])
    flat = None
    for j in range(k):  # row index into data reshaped to (prod(xs[:k]), *xs[k:])
        stride = int(np.prod(xs[j + 1:k], dtype=np.int64))
        col = e("reshape", [e("slice", [i2], starts=[j], ends=[j + 1], axes=[1])], shape=[u])
        term = e("mul", [_wrap(ctx, col, xs[j]), ctx.scalar(stride, "int64")])
        flat = term if flat is None else e("add", [flat, term])
    rows = int(np.prod(xs[:k], dtype=np.int64))
    out = _scatter_rows(ctx, node, e("reshape", [data], shape=[rows, *rest]), flat,
                        e("reshape", [upd], shape=[u, *rest]), a.get("reduction", "none"))
    return [e("reshape", [out], shape=list(xs))]


@importer("CumProd")
def _cumprod(ctx, node):
    """y_i = prod over the j that precede i (per exclusive/reverse): a (n, n) mask reduced with ``prod``."""
    x, rank, axis, m = _cumulative_mask(ctx, node)
    e = ctx.emit
    perm = [d for d in range(rank) if d != axis] + [axis]
    xt = e("transpose", [x], perm=perm) if axis != rank - 1 else x
    picked = e("where", [ctx.materialize(m, "cumprod_mask"), e("unsqueeze", [xt], axes=[rank - 1]),
                         ctx.scalar(1, x.type.dtype)])
    y = e("prod", [picked], axes=[-1], keepdims=False)
    if axis != rank - 1:
        y = e("transpose", [y], perm=[int(p) for p in np.argsort(perm)])
    return [y]


@importer("GatherND")
def _gather_nd(ctx, node):
    data, idx = ctx.input(node, 0), ctx.input(node, 1)
    b = int(attrs_of(node).get("batch_dims", 0))
    xs, ishape = data.type.shape, idx.type.shape
    _static(node, data.type, idx.type)
    k = ishape[-1]
    lead = [int(d) for d in ishape[:-1]]
    u = int(np.prod(lead, dtype=np.int64))
    strides = [int(np.prod(xs[d + 1:b + k], dtype=np.int64)) for d in range(b + k)]
    grid = np.indices(lead, dtype=np.int64) if lead else np.zeros((0,), np.int64)
    base = sum((grid[d] * strides[d] for d in range(b)), np.zeros(lead, np.int64)).reshape(u)
    e = ctx.emit
    i2 = e("reshape", [idx], shape=[u, k])
    flat = ctx.materialize(base, "gather_nd_base")
    for j in range(k):
        col = e("reshape", [e("slice", [i2], starts=[j], ends=[j + 1], axes=[1])], shape=[u])
        flat = e("add", [flat, e("mul", [_wrap(ctx, col, xs[b + j]), ctx.scalar(strides[b + j], "int64")])])
    rest = list(xs[b + k:])
    rows = e("reshape", [data], shape=[int(np.prod(xs[:b + k], dtype=np.int64)), *rest])
    y = e("gather", [rows, flat], axis=0)
    return [e("reshape", [y], shape=lead + rest)]
