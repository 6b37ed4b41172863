"""Importers for ONNX ``Resize`` and ``Upsample`` with constant scales/roi and constant or
``Shape``-computed sizes.

Every Resize mode (nearest with its four rounding modes, linear, cubic, antialias, every coordinate
transformation incl. ``tf_crop_and_resize``) is linear in the input and separable, one axis at a time.
For each resized axis the importer asks onnx's own reference implementation for the (n_in, n_out)
weight matrix — by resizing the rows of an identity matrix — and emits, along that axis, a ``gather``
(nearest: one 1 per output) or a ``matmul`` with the matrix (plus the constant that
``tf_crop_and_resize`` puts where the crop leaves the image). So graphforge follows onnx's definition
exactly, with no interpolation code of its own. Symbolic (run-time) input dims: integer repeats are
broadcasts; other nearest/linear resizes compute their source rows in the graph
(``graphforge/ops/interpolate.py``, onnxruntime's coordinate arithmetic)."""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper, TensorProto

from graphforge.dtypes import is_float
from graphforge.ir.dims import dim_divide, dim_product
from graphforge.ops.interpolate import COORDINATE_MODES, resize_axis, scaled_size
from graphforge.trace.tensor import Tensor

from .importer import attrs_of, ImportContext, importer, unsupported
from .shape_values import as_dims

__all__: list[str] = []

_PASS_ATTRS = ("mode", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside", "nearest_mode",
               "antialias")



def _axis_weights(attrs: dict, n: int, *, scale=None, size=None, roi=None, extrapolation: float = 0.0):
    """(W (n, m), b (m,)) with resize_along_axis(x) = x @ W + b, from onnx's reference Resize."""
    from onnx.reference import ReferenceEvaluator

    kw = {k: attrs[k] for k in _PASS_ATTRS if k in attrs}
    names, inits = ["X", "", "", ""], []
    if roi is not None:
        names[1] = "roi"
        inits.append(numpy_helper.from_array(np.asarray(roi, np.float32), "roi"))
    if size is not None:
        names[3] = "sizes"
        inits.append(numpy_helper.from_array(np.array([size], np.int64), "sizes"))
    else:
        names[2] = "scales"
        inits.append(numpy_helper.from_array(np.array([scale], np.float32), "scales"))
    while names[-1] == "":
        names.pop()

    def run(x, extrap):
        node = helper.make_node("Resize", names, ["Y"], axes=[1], extrapolation_value=float(extrap), **kw)
        g = helper.make_graph([node], "basis", [helper.make_tensor_value_info("X", TensorProto.DOUBLE, list(x.shape))],
                              [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
        return np.asarray(ReferenceEvaluator(m).run(None, {"X": x})[0])

    w = run(np.eye(n, dtype=np.float64), 0.0)
    b = run(np.zeros((1, n), np.float64), extrapolation)[0] if extrapolation else np.zeros(w.shape[1])
    return w, b


def _resize_plan(ctx: ImportContext, node, shape):
    """Per resized axis: (axis, scale or None, size or None, roi pair or None), for a Resize node."""
    a = attrs_of(node)
    rank = len(shape)
    axes = [int(d) % rank for d in a.get("axes", range(rank))]
    if ctx.opset < 11:
        scales, sizes, roi = ctx.need_const(node, 1, "scales").reshape(-1), None, None
    else:
        roi = ctx.need_const(node, 1, "roi").reshape(-1) if ctx.has(node, 1) else None
        scales = ctx.need_const(node, 2, "scales").reshape(-1) if ctx.has(node, 2) else None
        sizes = ctx.need_const(node, 3, "sizes").reshape(-1) if ctx.has(node, 3) else None
        if scales is not None and scales.size == 0:
            scales = None
        if roi is not None and roi.size == 0:
            roi = None
    if scales is None and sizes is None:
        unsupported(node, "neither scales nor sizes is given")
    k = len(axes)
    if len(scales if scales is not None else sizes) == rank and k != rank:
        unsupported(node, "axes and full-rank scales/sizes disagree")
    if roi is not None and a.get("coordinate_transformation_mode") != "tf_crop_and_resize":
        roi = None  # only tf_crop_and_resize reads roi
    policy = a.get("keep_aspect_ratio_policy", "stretch")
    plan = []
    if sizes is not None and policy != "stretch":
        ratios = [float(sizes[i]) / shape[d] for i, d in enumerate(axes)]
        s = min(ratios) if policy == "not_larger" else max(ratios)
        for d in axes:
            plan.append((d, s, int(s * shape[d] + 0.5)))
    elif sizes is not None:
        plan = [(d, None, int(sizes[i])) for i, d in enumerate(axes)]
    else:
        plan = [(d, float(scales[i]), int(np.floor(float(scales[i]) * shape[d]))) for i, d in enumerate(axes)]
    out = []
    for i, (d, s, m) in enumerate(plan):
        r = (float(roi[i]), float(roi[k + i])) if roi is not None else None
        out.append((d, s, m, r))
    return out


def _apply(ctx, node, x, attrs, plan):
    e = ctx.emit
    rank = len(x.type.shape)
    dt = x.type.dtype
    extrap = float(attrs.get("extrapolation_value", 0.0)) if attrs.get("coordinate_transformation_mode") == \
        "tf_crop_and_resize" else 0.0
    y = x
    for d, s, m, r in plan:
        n = x.type.shape[d]
        ctx.require((3, n, max(n, m or 0)), 8, f"the axis-{d} resize weights")
        if m == n and r is None and (s is None or s == 1.0) and not int(attrs.get("antialias", 0)):
            w, b = np.eye(n), np.zeros(n)
        else:
            w, b = _axis_weights(attrs, n, scale=s, size=m if s is None else None, roi=r, extrapolation=extrap)
            if w.shape[1] != m:
                unsupported(node, f"axis {d}: onnx's reference gives {w.shape[1]} outputs, expected {m}")
        if w.shape == (n, n) and np.array_equal(w, np.eye(n)) and not np.any(b):
            continue
        onehot = np.all((w == 0) | (w == 1)) and np.all(w.sum(axis=0) == 1) and not np.any(b)
        if onehot:  # nearest: pick rows (exact for every dtype)
            idx = np.argmax(w, axis=0).astype(np.int64)
            y = e("gather", [y, ctx.materialize(idx, "resize_index")], axis=d)
            continue
        if not is_float(dt):
            unsupported(node, f"{attrs.get('mode', 'nearest')} interpolation of a {dt} tensor")
        perm = [i for i in range(rank) if i != d] + [d]
        t = e("transpose", [y], perm=perm) if d != rank - 1 else y
        npdt = np.float32 if dt in ("float16", "bfloat16") else np.dtype(dt)
        t = e("matmul", [t, ctx.cast(ctx.materialize(w.astype(npdt), "resize_weights"), dt)])
        if np.any(b):
            t = e("add", [t, ctx.cast(ctx.materialize(b.astype(npdt), "resize_fill"), dt)])
        y = e("transpose", [t], perm=[int(p) for p in np.argsort(perm)]) if d != rank - 1 else t
    return y


@importer("Resize")
def _resize(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    shape = x.type.shape
    a = attrs_of(node)
    if ctx.opset < 11:  # Resize-10: asymmetric coordinates, nearest rounds down... as Upsample
        a = {**a, "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    if not all(isinstance(v, int) for v in shape):
        if ctx.opset >= 11 and ctx.has(node, 3):
            return [_symbolic_repeat(ctx, node, x, a, _sizes_as_scales(ctx, node, shape, a))]
        probe = [d if isinstance(d, int) else 4 for d in shape]  # a stand-in size to read the plan with
        plan = _resize_plan(ctx, node, probe)
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch" or any(r is not None for *_, r in plan):
            unsupported(node, "symbolic input dims with an aspect-ratio policy or a crop")
        # a symbolic axis resized by a scale has floor(n * scale) rows, a dim expression
        plan = [(d, s, m if isinstance(shape[d], int) else scaled_size(shape[d], s), r) for d, s, m, r in plan]
        return [_symbolic_repeat(ctx, node, x, a, plan)]
    return [_apply(ctx, node, x, a, _resize_plan(ctx, node, shape))]


_PROBE_SIZES = (1, 2, 3, 5, 8)


def _sizes_as_scales(ctx: ImportContext, node, shape, attrs):
    """The plan of a Resize of symbolic input dims to ``sizes`` (``F.interpolate(x, size=...)`` with a
    size computed from ``Shape`` at run time): ONNX resizes by ``sizes / input dims``, so a size that is
    the input dim times an int ``k`` is the integer-scale resize ``k`` (then applied as a repeat); any
    other size keeps no scale (the coordinates use ``size / dim`` at run time)."""
    sizes = as_dims(ctx.need_const(node, 3, "sizes", dims=True))
    rank = len(shape)
    axes = [int(d) % rank for d in attrs.get("axes", range(rank))]
    if len(sizes) != len(axes):
        unsupported(node, f"sizes {sizes} do not match the resized axes {axes}")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch" or \
            attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        unsupported(node, "symbolic input dims with an aspect-ratio policy or a crop")
    plan = []
    for d, m in zip(axes, sizes):
        n = shape[d]
        if isinstance(n, int) and isinstance(m, int):
            plan.append((d, None, m, None))
            continue
        k = dim_divide(m, n) if not isinstance(n, int) else None
        if isinstance(k, int) and k >= 1:
            plan.append((d, float(k), m, None))
        else:
            plan.append((d, None, m if isinstance(m, int) else str(m), None))
    return plan


def _symbolic_repeat(ctx: ImportContext, node, x, attrs, plan):
    """A Resize of symbolic dims. Integer scales whose result repeats every element ``s`` times along an
    axis (``nn.Upsample(scale_factor=2)``: nearest with asymmetric/floor or half-pixel rounding) become
    unsqueeze, broadcast and merge, so the output dim is ``s*dim``; which resizes do that is asked of
    onnx's own reference at several sizes (the weight pattern of an integer scale is periodic). Any
    other nearest or linear resize (a fractional scale, a size computed from ``Shape``) computes its
    source rows at run time (``graphforge.ops.interpolate.resize_axis``)."""
    shape = list(x.type.shape)
    rank = len(shape)
    e = ctx.emit
    y = x
    for d, s, m, _ in sorted(plan, key=lambda p: p[0], reverse=True):  # from the last axis: earlier axis numbers stay valid
        if s == 1.0 and isinstance(shape[d], str):
            continue
        if isinstance(shape[d], int) and (s is not None or isinstance(m, int)):
            size = int(np.floor(s * shape[d])) if s is not None else m
            y = _apply(ctx, node, y, attrs, [(d, s, size, None)])
            continue
        k = int(s) if s is not None and isinstance(shape[d], str) else 0   # (a static axis to a run-time size: 0)
        if k != s or k < 1 or not all(_repeats(attrs, n, k) for n in _PROBE_SIZES):
            y = _interpolate_axis(ctx, node, y, attrs, d, s, m)
            continue
        cur = list(y.type.shape)
        y = e("unsqueeze", [y], axes=[d + 1])
        y = e("broadcast_to", [y], shape=cur[:d + 1] + [k] + cur[d + 1:])
        y = e("reshape", [y], shape=cur[:d] + [dim_product([k, cur[d]])] + cur[d + 1:])
    assert len(y.type.shape) == rank
    return y


def _interpolate_axis(ctx: ImportContext, node, y, attrs, d, s, m):
    """Resize axis ``d`` of symbolic length to ``m`` rows (scale ``s``, or None: ``m / n``) with the
    source rows computed in the graph; the modes onnxruntime's semantics are written for there (nearest
    and linear, four coordinate transformations, no antialias); others are refused by name."""
    mode = attrs.get("mode", "nearest")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    rounding = attrs.get("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear") or coord not in COORDINATE_MODES or int(attrs.get("antialias", 0)):
        unsupported(node, f"symbolic dim {y.type.shape[d]!r} resized in mode {mode!r} with coordinate transformation "
                          f"{coord!r}{' and antialias' if int(attrs.get('antialias', 0)) else ''}: symbolic sizes take "
                          f"nearest or linear with one of {', '.join(COORDINATE_MODES)} (no antialias)")
    if mode == "linear" and not is_float(y.type.dtype):
        unsupported(node, f"linear interpolation of a {y.type.dtype} tensor")
    b = ctx.builder
    with b.activate(), b.provenance(ctx.node_name, ""):
        return resize_axis(Tensor(y, b), d, m, s, mode, coord, rounding).value


def _repeats(attrs: dict, n: int, k: int) -> bool:
    """Whether onnx's Resize with ``attrs`` and integer scale ``k`` on an axis of size ``n`` repeats each
    element ``k`` times."""
    w, b = _axis_weights(attrs, n, scale=float(k))
    return w.shape == (n, n * k) and np.array_equal(w, np.repeat(np.eye(n), k, axis=1)) and not np.any(b)


@importer("Upsample")
def _upsample(ctx, node):
    x = ctx.input(node, 0)
    shape = x.type.shape
    a = attrs_of(node)
    scales = np.asarray(a["scales"]) if "scales" in a else ctx.need_const(node, 1, "scales").reshape(-1)
    mode = a.get("mode", "nearest")
    attrs = {"mode": "linear" if mode in ("linear", "bilinear") else "nearest",
             "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    probe = [d if isinstance(d, int) else 4 for d in shape]
    plan = [(d, float(s), int(np.floor(float(s) * probe[d])) if isinstance(shape[d], int) else scaled_size(shape[d], s),
             None) for d, s in enumerate(scales)]
    if not all(isinstance(v, int) for v in shape):
        return [_symbolic_repeat(ctx, node, x, attrs, plan)]
    return [_apply(ctx, node, x, attrs, plan)]
