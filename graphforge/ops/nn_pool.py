"""max_pool2d, its gradient max_pool2d_grad, avg_pool2d and global_avg_pool2d, and the public pool
functions (``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d``, ``global_avg_pool2d``).

The window pools take 1, 2 or 3 spatial axes (the input's rank picks it; the ``2d`` in the names is
historic) and per-axis ``kernel``, ``strides`` and ``dilations``; ``pads`` holds the begins of every
spatial axis, then the ends.

max_pool2d's VJP is the native ``max_pool2d_grad`` op: every back end has a fast native form of it
(XLA's select-and-scatter, which JAX's own reduce-window VJP emits), where the gather/scatter_add
over window indices that it replaced ran ~3x slower on XLA:CPU (docs/benchmarks.md). The avg pool
VJP still gathers the windows with constant flat indices and scatter_adds the cotangents back."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.types import TensorType
from ..ir.dims import collect_requirements, dim_add, dim_max, dim_mul, dim_product, dim_sub, is_static
from ..trace.tensor import apply
from ._nn_common import (F32, F64, _ceil_window_out, _check_pairs, _fmt, _require_nchw, _spatial_rank, _static_spatial,
                         _tuple_of, _window_out, _windows, _zero)
from ._shapes import require_float
from .nn_conv import resolve_padding
from .common import compute_dtype, numel
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import (creation as _creation, elementwise as _elementwise, reduction as _reduction,
               shape_ops as _shape_ops)

__all__ = ["max_pool2d", "avg_pool2d", "max_pool1d", "max_pool3d", "avg_pool1d", "avg_pool3d", "global_avg_pool2d",
           "pool_window_counts"]


# ---- pooling --------------------------------------------------------------------------------
# Every pool takes (N, C, *spatial) with 1-3 spatial axes (the op names are historic); per-axis attrs
# ``kernel``/``strides``/``dilations`` and ``pads`` = the begins of every axis, then the ends.

def _axis_geometry(size, k, s, p0, p1, d, ceil_mode):
    """(out, extra) of one spatial axis: the output length and the end padding ceil_mode adds
    (PyTorch's rule: the last window must start inside the input or the begin padding)."""
    span = d * (k - 1) + 1
    room = size + p0 + p1 - span
    if ceil_mode:
        out = -(-room // s) + 1
        if (out - 1) * s >= size + p0:
            out -= 1
    else:
        out = room // s + 1
    return out, max(0, (out - 1) * s + span - (size + p0 + p1))


def _pool_geometry(sizes, attrs):
    """[(out, extra)] per spatial axis of a static input (PyTorch rules)."""
    k, s, p = attrs["kernel"], attrs["strides"], attrs["pads"]
    d = attrs.get("dilations") or [1] * len(k)
    n = len(k)
    return [_axis_geometry(sizes[i], k[i], s[i], p[i], p[n + i], d[i], attrs["ceil_mode"]) for i in range(n)]


def _dil(attrs):
    return list(attrs.get("dilations") or [1] * len(attrs["kernel"]))


def _pool_rule(op):
    def rule(ts, attrs):
        x = ts[0]
        if op == "max_pool2d":  # max needs only an order: integers pool too (padding is the type's minimum)
            if x.dtype == "bool":
                raise DTypeError(f"{op}: bool tensors have no order, got {_fmt(x)}", hint="cast to uint8 first")
        else:
            require_float(x, f"{op}'s input")
        nsp = _spatial_rank(x, op)
        _check_pairs(attrs, op, ("strides", "dilations", "kernel"), nsp)
        k, p, s, d = attrs["kernel"], attrs["pads"], attrs["strides"], _dil(attrs)
        # every window must reach the input (its last element lies past the begin padding)
        if any(max(p[i], p[nsp + i]) > d[i] * (k[i] - 1) for i in range(nsp)):
            raise ShapeError(f"{op}: pads {attrs['pads']} leave windows entirely in the padding (each pad must be at "
                             f"most dilation*(kernel-1) = {[d[i] * (k[i] - 1) for i in range(nsp)]})")
        sizes = tuple(x.shape[2:])
        # (a static axis must hold the window whatever the others are)
        if any(is_static(sizes[i]) and sizes[i] + p[i] + p[nsp + i] < d[i] * (k[i] - 1) + 1 for i in range(nsp)):
            raise ShapeError(f"{op}: the (dilated) kernel {k} (dilation {d}) is larger than the padded input "
                             f"of {_fmt(x)} (pads {p})", hint="use a smaller kernel or global_avg_pool2d")
        # symbolic spatial dims: the output length as a dim expression (floor or ceil mode); the
        # lowerings read the padding and avg's divisor from the bound sizes (JAX, the reference) or
        # compute them in the model (ONNX)
        if not all(is_static(v) for v in sizes):
            window_out = _ceil_window_out if attrs["ceil_mode"] else _window_out
            out = tuple(_axis_geometry(sizes[i], k[i], s[i], p[i], p[nsp + i], d[i], attrs["ceil_mode"])[0]
                        if is_static(sizes[i]) else window_out(sizes[i], k[i], s[i], p[i], p[nsp + i], d[i], op, 2 + i)
                        for i in range(nsp))
            return [TensorType((x.shape[0], x.shape[1]) + out, x.dtype)]
        sizes = _static_spatial(x, op)
        out = tuple(o for o, _ in _pool_geometry(sizes, attrs))
        return [TensorType((x.shape[0], x.shape[1]) + out, x.dtype)]
    return rule


def _pad_pairs(sizes, attrs):
    """(begin, end) padding per spatial axis, ceil_mode's extra rows included at the end."""
    n, p = len(sizes), attrs["pads"]
    return [(p[i], p[n + i] + e) for i, (_, e) in enumerate(_pool_geometry(sizes, attrs))]


def _pool_windows(x, attrs, fill):
    sizes = x.shape[2:]
    geo = _pool_geometry(sizes, attrs)
    xp = np.pad(x, [(0, 0), (0, 0)] + _pad_pairs(sizes, attrs), constant_values=fill)
    return _windows(xp, attrs["kernel"], attrs["strides"], _dil(attrs), [o for o, _ in geo])


def pool_window_counts(sizes, attrs) -> np.ndarray:
    """The avg-pool divisor per output position (float64, shape = the output's spatial shape): the
    number of window elements inside ``[-p0, size + p1)`` (count_include_pad) or ``[0, size)`` per
    axis; ceil_mode's overhang never counts. The ONNX importer also uses it to turn an average into a sum."""
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], _dil(attrs)
    n = len(k)
    counts = None
    for i, (out, extra) in enumerate(_pool_geometry(sizes, attrs)):
        size, p0, p1 = sizes[i], p[i], p[n + i]
        inside = np.zeros(size + p0 + p1 + extra)
        if attrs.get("count_include_pad", True):
            inside[:size + p0 + p1] = 1
        else:
            inside[p0:p0 + size] = 1
        pos = np.arange(out)[:, None] * s[i] + np.arange(k[i])[None, :] * d[i]
        c = inside[pos].sum(axis=1)
        counts = c if counts is None else np.multiply.outer(counts, c)
    return counts.astype(np.float64)


def _lowest(dtype):
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _max_pool_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    win = _pool_windows(x.astype(cd), attrs, _lowest(np.dtype(cd)))
    n = len(attrs["kernel"])
    return [win.max(axis=tuple(range(-n, 0))).astype(x.dtype)]


def _avg_pool_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    win = _pool_windows(x.astype(cd), attrs, 0)
    n = len(attrs["kernel"])
    div = pool_window_counts(x.shape[2:], attrs).astype(cd)
    return [(win.sum(axis=tuple(range(-n, 0))) / div).astype(x.dtype)]


def _pool_indices(sizes, attrs):
    """Flat indices into the padded image of every window element: (*out, *kernel), plus the padded
    sizes and the (begin, end) pads."""
    pairs = _pad_pairs(sizes, attrs)
    padded = [sizes[i] + lo + hi for i, (lo, hi) in enumerate(pairs)]
    geo = _pool_geometry(sizes, attrs)
    flat = np.arange(int(np.prod(padded)), dtype=np.int64).reshape([1, 1] + padded)
    idx = _windows(flat, attrs["kernel"], attrs["strides"], _dil(attrs), [o for o, _ in geo])[0, 0]
    return np.ascontiguousarray(idx), padded, pairs


def _window_positions(out, k, s, d):
    """(out, k) int64: the padded-input position of every window element along one axis,
    ``arange(out) * s + arange(k) * d`` (``out`` may be a dim)."""
    starts = _creation.arange(out) * s
    offs = _creation.constant(np.arange(k, dtype=np.int64) * d)
    return _shape_ops.unsqueeze(starts, [1]) + _shape_ops.unsqueeze(offs, [0])


def _pool_index_graph(sizes, out, attrs):
    """``_pool_indices`` for symbolic spatial sizes, as graph ops: the flat indices (*out, *kernel)
    into the padded image, computed at run time from ``arange(out) * s + arange(k) * d`` per axis;
    plus the padded sizes and the (begin, end) pads as dims. ``out`` is the pooled spatial shape.
    ceil_mode's extra end rows are ``max(0, (out-1)*s + span - (size + p0 + p1))``; floor mode has none."""
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], _dil(attrs)
    n = len(k)
    pairs, padded = [], []
    for i in range(n):
        span = d[i] * (k[i] - 1) + 1
        extra = 0
        if attrs["ceil_mode"]:
            extra = dim_max(0, dim_sub(dim_add(dim_mul(dim_add(out[i], -1), s[i]), span),
                                       dim_add(sizes[i], p[i] + p[n + i])))
        pairs.append((p[i], dim_add(p[n + i], extra)))
        padded.append(dim_add(sizes[i], p[i], p[n + i], extra))
    idx = None
    for i in range(n):
        pos = _window_positions(out[i], k[i], s[i], d[i])                               # (out_i, k_i)
        row = dim_product(padded[i + 1:]) if i + 1 < n else 1
        if row != 1:
            pos = pos * _creation.dim_value(row)
        view = [1] * (2 * n)
        view[i], view[n + i] = out[i], k[i]
        pos = _shape_ops.reshape(pos, view)
        idx = pos if idx is None else idx + pos
    full = list(out) + list(k)
    return _shape_ops.broadcast_to(idx, full), padded, pairs


def _pool_patches(x, attrs, fill, out=None):
    """(N, C, *out, *kernel) patches of x as graph ops, plus what the scatter back needs. Static
    sizes gather by constant indices; symbolic ones (``out`` = the pooled spatial dims) by indices
    computed in the graph."""
    sizes = tuple(x.shape[2:])
    if all(is_static(v) for v in sizes):
        idx, padded, pairs = _pool_indices(sizes, attrs)
        idx_t = _creation.constant(idx)
    else:
        idx_t, padded, pairs = _pool_index_graph(sizes, out, attrs)
    flat_pads = [0, 0, 0, 0] + [p for pair in pairs for p in pair]
    xp = _shape_ops.pad(x, flat_pads, value=fill) if any(p != 0 for p in flat_pads) else x
    flat = _shape_ops.reshape(xp, [x.shape[0], x.shape[1], dim_product(padded)])
    return _shape_ops.gather(flat, idx_t, 2), idx_t, padded, pairs


def _pool_scatter(x, contrib, idx_t, padded, pairs):
    """Sum the per-window contributions (N, C, *out, *kernel) back onto x's positions."""
    n = len(padded)
    base = _shape_ops.broadcast_to(_zero(x), [x.shape[0], x.shape[1], dim_product(padded)])
    gflat = _shape_ops.scatter_add(base, idx_t, contrib, 2)
    g = _shape_ops.reshape(gflat, [x.shape[0], x.shape[1]] + list(padded))
    sizes = list(x.shape[2:])
    if list(padded) != sizes:
        g = _shape_ops.slice(g, [lo for lo, _ in pairs], [dim_add(lo, sizes[i]) for i, (lo, _) in enumerate(pairs)],
                             list(range(2, 2 + n)))
    return g


def _window_count_graph(sizes, out, attrs, dtype):
    """``pool_window_counts`` as graph ops (symbolic sizes): per axis, how many of each window's
    positions ``arange(out) * s + arange(k) * d`` fall inside ``[0, size + p0 + p1)``
    (count_include_pad) or ``[p0, p0 + size)``; their outer product, shaped (*out)."""
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], _dil(attrs)
    n = len(k)
    if not attrs["ceil_mode"] and (attrs.get("count_include_pad", True) or not any(p)):
        # floor mode: every window lies inside the padded input, so each counts its whole kernel
        return _creation.constant(np.array(float(np.prod(k))), dtype)
    div = None
    for i in range(n):
        pos = _window_positions(out[i], k[i], s[i], d[i])                               # (out_i, k_i)
        if attrs.get("count_include_pad", True):
            lo, hi = 0, dim_add(sizes[i], p[i] + p[n + i])
        else:
            lo, hi = p[i], dim_add(sizes[i], p[i])
        inside = _elementwise.logical_and(_elementwise.greater_equal(pos, _creation.dim_value(lo)),
                                          _elementwise.less(pos, _creation.dim_value(hi)))
        c = _reduction.sum(_elementwise.cast(inside, dtype), [1])                       # (out_i,)
        view = [1] * n
        view[i] = out[i]
        c = _shape_ops.reshape(c, view)
        div = c if div is None else div * c
    return div


def _max_pool_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    return [apply("max_pool2d_grad", inputs[0], g, **attrs)]


def _max_pool_grad_rule(ts, attrs):
    x, g = ts
    (y,) = _pool_rule("max_pool2d_grad")([x], attrs)
    if g.dtype != x.dtype or tuple(g.shape) != tuple(y.shape):
        raise ShapeError(f"max_pool2d_grad: the cotangent must have the pooled type {_fmt(y)} of the input "
                         f"{_fmt(x)}, got {_fmt(g)}", hint="pass max_pool2d(x)'s cotangent with the same attrs")
    return [x]


def _first_max_positions(x, attrs):
    """Per window (N, C, *out): the flat index into the padded image of its first maximum (row-major
    window order, padding never preferred over an equal earlier element), plus the padding geometry."""
    idx, padded, pairs = _pool_indices(x.shape[2:], attrs)
    win = _pool_windows(x, attrs, -np.inf)
    n = len(attrs["kernel"])
    out = win.shape[2:2 + n]
    arg = win.reshape(win.shape[:2 + n] + (-1,)).argmax(axis=-1)            # (N, C, *out)
    flat_idx = idx.reshape(out + (-1,))                                       # (*out, K)
    pos = np.take_along_axis(np.broadcast_to(flat_idx, arg.shape + flat_idx.shape[-1:]), arg[..., None], -1)[..., 0]
    return pos, padded, pairs


def _max_pool_grad_ref(xs, attrs, env=None):
    x, g = xs
    cd = compute_dtype(x)
    pos, padded, pairs = _first_max_positions(x.astype(cd), attrs)
    n, c = x.shape[:2]
    out = np.zeros((n * c, int(np.prod(padded))), cd)
    rows = np.arange(n * c)[:, None]
    np.add.at(out, (rows, pos.reshape(n * c, -1)), g.astype(cd).reshape(n * c, -1))
    out = out.reshape([n, c] + list(padded))
    out = out[(slice(None), slice(None)) + tuple(slice(lo, lo + x.shape[2 + i]) for i, (lo, _) in enumerate(pairs))]
    return [np.ascontiguousarray(out).astype(x.dtype)]


def _max_pool_grad_vjp(inputs, outputs, cots, attrs):
    """Linear in the cotangent ``g``: d/dg picks each window's first-max element of the incoming
    cotangent (a one-hot over the window); piecewise constant in ``x`` (no cotangent)."""
    c = cots[0]
    if c is None:
        return [None, None]
    x = inputs[0]
    n = len(attrs["kernel"])
    k = int(np.prod(attrs["kernel"]))
    out = list(inputs[1].shape[2:])   # the pooled sizes (dims at symbolic input sizes)
    xp, _, _, _ = _pool_patches(x, attrs, -math.inf, out)
    cp, _, _, _ = _pool_patches(c, attrs, 0.0, out)
    shape = [x.shape[0], x.shape[1]] + list(xp.shape[2:2 + n]) + [k]
    pick = _creation.one_hot(_reduction.argmax(_shape_ops.reshape(xp, shape), -1), k, x.dtype)
    return [None, _reduction.sum(pick * _shape_ops.reshape(cp, shape), [2 + n])]


def _avg_pool_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    n = len(attrs["kernel"])
    sizes = tuple(x.shape[2:])
    if all(is_static(v) for v in sizes):
        idx, padded, pairs = _pool_indices(sizes, attrs)
        div = _creation.constant(pool_window_counts(sizes, attrs).astype(_dt.to_numpy_dtype(x.dtype)), x.dtype)
        idx_t = _creation.constant(idx)
    else:  # symbolic sizes: the window indices and the divisor are computed at run time
        out = list(g.shape[2:])
        idx_t, padded, pairs = _pool_index_graph(sizes, out, attrs)
        div = _window_count_graph(sizes, out, attrs, x.dtype)
    scaled = _shape_ops.unsqueeze(g / div, list(range(2 + n, 2 + 2 * n)))
    contrib = _shape_ops.broadcast_to(scaled, list(g.shape) + list(attrs["kernel"]))
    return [_pool_scatter(x, contrib, idx_t, padded, pairs)]


def _pool_flops(ins, outs, attrs):
    return numel(outs[0]) * int(np.prod(attrs["kernel"]))


_POOL_ATTRS = {"kernel": Attr("ints"), "strides": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
               "ceil_mode": Attr("bool", False), "dilations": Attr("ints", [1, 1])}

register_op(OpDef(
    name="max_pool2d", family="nn", num_inputs=(1, 1), attrs=dict(_POOL_ATTRS), type_rule=_pool_rule("max_pool2d"),
    reference=_max_pool_ref, flops=_pool_flops, vjp=_max_pool_vjp,
    doc="Max over kh x kw windows (NCHW); padding never wins; ceil_mode as in PyTorch.",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32)], attrs={"kernel": [2, 2], "strides": [2, 2]}, domain=["distinct"]),
        Sample([TensorType(("batch", 2, 5, 6), F32)], attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0]},
               bind={"batch": 2}, domain=["distinct"], note="symbolic batch, padding"),
        Sample([TensorType((1, 2, 5, 5), F64)], attrs={"kernel": [2, 2], "strides": [2, 2], "ceil_mode": True},
               domain=["distinct"], note="ceil_mode"),
        Sample([TensorType((1, 1, 4, 5), F64)], attrs={"kernel": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1],
                                                     "ceil_mode": True}, domain=["distinct"]),
        Sample([TensorType(("batch", 2, "h", "w"), F32)], attrs={"kernel": [2, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
               bind={"batch": 2, "h": 5, "w": 6}, domain=["distinct"],
               note="symbolic H, W (floor mode): floor((h+2)/2) and floor((w+1)/2)"),
        Sample([TensorType(("batch", 2, 9), F32)], attrs={"kernel": [3], "strides": [2], "pads": [1, 1],
                                                        "dilations": [2], "ceil_mode": True},
               bind={"batch": 2}, domain=["distinct"], note="1-D, dilation, ceil_mode, symbolic batch"),
        Sample([TensorType((1, 2, 4, 5, 5), F64)], attrs={"kernel": [2, 3, 2], "strides": [2, 1, 2],
                                                         "pads": [1, 0, 1, 0, 1, 1], "dilations": [1, 2, 1]},
               domain=["distinct"], note="3-D, dilation, padding"),
        Sample([TensorType((1, 1, 6, 6), F64)], attrs={"kernel": [2, 2], "strides": [1, 1], "dilations": [2, 2]},
               domain=["distinct"], note="2-D dilation"),
        Sample([TensorType((2, 1, 5, 5), "uint8")], attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [2, 2, 2, 2],
                                                        "dilations": [1, 1]},
               domain=["int:0:255"], grad=False, note="integers; pads wider than half the kernel"),
        Sample([TensorType(("batch", 2, "h", "w"), F32)], attrs={"kernel": [3, 2], "strides": [2, 2],
                                                               "pads": [1, 0, 1, 1], "ceil_mode": True},
               bind={"batch": 2, "h": 6, "w": 5}, domain=["distinct"],
               note="symbolic H, W, ceil_mode: min(floor((h+1)/2)+1, floor((h+2)/2))"),
        Sample([TensorType((1, 2, "h", "w"), F64)], attrs={"kernel": [2, 2], "strides": [2, 1], "ceil_mode": True,
                                                         "dilations": [2, 1]},
               bind={"h": 7, "w": 4}, domain=["distinct"], note="symbolic H, W, ceil_mode, dilation"),
        Sample([TensorType((1, 1, "h", 5), "int32")], attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                                           "ceil_mode": True},
               bind={"h": 6}, domain=["int:-50:50"], grad=False, note="integers, symbolic H, ceil_mode"),
    ],
))
register_op(OpDef(
    name="max_pool2d_grad", family="nn", num_inputs=(2, 2), attrs=dict(_POOL_ATTRS), type_rule=_max_pool_grad_rule,
    reference=_max_pool_grad_ref, flops=lambda i, o, a: numel(i[1]) * int(np.prod(a["kernel"])),
    vjp=_max_pool_grad_vjp, nondiff_inputs=(0,),
    doc="max_pool2d's VJP: max_pool2d_grad(x, g) adds each window's cotangent g onto the first maximum "
        "of x in that window (row-major window order; a tie goes to the earlier element, as in XLA's "
        "select-and-scatter and PyTorch). Same attrs as max_pool2d.",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32), TensorType((2, 3, 2, 2), F32)],
               attrs={"kernel": [2, 2], "strides": [2, 2]}, domain=["distinct", "any"]),
        Sample([TensorType(("batch", 2, 5, 6), F32), TensorType(("batch", 2, 3, 3), F32)],
               attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0]},
               bind={"batch": 2}, domain=["distinct", "any"], note="symbolic batch, padding"),
        Sample([TensorType((1, 1, 4, 5), F64), TensorType((1, 1, 4, 3), F64)],
               attrs={"kernel": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1], "ceil_mode": True},
               domain=["distinct", "any"], note="overlapping windows, ceil_mode"),
        Sample([TensorType((1, 2, 4, 4), F64), TensorType((1, 2, 2, 2), F64)],
               attrs={"kernel": [2, 2], "strides": [2, 2]},
               domain=[np.array([[[[1., 1, 0, 2], [1, 1, 2, 0], [3, 0, 5, 5], [0, 3, 5, 5]]] * 2]), "any"],
               note="ties: the first maximum of each window takes the cotangent"),
        Sample([TensorType((2, 2, 9), F32), TensorType((2, 2, 4), F32)],
               attrs={"kernel": [3], "strides": [2], "pads": [1, 1], "dilations": [2]},
               domain=["distinct", "any"], note="1-D with dilation"),
        Sample([TensorType((1, 2, 3, 4, 4), F64), TensorType((1, 2, 2, 2, 2), F64)],
               attrs={"kernel": [2, 2, 2], "strides": [2, 2, 2], "pads": [1, 0, 0, 0, 0, 0],
                      "dilations": [1, 1, 1]}, domain=["distinct", "any"], note="3-D"),
        Sample([TensorType(("batch", 2, "h", "w"), F64), TensorType(("batch", 2, "floor(h/2)+1", "min(floor((w+1)/2),floor(w/2)+1)"), F64)],
               attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": True},
               bind={"batch": 2, "h": 6, "w": 5}, domain=["distinct", "any"],
               note="symbolic H, W, overlapping windows, ceil_mode (max_pool2d's gradient at run-time sizes)"),
    ],
))
register_op(OpDef(
    name="avg_pool2d", family="nn", num_inputs=(1, 1), attrs=dict(_POOL_ATTRS, count_include_pad=Attr("bool", True)),
    type_rule=_pool_rule("avg_pool2d"), reference=_avg_pool_ref, flops=_pool_flops, vjp=_avg_pool_vjp,
    doc="Mean over kh x kw windows (NCHW). The divisor is the window clipped to the padded input "
        "(count_include_pad=True) or to the input (False); ceil_mode overhang never counts (PyTorch).",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32)], attrs={"kernel": [2, 2], "strides": [2, 2]}),
        Sample([TensorType(("batch", 2, 5, 6), F32)], attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0],
                                                           "count_include_pad": False},
               bind={"batch": 2}, note="symbolic batch, padding excluded"),
        Sample([TensorType((1, 2, 5, 5), F64)], attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                                     "ceil_mode": True}, note="ceil_mode, padding included"),
        Sample([TensorType(("batch", 2, 8), F32)], attrs={"kernel": [3], "strides": [2], "pads": [1, 1],
                                                        "dilations": [1], "count_include_pad": False},
               bind={"batch": 2}, note="1-D, symbolic batch, padding excluded"),
        Sample([TensorType((1, 2, 5, 4, 5), F64)], attrs={"kernel": [3, 2, 2], "strides": [2, 2, 1],
                                                         "pads": [1, 0, 1, 1, 0, 0], "dilations": [1, 1, 2],
                                                         "ceil_mode": True},
               note="3-D, dilation, ceil_mode, padding included"),
        Sample([TensorType((1, 1, 7, 7), F32)], attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                                     "dilations": [2, 2], "count_include_pad": False},
               note="2-D dilation, padding excluded"),
        Sample([TensorType((1, 2, 6, 6), F64)], attrs={"kernel": [3, 3], "strides": [1, 1], "pads": [2, 2, 2, 2],
                                                     "dilations": [1, 1], "count_include_pad": False},
               note="pads wider than half the kernel, padding excluded"),
        Sample([TensorType(("batch", 2, "h", "w"), F32)], attrs={"kernel": [3, 3], "strides": [2, 2],
                                                               "pads": [1, 1, 1, 1], "count_include_pad": False},
               bind={"batch": 2, "h": 7, "w": 6},
               note="symbolic H, W, padding excluded: floor((h+1)/2) and a divisor computed at run time"),
        Sample([TensorType((1, 2, "h", "w"), F64)], attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1],
                                                         "ceil_mode": True},
               bind={"h": 6, "w": 5}, note="symbolic H, W, ceil_mode, padding included"),
        Sample([TensorType((1, 1, "h", 8), F32)], attrs={"kernel": [2, 2], "strides": [1, 2], "dilations": [2, 1],
                                                       "ceil_mode": True, "count_include_pad": False},
               bind={"h": 6}, note="symbolic H, dilation, ceil_mode"),
    ],
))


def _gap_rule(ts, attrs):
    x = ts[0]
    require_float(x, "global_avg_pool2d's input")
    _require_nchw(x, "global_avg_pool2d")
    return [TensorType((x.shape[0], x.shape[1], 1, 1), x.dtype)]


def _gap_ref(xs, attrs, env=None):
    x = xs[0]
    return [x.astype(compute_dtype(x)).mean(axis=(2, 3), keepdims=True).astype(x.dtype)]


def _gap_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    return [_shape_ops.broadcast_to(g / _shape_ops.dim_size(x, [2, 3], x.dtype), x.shape)]


def _gap_decompose(inputs, attrs):
    return [_reduction.mean(inputs[0], [2, 3], keepdims=True)]


register_op(OpDef(
    name="global_avg_pool2d", family="nn", num_inputs=(1, 1), type_rule=_gap_rule, reference=_gap_ref,
    flops=lambda i, o, a: numel(i[0]), vjp=_gap_vjp, decompose=_gap_decompose,
    doc="Mean over H and W: (N, C, H, W) -> (N, C, 1, 1).",
    samples=[Sample([TensorType((2, 3, 4, 5), F32)]),
             Sample([TensorType(("batch", 3, 2, 2), F32)], bind={"batch": 2}),
             Sample([TensorType(("batch", 2, "h", "w"), F64)], bind={"batch": 1, "h": 3, "w": 2},
                    note="symbolic spatial dims")],
))


# ---- max_pool2d_indices: ONNX MaxPool's Indices output ------------------------------------------

def _unpadded_table(sizes, attrs):
    """(*out, K): for every window element, its flat index into the unpadded image (row-major, or
    column-major over the spatial axes with ``column_major``); -1 where it lies in the padding."""
    idx, padded, pairs = _pool_indices(tuple(sizes), attrs)
    coords = np.unravel_index(idx, padded)
    real = [c - lo for c, (lo, _) in zip(coords, pairs)]
    inside = np.logical_and.reduce([(r >= 0) & (r < n) for r, n in zip(real, sizes)])
    clipped = [np.clip(r, 0, n - 1) for r, n in zip(real, sizes)]
    order = "F" if attrs["column_major"] else "C"
    flat = np.ravel_multi_index(clipped, tuple(sizes), order=order)
    n = len(sizes)
    out = idx.shape[:n]
    return np.where(inside, flat, -1).reshape(out + (-1,)).astype(np.int64)


def _indices_rule(ts, attrs):
    x = ts[0]
    pool_attrs = {k: v for k, v in attrs.items() if k != "column_major"}
    (y,) = _pool_rule("max_pool2d")([x], pool_attrs)
    return [TensorType(y.shape, "int64")]


def _indices_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    win = _pool_windows(x.astype(cd), attrs, _lowest(np.dtype(cd)))
    n = len(attrs["kernel"])
    arg = win.reshape(win.shape[:2 + n] + (-1,)).argmax(axis=-1)           # first maximum per window
    table = _unpadded_table(x.shape[2:], attrs)
    pos = np.take_along_axis(np.broadcast_to(table, arg.shape + table.shape[-1:]), arg[..., None], -1)[..., 0]
    nc = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * n) * int(np.prod(x.shape[2:]))
    return [(pos + nc).astype(np.int64)]


def _unpadded_table_graph(sizes, out, attrs):
    """``_unpadded_table`` for symbolic sizes, as graph ops: per axis the window positions less the
    begin pad, inside ``[0, size)`` or not; their flat index (row- or column-major) where every axis
    is inside, else -1; shaped (*out, K)."""
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], _dil(attrs)
    n = len(k)
    order = range(n - 1, -1, -1) if not attrs["column_major"] else range(n)
    stride, strides = 1, [1] * n
    for i in order:
        strides[i], stride = stride, dim_mul(stride, sizes[i])
    flat = inside = None
    zero = _creation.constant(np.array(0), "int64")
    for i in range(n):
        real = _window_positions(out[i], k[i], s[i], d[i]) - p[i]                      # (out_i, k_i)
        ok = _elementwise.logical_and(_elementwise.greater_equal(real, zero),
                                      _elementwise.less(real, _creation.dim_value(sizes[i])))
        term = real * _creation.dim_value(strides[i]) if strides[i] != 1 else real
        view = [1] * (2 * n)
        view[i], view[n + i] = out[i], k[i]
        term, ok = _shape_ops.reshape(term, view), _shape_ops.reshape(ok, view)
        flat = term if flat is None else flat + term
        inside = ok if inside is None else _elementwise.logical_and(inside, ok)
    table = _elementwise.where(inside, flat, _creation.constant(np.array(-1), "int64"))
    return _shape_ops.reshape(_shape_ops.broadcast_to(table, list(out) + list(k)), list(out) + [int(np.prod(k))])


def _indices_decompose(inputs, attrs):
    """Windows gathered by flat indices, the first maximum's position looked up in the unpadded-index
    table (a one-hot dot), plus each (n, c) image's offset. Static sizes use constant indices and
    table; symbolic ones compute them in the graph."""
    x = inputs[0]
    n = len(attrs["kernel"])
    low = -math.inf if _dt.is_float(x.dtype) else int(np.iinfo(_dt.to_numpy_dtype(x.dtype)).min)
    sizes = tuple(x.shape[2:])
    if all(is_static(v) for v in sizes):
        patches, _, _, _ = _pool_patches(x, attrs, low)                        # (N, C, *out, *kernel)
        table = _creation.constant(_unpadded_table(sizes, attrs))               # (*out, K)
    else:
        pool_attrs = {key: v for key, v in attrs.items() if key != "column_major"}
        with collect_requirements():  # (the node's own type rule records these guards)
            (y,) = _pool_rule("max_pool2d")([TensorType(tuple(x.shape), x.dtype)], pool_attrs)
        patches, _, _, _ = _pool_patches(x, attrs, low, list(y.shape[2:]))
        table = _unpadded_table_graph(sizes, list(y.shape[2:]), attrs)
    out = list(table.shape[:n])
    k = int(np.prod(attrs["kernel"]))
    flat = _shape_ops.reshape(patches, [x.shape[0], x.shape[1]] + out + [k])
    pick = _creation.one_hot(_reduction.argmax(flat, -1), k, "int64")
    pos = _reduction.sum(pick * table, [2 + n])
    image = dim_product(list(sizes))
    nc = _creation.arange(0, dim_product([x.shape[0], x.shape[1]])) * _creation.dim_value(image)
    return [pos + _shape_ops.reshape(nc, [x.shape[0], x.shape[1]] + [1] * n)]


register_op(OpDef(
    name="max_pool2d_indices", family="nn", num_inputs=(1, 1),
    attrs=dict(_POOL_ATTRS, column_major=Attr("bool", False)), type_rule=_indices_rule, reference=_indices_ref,
    flops=_pool_flops, vjp=NOT_DIFFERENTIABLE, decompose=_indices_decompose,
    doc="ONNX MaxPool's Indices: per window of max_pool2d (same attrs), the flat int64 index into the whole "
        "input (N, C, *spatial) of its first maximum; column_major orders the spatial axes column-major "
        "(ONNX storage_order=1). Spatial dims may be symbolic.",
    samples=[
        Sample([TensorType(("batch", 2, 5, 5), F32)], attrs={"kernel": [3, 3], "strides": [2, 2],
                                                           "pads": [1, 1, 1, 1], "dilations": [1, 1]},
               bind={"batch": 2}, domain=["distinct"], note="symbolic batch, padding"),
        Sample([TensorType((1, 2, 5, 4), F64)], attrs={"kernel": [2, 2], "strides": [2, 2], "ceil_mode": True,
                                                     "dilations": [1, 1], "column_major": True},
               domain=["distinct"], note="ceil_mode, column-major"),
        Sample([TensorType((2, 1, 7), F32)], attrs={"kernel": [3], "strides": [2], "pads": [1, 1],
                                                  "dilations": [2]}, domain=["distinct"], note="1-D, dilation"),
        Sample([TensorType(("batch", 2, "h", "w"), F32)], attrs={"kernel": [3, 2], "strides": [2, 2],
                                                               "pads": [1, 0, 1, 1], "ceil_mode": True,
                                                               "dilations": [1, 1]},
               bind={"batch": 2, "h": 6, "w": 5}, domain=["distinct"],
               note="symbolic H, W, ceil_mode: indices computed at run time"),
        Sample([TensorType((1, 2, "h", "w"), "int32")], attrs={"kernel": [2, 2], "strides": [1, 2], "pads": [1, 0, 0, 1],
                                                             "dilations": [1, 1], "column_major": True},
               bind={"h": 4, "w": 5}, domain=["distinct"], note="integers, symbolic H, W, column-major"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def _pool_args(kernel_size, stride, padding, n=2, dilation=1):
    kernel = _tuple_of(kernel_size, "kernel_size", n)
    strides = kernel if stride is None else _tuple_of(stride, "stride", n)
    return kernel, strides, resolve_padding(padding, kernel), _tuple_of(dilation, "dilation", n)


def _spatial_of(x, n):
    # max_pool2d/avg_pool2d stay 2-D (a rank-3 input is an error, not a silent 1-D pool);
    # max_pool1d/3d and the importer name the spatial rank
    return 2 if n is None else n


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1, *, _n=None):
    """2-D max pooling (NCHW; max_pool1d/max_pool3d for the other ranks); ``stride`` defaults to the
    kernel size.

    Args:
        x: an (N, C, *spatial) Tensor.
        kernel_size: an int or one per spatial axis.
        stride: an int or one per spatial axis.
        padding: an int or one per spatial axis.
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or one per spatial axis.
    """
    kernel, strides, pads, dil = _pool_args(kernel_size, stride, padding, _spatial_of(x, _n), dilation)
    return apply("max_pool2d", x, kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil_mode, dilations=dil)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               *, _n=None):
    """2-D average pooling (NCHW; avg_pool1d/avg_pool3d for the other ranks); ``stride`` defaults to the
    kernel size.

    Args:
        x: an (N, C, H, W) Tensor.
        kernel_size: an int or ``(kh, kw)``.
        stride: an int or ``(sh, sw)``; None: the kernel size.
        padding: an int, ``(ph, pw)`` or 4 values (top, left, bottom, right).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).
    """
    kernel, strides, pads, dil = _pool_args(kernel_size, stride, padding, _spatial_of(x, _n))
    return apply("avg_pool2d", x, kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad, dilations=dil)


def max_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1):
    """1-D max pooling over (N, C, W) input (the ``max_pool2d`` op over one axis);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, W) Tensor.
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: the kernel size.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or a 1-tuple.

    Returns:
        The pooled (N, C, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride``, ``padding`` or ``dilation`` with the wrong number of values.
    """
    return max_pool2d(x, kernel_size, stride, padding, ceil_mode, dilation, _n=1)


def max_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1):
    """3-D max pooling over (N, C, D, H, W) input (the ``max_pool2d`` op over three axes);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, D, H, W) Tensor.
        kernel_size: the window size, an int or ``(d, h, w)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: the kernel size.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or ``(d, h, w)``.

    Returns:
        The pooled (N, C, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride``, ``padding`` or ``dilation`` with the wrong number of values.
    """
    return max_pool2d(x, kernel_size, stride, padding, ceil_mode, dilation, _n=3)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """1-D average pooling over (N, C, W) input (the ``avg_pool2d`` op over one axis);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, W) Tensor.
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: the kernel size.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).

    Returns:
        The pooled (N, C, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride`` or ``padding`` with the wrong number of values.
    """
    return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, _n=1)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """3-D average pooling over (N, C, D, H, W) input (the ``avg_pool2d`` op over three axes);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, D, H, W) Tensor.
        kernel_size: the window size, an int or ``(d, h, w)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: the kernel size.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).

    Returns:
        The pooled (N, C, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride`` or ``padding`` with the wrong number of values.
    """
    return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, _n=3)


def global_avg_pool2d(x):
    """Mean over H and W, keeping them as size 1: (N, C, H, W) -> (N, C, 1, 1).

    Args:
        x: an NCHW Tensor.
    """
    return apply("global_avg_pool2d", x)
