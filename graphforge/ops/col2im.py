"""``col2im`` (ONNX Col2Im, ``torch.nn.functional.fold``): sum sliding blocks back into an image.

``col2im(x)``: ``x`` ``(N, C * prod(block_shape), L)`` holds, per block position ``l`` (C order over the
``L = prod(blocks per axis)`` positions), the ``C x block`` values of one window; the result is
``(N, C, *image_shape)``, each image element the sum of the window values that cover it (any number of
spatial dims; ``strides``, ``dilations``, ``pads`` = ``[begins..., ends...]`` as in Conv). ``N`` may be
symbolic. A composite: one ``scatter_add`` with a constant index into the padded image, then a slice
that drops the padding — so its VJP (from the decomposition) is the matching gather, i.e. im2col.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir.dims import is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._decomp_vjp import vjp_from_decomposition
from ._shapes import require_float
from .common import compute_dtype
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation
from . import shape_ops as _shape_ops

__all__ = ["col2im"]


def _geometry(attrs):
    image, block = [int(d) for d in attrs["image_shape"]], [int(d) for d in attrs["block_shape"]]
    k = len(image)
    strides = list(attrs["strides"] or [1] * k)
    dil = list(attrs["dilations"] or [1] * k)
    pads = list(attrs["pads"] or [0] * (2 * k))
    if len(block) != k or len(strides) != k or len(dil) != k or len(pads) != 2 * k or k < 1:
        raise ShapeError(f"col2im: image_shape {image}, block_shape {block}, strides {strides}, dilations {dil} "
                         f"and pads {pads} must agree on the number of spatial dims")
    padded = [image[i] + pads[i] + pads[i + k] for i in range(k)]
    counts = [(padded[i] - (dil[i] * (block[i] - 1) + 1)) // strides[i] + 1 for i in range(k)]
    if min(block) < 1 or min(strides) < 1 or min(dil) < 1 or min(counts) < 1:
        raise ShapeError(f"col2im: block_shape {block} (dilations {dil}) does not fit the padded image {padded}")
    return image, block, strides, dil, pads, padded, counts


def _scatter_index(attrs, channels: int) -> np.ndarray:
    """(C * prod(block) * L,) int64: where each input element lands in the flat padded image (C, *padded)."""
    image, block, strides, dil, pads, padded, counts = _geometry(attrs)
    k = len(image)
    kern = np.stack(np.meshgrid(*[np.arange(b) for b in block], indexing="ij"), -1).reshape(-1, k)   # (K, k)
    pos = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, k)  # (L, k)
    coord = kern[:, None, :] * np.array(dil) + pos[None, :, :] * np.array(strides)                   # (K, L, k)
    spatial = np.ravel_multi_index(tuple(coord[..., i] for i in range(k)), padded)                   # (K, L)
    per_channel = math.prod(padded)
    return (np.arange(channels)[:, None, None] * per_channel + spatial[None]).reshape(-1).astype(np.int64)


def _col2im_rule(ts, attrs):
    (x,) = ts
    require_float(x, "col2im's input")
    image, block, _, _, _, _, counts = _geometry(attrs)
    if x.rank != 3 or not is_static(x.shape[1]) or not is_static(x.shape[2]):
        raise ShapeError(f"col2im: the input must be (N, C * prod(block_shape), L) with static C*K and L, got {x}")
    kk = math.prod(block)
    if int(x.shape[1]) % kk or int(x.shape[2]) != math.prod(counts):
        raise ShapeError(f"col2im: input {x} does not hold blocks {block} at {math.prod(counts)} positions {counts}")
    return [TensorType((x.shape[0], int(x.shape[1]) // kk) + tuple(image), x.dtype)]


def _crop(attrs):
    image, _, _, _, pads, _, _ = _geometry(attrs)
    k = len(image)
    return [pads[i] for i in range(k)], [pads[i] + image[i] for i in range(k)], list(range(2, 2 + k))


def _col2im_ref(xs, attrs, env=None):
    (x,) = xs
    image, block, _, _, _, padded, _ = _geometry(attrs)
    c = x.shape[1] // math.prod(block)
    flat = np.zeros((x.shape[0], c * math.prod(padded)), compute_dtype(x))
    np.add.at(flat, (slice(None), _scatter_index(attrs, c)), x.reshape(x.shape[0], -1).astype(flat.dtype))
    out = flat.reshape((x.shape[0], c) + tuple(padded))
    starts, ends, _ = _crop(attrs)
    out = out[(slice(None), slice(None)) + tuple(slice(s, e) for s, e in zip(starts, ends))]
    return [out.astype(x.dtype)]


def _col2im_decompose(inputs, attrs):
    (x,) = inputs
    image, block, _, _, _, padded, _ = _geometry(attrs)
    c = int(x.shape[1]) // math.prod(block)
    n = x.type.shape[0]
    updates = _shape_ops.reshape(x, [n, -1])
    base = _creation.zeros([n, c * math.prod(padded)], x.dtype)
    flat = _shape_ops.scatter_add(base, _scatter_index(attrs, c), updates, axis=1)
    out = _shape_ops.reshape(flat, [n, c] + padded)
    starts, ends, axes = _crop(attrs)
    return [_shape_ops.slice(out, starts, ends, axes) if starts != [0] * len(starts) or ends != padded else out]


register_op(OpDef(
    name="col2im", family="shape", num_inputs=(1, 1),
    attrs={"image_shape": Attr("ints"), "block_shape": Attr("ints"), "strides": Attr("ints", None, optional=True),
           "dilations": Attr("ints", None, optional=True), "pads": Attr("ints", None, optional=True)},
    type_rule=_col2im_rule, reference=_col2im_ref, decompose=_col2im_decompose,
    flops=lambda i, o, a: math.prod(int(d) for d in i[0].shape), vjp=vjp_from_decomposition(_col2im_decompose),
    doc="Sum the sliding blocks (N, C*prod(block_shape), L) back into (N, C, *image_shape) (ONNX Col2Im).",
    samples=[
        Sample([TensorType((1, 4, 9), "float32")], attrs={"image_shape": [4, 4], "block_shape": [2, 2]}),
        Sample([TensorType(("batch", 6, 9), "float64")],
               attrs={"image_shape": [3, 5], "block_shape": [1, 3], "strides": [1, 2], "pads": [0, 1, 0, 1]},
               bind={"batch": 2}, note="symbolic batch, strides, pads, float64"),
        Sample([TensorType((1, 8, 8), "float32")],
               attrs={"image_shape": [3, 3, 4], "block_shape": [2, 2, 2], "dilations": [1, 1, 2]}, note="3-D, dilated"),
    ],
))


def col2im(x, image_shape, block_shape, strides=None, dilations=None, pads=None):
    """Sum sliding blocks back into an image (ONNX Col2Im; ``F.fold`` with explicit block positions).

    Args:
        x: ``(N, C * prod(block_shape), L)``.
        image_shape: the spatial output size.
        block_shape: the block (kernel) size.
        strides: per spatial dim (default 1).
        dilations: per spatial dim (default 1).
        pads: ``[begins..., ends...]`` (default 0).

    Returns:
        ``(N, C, *image_shape)``.
    """
    def ints(v):
        return None if v is None else [int(a) for a in v]

    return apply("col2im", x, image_shape=ints(image_shape), block_shape=ints(block_shape), strides=ints(strides),
                 dilations=ints(dilations), pads=ints(pads))
