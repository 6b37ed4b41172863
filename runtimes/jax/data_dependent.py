"""JAX lowerings of the ops with data-dependent result lengths (``graphforge/ops/data_dependent.py``:
nonzero, compress, unique, non_max_suppression)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .lower import lowers

__all__: list[str] = []

# These run eagerly (``run`` executes a graph holding them op by op, outside jax.jit): their result
# sizes come from the values. Under jax.jit ``lower`` refuses them unless the caller's binding holds
# the length (``ctx.shape`` known): then they pass it as ``size=`` and trace like any other op.


def _size(ctx, i, axis):
    shape = ctx.out_shapes[i]
    return None if shape is None else shape[axis]

@lowers("nonzero")
def _nonzero(ctx, args, attrs):
    x = args[0]
    return [jnp.stack(jnp.nonzero(x, size=_size(ctx, 0, 1))).reshape(x.ndim, -1).astype(jnp.int64)]


@lowers("compress")
def _compress(ctx, args, attrs):
    x, cond = args
    axis = attrs["axis"]
    keep = jnp.nonzero(cond, size=_size(ctx, 0, 0 if axis is None else axis % x.ndim))[0]
    if axis is None:
        return [jnp.take(x.reshape(-1), keep)]
    return [jnp.take(x, keep, axis=axis)]


@lowers("unique")
def _unique(ctx, args, attrs):
    x = args[0]
    axis = attrs["axis"]
    y, first, inverse, counts = jnp.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis,
                                           size=_size(ctx, 1, 0))
    inverse = inverse.reshape(-1)
    if not attrs["sorted"]:  # order of first occurrence
        order = jnp.argsort(first, stable=True)
        y = jnp.take(y, order, axis=0 if axis is None else axis)
        first, counts = first[order], counts[order]
        inverse = jnp.argsort(order)[inverse]
    return [y, first.astype(jnp.int64), inverse.astype(jnp.int64), counts.astype(jnp.int64)]


@lowers("non_max_suppression")
def _nms(ctx, args, attrs):
    # eager only (the number of picks is data-dependent): the IoU matrix and the score order are jnp
    # arrays; the greedy pick walks them with concrete values
    boxes, scores, max_out, iou, thr = args
    k = max(int(max_out.reshape(-1)[0]), 0)
    iou_t, score_t = iou.reshape(-1)[0], thr.reshape(-1)[0]
    picked = []
    for b in range(boxes.shape[0]):
        bx = boxes[b]
        if attrs["center_point_box"]:
            xc, yc, w, h = bx[:, 0], bx[:, 1], bx[:, 2], bx[:, 3]
            y0, x0, y1, x1 = yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
        else:
            y0, x0 = jnp.minimum(bx[:, 0], bx[:, 2]), jnp.minimum(bx[:, 1], bx[:, 3])
            y1, x1 = jnp.maximum(bx[:, 0], bx[:, 2]), jnp.maximum(bx[:, 1], bx[:, 3])
        iy = jnp.minimum(y1[:, None], y1[None]) - jnp.maximum(y0[:, None], y0[None])
        ix = jnp.minimum(x1[:, None], x1[None]) - jnp.maximum(x0[:, None], x0[None])
        inter = jnp.where((iy > 0) & (ix > 0), iy * ix, 0.0)
        area = (y1 - y0) * (x1 - x0)
        union = area[:, None] + area[None] - inter
        ok = (inter > 0) & (area[:, None] > 0) & (area[None] > 0) & (union > 0)
        over = np.asarray(ok & (inter / jnp.where(union > 0, union, 1) > iou_t))
        for c in range(scores.shape[1]):
            s = scores[b, c]
            order = np.asarray(jnp.lexsort((jnp.arange(s.shape[0]), -s)))
            passes = np.asarray(s > score_t) if attrs["use_score_threshold"] else np.ones(s.shape[0], bool)
            kept = []
            for i in order:
                if len(kept) >= k:
                    break
                if passes[i] and not over[i, kept].any():
                    kept.append(int(i))
                    picked.append((b, c, int(i)))
    return [jnp.asarray(np.array(picked, np.int64).reshape(-1, 3))]
