"""Region-of-interest pooling: ``roi_align`` (ONNX RoiAlign, torchvision ``roi_align``) and
``max_roi_pool`` (ONNX MaxRoiPool, torchvision ``roi_pool``).

``roi_align(x, rois, batch_indices)``: ``x`` ``(N, C, H, W)`` with static ``H, W``, ``rois`` ``(R, 4)``
boxes ``(x1, y1, x2, y2)`` in input coordinates (times ``spatial_scale``), ``batch_indices`` ``(R,)``;
the result is ``(R, C, output_height, output_width)``. Each bin averages (``mode="avg"``) or takes the
max (``"max"``, onnx's rule: the largest *weighted corner* of each sample point) of
``sampling_ratio x sampling_ratio`` bilinear samples, with onnx's clamping (samples beyond one pixel
outside the map are 0; ``half_pixel`` shifts boxes by -0.5, ``output_half_pixel`` widens them to >= 1).
``sampling_ratio`` must be >= 1: the adaptive 0 makes the number of samples per bin depend on each
box's size, a data-dependent shape (a typed ShapeError says so).

``max_roi_pool(x, rois)``: ``rois`` ``(R, 5)`` = ``(batch, x1, y1, x2, y2)``; Caffe's quantised bins
(box corners rounded half away from zero, bin edges floor/ceil, empty bins 0), max over each bin.

Both are composites like ``grid_sample`` (``vision_grid.py``): the algorithm is written once against
an array namespace — NumPy for the reference, graphforge ops for the decomposition, whose gradient
(``_decomp_vjp``) is the VJP.
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
from .vision_grid import _GraphNS, _NumpyNS
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _ew
from . import math_ops as _math
from . import reduction as _reduction
from . import shape_ops as _shape_ops

__all__ = ["roi_align", "max_roi_pool"]


class _NP(_NumpyNS):
    maximum, minimum, sign, abs = (staticmethod(np.maximum), staticmethod(np.minimum), staticmethod(np.sign),
                                   staticmethod(np.abs))
    ceil, logical_not = staticmethod(np.ceil), staticmethod(np.logical_not)

    @staticmethod
    def col(a, j):
        return a[:, j]

    @staticmethod
    def reshape(a, shape):
        return a.reshape([int(d) for d in shape])

    @staticmethod
    def transpose(a, perm):
        return np.transpose(a, perm)

    @staticmethod
    def expand(a, axes):
        return np.expand_dims(a, tuple(axes))

    @staticmethod
    def reduce(kind, a, axes):
        return (np.mean if kind == "mean" else np.max)(a, axis=tuple(axes))

    @staticmethod
    def gather0(a, idx):
        return a[idx]

    @staticmethod
    def const(arr, like):
        return np.asarray(arr, like.dtype)


class _GF(_GraphNS):
    maximum, minimum, sign, abs = (staticmethod(_ew.maximum), staticmethod(_ew.minimum), staticmethod(_ew.sign),
                                   staticmethod(_ew.abs))
    ceil, logical_not = staticmethod(_math.ceil), staticmethod(_ew.logical_not)

    @staticmethod
    def col(a, j):
        return _shape_ops.squeeze(_shape_ops.slice(a, [j], [j + 1], [1]), [1])

    @staticmethod
    def reshape(a, shape):
        return _shape_ops.reshape(a, list(shape))

    @staticmethod
    def transpose(a, perm):
        return _shape_ops.transpose(a, list(perm))

    @staticmethod
    def expand(a, axes):
        return _shape_ops.unsqueeze(a, list(axes))

    @staticmethod
    def reduce(kind, a, axes):
        return (_reduction.mean if kind == "mean" else _reduction.max)(a, list(axes))

    @staticmethod
    def gather0(a, idx):
        return _shape_ops.gather(a, idx, axis=0)

    @staticmethod
    def const(arr, like):
        return np.asarray(arr, np.float64 if like.dtype == "float64" else np.float32)


# ---- roi_align --------------------------------------------------------------------------------------
def _axis_taps(F, pos, size: int):
    """Bilinear taps along one axis for sample positions ``pos`` (onnx's RoiAlign clamping):
    [(index, weight)] x 2, weights already 0 for samples beyond [-1, size]."""
    valid = F.logical_not(F.logical_or(F.less(pos, -1.0), F.greater(pos, float(size))))
    p = F.maximum(pos, pos * 0.0)
    low = F.floor(p)
    at_end = F.greater(low, size - 1.5)  # low >= size - 1
    last = pos * 0.0 + (size - 1.0)
    low = F.where(at_end, last, low)
    frac = F.where(at_end, pos * 0.0, p - low)
    zero = pos * 0.0
    w_low = F.where(valid, 1.0 - frac, zero)
    w_high = F.where(valid, frac, zero)
    i_low = F.to_index(low)
    i_high = F.to_index(F.where(at_end, last, low + 1.0))
    return [(i_low, w_low), (i_high, w_high)]


def _roi_align(F, x, rois, bidx, attrs, shape):
    n_rois, chans, (height, width) = shape
    oh, ow, sr = int(attrs["output_height"]), int(attrs["output_width"]), int(attrs["sampling_ratio"])
    scale = float(attrs["spatial_scale"])
    half = attrs["coordinate_transformation_mode"] == "half_pixel"
    off = 0.5 if half else 0.0
    x1, y1 = F.col(rois, 0) * scale - off, F.col(rois, 1) * scale - off
    x2, y2 = F.col(rois, 2) * scale - off, F.col(rois, 3) * scale - off
    rw, rh = x2 - x1, y2 - y1
    if not half:
        rw, rh = F.maximum(rw, rw * 0.0 + 1.0), F.maximum(rh, rh * 0.0 + 1.0)
    # sample k of bin b sits at start + (b + (k + 0.5) / sr) * bin_size
    fy = F.const([(b + (k + 0.5) / sr) for b in range(oh) for k in range(sr)], rois)
    fx = F.const([(b + (k + 0.5) / sr) for b in range(ow) for k in range(sr)], rois)
    ys = F.expand(y1, [1]) + F.expand(rh / oh, [1]) * fy  # (R, oh*sr)
    xs = F.expand(x1, [1]) + F.expand(rw / ow, [1]) * fx  # (R, ow*sr)
    ty, tx = _axis_taps(F, ys, height), _axis_taps(F, xs, width)
    rows, _ = F.rows(x)  # (N*H*W, C)
    base = F.expand(F.to_index(bidx) * (height * width), [1, 2])  # (R, 1, 1)
    vals = []
    for iy, wy in ty:
        for ix, wx in tx:
            flat = base + F.expand(iy * width, [2]) + F.expand(ix, [1])  # (R, oh*sr, ow*sr)
            weight = F.expand(wy, [2]) * F.expand(wx, [1])
            vals.append(F.scale(F.take(rows, flat), weight))  # (R, oh*sr, ow*sr, C)
    if attrs["mode"] == "avg":
        v = vals[0] + vals[1] + vals[2] + vals[3]
        kind = "mean"
    else:
        v = F.maximum(F.maximum(vals[0], vals[1]), F.maximum(vals[2], vals[3]))
        kind = "max"
    v = F.reshape(v, [n_rois, oh, sr, ow, sr, chans])
    return F.transpose(F.reduce(kind, v, [2, 4]), [0, 3, 1, 2])


def _roi_align_rule(ts, attrs):
    x, rois, bidx = ts
    require_float(x, "roi_align's input")
    require_float(rois, "roi_align's rois")
    if x.rank != 4 or not all(is_static(d) for d in x.shape[2:]):
        raise ShapeError(f"roi_align: the input must be (N, C, H, W) with static H and W, got {x}")
    if rois.rank != 2 or rois.shape[1] != 4:
        raise ShapeError(f"roi_align: rois must be (R, 4) boxes (x1, y1, x2, y2), got {rois}")
    if bidx.rank != 1 or bidx.dtype not in ("int32", "int64") or bidx.shape[0] != rois.shape[0]:
        raise ShapeError(f"roi_align: batch_indices must be (R,) int64 matching rois {rois}, got {bidx}")
    if int(attrs["sampling_ratio"]) < 1:
        raise ShapeError("roi_align: sampling_ratio must be >= 1 (the adaptive 0 makes each box's number of "
                         "samples, a shape, depend on its size)", hint="pass sampling_ratio=2 (torchvision's common choice)")
    if int(attrs["output_height"]) < 1 or int(attrs["output_width"]) < 1:
        raise ShapeError(f"roi_align: output sizes must be >= 1, got {attrs['output_height']}x{attrs['output_width']}")
    return [TensorType((rois.shape[0], x.shape[1], int(attrs["output_height"]), int(attrs["output_width"])),
                       x.dtype)]


def _roi_align_ref(xs, attrs, env=None):
    x, rois, bidx = xs
    xc, rc = x.astype(compute_dtype(x)), rois.astype(compute_dtype(rois))
    if rois.shape[0] == 0 or x.shape[1] == 0:
        return [np.zeros((rois.shape[0], x.shape[1], attrs["output_height"], attrs["output_width"]), x.dtype)]
    out = _roi_align(_NP, xc, rc, bidx, attrs, (rois.shape[0], x.shape[1], x.shape[2:]))
    return [out.astype(x.dtype)]


def _roi_align_decompose(inputs, attrs):
    x, rois, bidx = inputs
    shape = (rois.type.shape[0], x.type.shape[1], tuple(int(d) for d in x.shape[2:]))
    half = x.dtype in ("float16", "bfloat16")
    xc = _ew.cast(x, "float32") if half else x
    rc = _ew.cast(rois, "float32") if rois.dtype in ("float16", "bfloat16") else rois
    y = _roi_align(_GF, xc, rc, bidx, attrs, shape)
    return [_ew.cast(y, x.dtype) if half else y]


_ROI_ATTRS = {"mode": Attr("str", "avg", choices=("avg", "max")),
              "output_height": Attr("int", 1), "output_width": Attr("int", 1),
              "sampling_ratio": Attr("int", 2), "spatial_scale": Attr("float", 1.0),
              "coordinate_transformation_mode": Attr("str", "half_pixel", choices=("half_pixel", "output_half_pixel"))}
_BOXES = np.array([[0.0, 0.0, 3.0, 2.5], [1.2, 0.4, 4.6, 3.3], [-0.8, 2.0, 2.2, 5.9]], np.float32)


def _roi_flops(ins, outs, attrs):
    return math.prod(int(d) for d in outs[0].shape) * int(attrs["sampling_ratio"]) ** 2 * 8


register_op(OpDef(
    name="roi_align", family="vision", num_inputs=(3, 3), attrs=_ROI_ATTRS, type_rule=_roi_align_rule,
    reference=_roi_align_ref, decompose=_roi_align_decompose, flops=_roi_flops,
    vjp=vjp_from_decomposition(_roi_align_decompose), nondiff_inputs=(1, 2),
    doc="Bilinear RoI pooling of x (N, C, H, W) over boxes (R, 4) of images batch_indices (R,): "
        "(R, C, output_height, output_width) (ONNX RoiAlign).",
    samples=[
        Sample([TensorType((2, 2, 5, 6), "float32"), TensorType((3, 4), "float32"), TensorType((3,), "int64")],
               attrs={"output_height": 2, "output_width": 3}, domain=["any", _BOXES, np.array([0, 1, 1])]),
        Sample([TensorType((1, 1, 6, 6), "float64"), TensorType(("r", 4), "float64"), TensorType(("r",), "int64")],
               attrs={"output_height": 2, "output_width": 2, "mode": "max", "sampling_ratio": 1,
                      "coordinate_transformation_mode": "output_half_pixel", "spatial_scale": 0.5},
               bind={"r": 3}, domain=["any", _BOXES.astype(np.float64) * 2.0, np.array([0, 0, 0])],
               note="symbolic box count, max, output_half_pixel, float64", grad=False),
    ],
))


def roi_align(input, rois, batch_indices, output_size, spatial_scale: float = 1.0,  # noqa: A002
              sampling_ratio: int = 2, aligned: bool = True, mode: str = "avg"):
    """Bilinear RoI pooling (ONNX RoiAlign; torchvision's ``roi_align`` with the box batch separate).

    Args:
        input: ``(N, C, H, W)`` with static ``H, W``.
        rois: ``(R, 4)`` boxes ``(x1, y1, x2, y2)``.
        batch_indices: ``(R,)`` int64, the image of each box.
        output_size: ``(height, width)`` of each pooled box (an int for both).
        spatial_scale: multiplies the box coordinates.
        sampling_ratio: samples per bin along each axis (>= 1).
        aligned: True = ``half_pixel`` (shift boxes by -0.5), False = ``output_half_pixel``.
        mode: ``"avg"`` or ``"max"``.

    Returns:
        ``(R, C, height, width)``.

    Raises:
        ShapeError: ``input`` is not 4-D with static ``H, W``, ``rois`` is not ``(R, 4)``,
            ``batch_indices`` is not ``(R,)`` int64, or an unknown ``mode``.

    Example:
        ```python
        spec = (gf.TensorSpec((1, 1, 4, 4)), gf.TensorSpec(("R", 4)), gf.TensorSpec(("R",), "int64"))
        g = gf.trace(lambda x, rois, idx: gf.roi_align(x, rois, idx, 2), *spec)
        (y,) = gf.run(g, {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4),
                          "rois": np.array([[0, 0, 3, 3]], np.float32), "idx": np.array([0])},
                      backend="reference")  # y.shape == (1, 1, 2, 2)
        ```
    """
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    return apply("roi_align", input, rois, batch_indices, mode=mode, output_height=int(oh), output_width=int(ow),
                 sampling_ratio=int(sampling_ratio), spatial_scale=float(spatial_scale),
                 coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")


# ---- max_roi_pool -----------------------------------------------------------------------------------
def _round_away(F, v):
    return F.sign(v) * F.floor(F.abs(v) + 0.5)


def _bin_masks(F, start, extent, pooled: int, size: int, like):
    """(R, pooled, size) bool: which positions along one axis fall in each bin of each box."""
    bins = F.const(np.arange(pooled, dtype=np.float64), like)
    bin_size = F.expand(extent / pooled, [1])  # (R, 1)
    s = F.expand(start, [1])
    lo = F.clip(F.floor(bins * bin_size) + s, 0.0, float(size))  # (R, pooled)
    hi = F.clip(F.ceil((bins + 1.0) * bin_size) + s, 0.0, float(size))
    pos = F.const(np.arange(size, dtype=np.float64), like)  # (size,)
    lo3, hi3 = F.expand(lo, [2]), F.expand(hi, [2])
    return F.logical_and(F.greater(pos + 0.5, lo3), F.less(pos + 0.5, hi3)), F.greater(hi, lo)


def _max_roi_pool(F, x, rois, attrs, neg):
    ph, pw = (int(d) for d in attrs["pooled_shape"])
    _, _, height, width = (d for d in x.shape)
    height, width = int(height), int(width)
    scale = float(attrs["spatial_scale"])
    b = F.to_index(F.col(rois, 0))
    x1, y1 = _round_away(F, F.col(rois, 1) * scale), _round_away(F, F.col(rois, 2) * scale)
    x2, y2 = _round_away(F, F.col(rois, 3) * scale), _round_away(F, F.col(rois, 4) * scale)
    one = x1 * 0.0 + 1.0
    rw, rh = F.maximum(x2 - x1 + 1.0, one), F.maximum(y2 - y1 + 1.0, one)
    my, ny = _bin_masks(F, y1, rh, ph, height, rois)  # (R, ph, H), (R, ph)
    mx, nx = _bin_masks(F, x1, rw, pw, width, rois)   # (R, pw, W), (R, pw)
    img = F.gather0(x, b)                              # (R, C, H, W)
    # max over W within each column bin: (R, C, H, pw, W) -> (R, C, H, pw)
    cols = F.where(F.expand(mx, [1, 2]), F.expand(img, [3]), neg)
    cols = F.reduce("max", cols, [4])
    # then over H within each row bin: (R, C, ph, H, pw) -> (R, C, ph, pw)
    rows = F.where(F.expand(my, [1, 4]), F.expand(cols, [2]), neg)
    out = F.reduce("max", rows, [3])
    nonempty = F.logical_and(F.expand(ny, [1, 3]), F.expand(nx, [1, 2]))  # (R, 1, ph, pw)
    return F.where(nonempty, out, F.const(0.0, rois))  # not out * 0: an empty bin's max is -inf


def _max_roi_rule(ts, attrs):
    x, rois = ts
    require_float(x, "max_roi_pool's input")
    require_float(rois, "max_roi_pool's rois")
    if x.rank != 4 or not all(is_static(d) for d in x.shape[2:]):
        raise ShapeError(f"max_roi_pool: the input must be (N, C, H, W) with static H and W, got {x}")
    if rois.rank != 2 or rois.shape[1] != 5:
        raise ShapeError(f"max_roi_pool: rois must be (R, 5) = (batch, x1, y1, x2, y2), got {rois}")
    ps = list(attrs["pooled_shape"])
    if len(ps) != 2 or min(ps) < 1:
        raise ShapeError(f"max_roi_pool: pooled_shape must be two sizes >= 1, got {ps}")
    return [TensorType((rois.shape[0], x.shape[1], int(ps[0]), int(ps[1])), x.dtype)]


def _max_roi_ref(xs, attrs, env=None):
    x, rois = xs
    xc, rc = x.astype(compute_dtype(x)), rois.astype(compute_dtype(rois))
    if rois.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] * x.shape[3] == 0:
        return [np.zeros((rois.shape[0], x.shape[1]) + tuple(attrs["pooled_shape"]), x.dtype)]
    return [_max_roi_pool(_NP, xc, rc, attrs, np.array(-np.inf, xc.dtype)).astype(x.dtype)]


def _max_roi_decompose(inputs, attrs):
    x, rois = inputs
    half = x.dtype in ("float16", "bfloat16")
    xc = _ew.cast(x, "float32") if half else x
    rc = _ew.cast(rois, "float32") if rois.dtype in ("float16", "bfloat16") else rois
    neg = np.array(-np.inf, np.float64 if xc.dtype == "float64" else np.float32)
    y = _max_roi_pool(_GF, xc, rc, attrs, neg)
    return [_ew.cast(y, x.dtype) if half else y]


_ROIS5 = np.array([[0, 0.0, 0.0, 3.0, 2.0], [1, 1.4, 0.6, 4.5, 3.2], [1, 2.0, 2.0, 2.0, 2.0]], np.float32)

register_op(OpDef(
    name="max_roi_pool", family="vision", num_inputs=(2, 2),
    attrs={"pooled_shape": Attr("ints"), "spatial_scale": Attr("float", 1.0)},
    type_rule=_max_roi_rule, reference=_max_roi_ref, decompose=_max_roi_decompose,
    flops=lambda i, o, a: math.prod(int(d) for d in o[0].shape) * int(i[0].shape[2]) * int(i[0].shape[3]),
    vjp=vjp_from_decomposition(_max_roi_decompose), nondiff_inputs=(1,),
    doc="Max over Caffe's quantised bins of boxes rois (R, 5) = (batch, x1, y1, x2, y2) in x (N, C, H, W): "
        "(R, C, *pooled_shape) (ONNX MaxRoiPool).",
    samples=[
        Sample([TensorType((2, 2, 5, 6), "float32"), TensorType((3, 5), "float32")],
               attrs={"pooled_shape": [2, 3]}, domain=["any", _ROIS5]),
        Sample([TensorType((1, 1, 8, 8), "float64"), TensorType(("r", 5), "float64")],
               attrs={"pooled_shape": [2, 2], "spatial_scale": 0.5}, bind={"r": 3},
               domain=["any", np.array([[0, 0, 0, 7, 7], [0, 3, 3, 10, 9], [0, -2, 1, 5, 4]], np.float64)],
               note="symbolic box count, scale 0.5, float64"),
    ],
))


def max_roi_pool(input, rois, pooled_shape, spatial_scale: float = 1.0):  # noqa: A002
    """Max RoI pooling (ONNX MaxRoiPool; torchvision's ``roi_pool`` with boxes ``(batch, x1, y1, x2, y2)``).

    Args:
        input: ``(N, C, H, W)`` with static ``H, W``.
        rois: ``(R, 5)`` rows ``(batch index, x1, y1, x2, y2)``.
        pooled_shape: ``(height, width)`` of each pooled box.
        spatial_scale: multiplies the box coordinates.

    Returns:
        ``(R, C, height, width)``.

    Raises:
        ShapeError: ``input`` is not 4-D with static ``H, W``, or ``rois`` is not ``(R, 5)``.

    Example:
        ```python
        g = gf.trace(lambda x, rois: gf.max_roi_pool(x, rois, (2, 2)),
                     gf.TensorSpec((1, 1, 4, 4)), gf.TensorSpec(("R", 5)))
        (y,) = gf.run(g, {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4),
                          "rois": np.array([[0, 0, 0, 3, 3]], np.float32)}, backend="reference")  # [[5, 7], [13, 15]]
        ```
    """
    return apply("max_roi_pool", input, rois, pooled_shape=[int(d) for d in pooled_shape],
                 spatial_scale=float(spatial_scale))
