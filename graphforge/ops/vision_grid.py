"""Spatial sampling on a grid: ``grid_sample`` (ONNX GridSample, ``F.grid_sample``) and ``affine_grid``
(ONNX AffineGrid, ``F.affine_grid``), 2-D and 3-D.

``grid_sample(x, grid)``: ``x`` is ``(N, C, *D)`` (``D`` = 2 or 3 static spatial dims), ``grid`` is
``(N, *O, k)`` holding normalised coordinates in [-1, 1] with the *last* spatial dim first (x, y[, z]),
the result ``(N, C, *O)``. Attrs: ``mode`` linear | nearest | cubic (ONNX-20 names; the wrapper also
takes PyTorch's bilinear/bicubic), ``padding_mode`` zeros | border | reflection, ``align_corners``.
The semantics are onnx's reference (= PyTorch's GridSampler): a coordinate outside the border range
is clamped (border) or reflected (reflection) first, then each interpolation tap is fetched with the
same padding (zeros: 0 outside); nearest rounds half to even.

Both ops are composites: the one algorithm below is written against a tiny array namespace, run with
NumPy as the reference and with graphforge ops as the decomposition (JAX and ONNX without a native
GridSample use it). The decomposition gathers rows of ``x`` laid out as ``(N * prod(D), C)`` at
integer tap indices and sums them with interpolation weights; its gradient (``_decomp_vjp``) is
PyTorch's: scatter-adds into ``x`` and the weights' derivative for ``grid`` (zero for nearest).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import ShapeError
from ..ir.dims import is_static, require_equal
from ..ir.types import TensorType
from ..trace.tensor import apply, wrap
from ._decomp_vjp import vjp_from_decomposition
from ._shapes import require_float
from .common import compute_dtype
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _ew
from . import linalg as _linalg
from . import math_ops as _math
from . import shape_ops as _shape_ops

__all__ = ["grid_sample", "affine_grid"]

MODES = ("linear", "nearest", "cubic")
PADDING_MODES = ("zeros", "border", "reflection")
_TORCH_MODES = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest", "linear": "linear",
                "cubic": "cubic"}
_CUBIC_A = -0.75  # Keys' cubic convolution, as onnx and PyTorch


# ---- the array namespaces the algorithm runs on --------------------------------------------------
class _NumpyNS:
    """The reference: NumPy arrays."""

    floor, rint, where = staticmethod(np.floor), staticmethod(np.rint), staticmethod(np.where)
    less, greater, equal = staticmethod(np.less), staticmethod(np.greater), staticmethod(np.equal)
    logical_or, logical_and = staticmethod(np.logical_or), staticmethod(np.logical_and)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi).astype(x.dtype)

    @staticmethod
    def to_index(x):
        return x.astype(np.int64)  # truncates toward zero, like ONNX/C casts

    @staticmethod
    def to_float(x, like):
        return x.astype(like.dtype)

    @staticmethod
    def coord(grid, j):
        return grid[..., j]

    @staticmethod
    def rows(x):
        """(N, C, *D) -> (N * prod(D), C) and per-batch row offsets of shape (N, 1, ...)."""
        n, c = x.shape[:2]
        s = int(np.prod(x.shape[2:]))
        return np.moveaxis(x, 1, -1).reshape(n * s, c), s

    @staticmethod
    def batch_offsets(x, out_rank, stride):
        n = x.shape[0]
        return np.arange(n, dtype=np.int64).reshape((n,) + (1,) * out_rank) * stride

    @staticmethod
    def take(rows, idx):
        return rows[idx]

    @staticmethod
    def scale(v, w):
        return v * w[..., None].astype(v.dtype)

    @staticmethod
    def channels_first(v):
        return np.moveaxis(v, -1, 1)


class _GraphNS:
    """The decomposition: graphforge Tensors (symbolic batch and output dims allowed)."""

    floor, rint, where = staticmethod(_math.floor), staticmethod(_math.round), staticmethod(_ew.where)
    less, greater, equal = staticmethod(_ew.less), staticmethod(_ew.greater), staticmethod(_ew.equal)
    logical_or, logical_and = staticmethod(_ew.logical_or), staticmethod(_ew.logical_and)

    @staticmethod
    def clip(x, lo, hi):
        return _ew.clip(x, lo, hi)

    @staticmethod
    def to_index(x):
        return _ew.cast(x, "int64")

    @staticmethod
    def to_float(x, like):
        return _ew.cast(x, like.dtype)

    @staticmethod
    def coord(grid, j):
        return _shape_ops.squeeze(_shape_ops.slice(grid, [j], [j + 1], [grid.ndim - 1]), [grid.ndim - 1])

    @staticmethod
    def rows(x):
        s = math.prod(int(d) for d in x.shape[2:])
        perm = [0] + list(range(2, x.ndim)) + [1]
        return _shape_ops.reshape(_shape_ops.transpose(x, perm), [-1, x.type.shape[1]]), s

    @staticmethod
    def batch_offsets(x, out_rank, stride):
        b = x.builder
        n = wrap(b.emit1("arange", [], {"start": 0, "stop": x.type.shape[0], "step": 1, "dtype": "int64"}), b)
        return _shape_ops.reshape(n, [-1] + [1] * out_rank) * stride

    @staticmethod
    def take(rows, idx):
        return _shape_ops.gather(rows, idx, axis=0)

    @staticmethod
    def scale(v, w):
        return v * _shape_ops.unsqueeze(_ew.cast(w, v.dtype), [-1])

    @staticmethod
    def channels_first(v):
        return _shape_ops.transpose(v, [0, v.ndim - 1] + list(range(1, v.ndim - 1)))


# ---- the algorithm ---------------------------------------------------------------------------------
def _reflect(F, c, lo: float, hi: float):
    """Reflect ``c`` by the nearer border until it lies in [lo, hi] (onnx's ``_gs_reflect``)."""
    below, above = F.less(c, lo), F.greater(c, hi)
    outside = F.logical_or(below, above)
    span = hi - lo
    if span <= 0:
        return F.where(outside, c * 0.0 + lo, c)
    dx = F.where(below, lo - c, c - hi)
    flips = F.floor(dx / span)
    r = dx - flips * span
    even = F.equal(flips - 2.0 * F.floor(flips * 0.5), 0.0)
    near = F.where(below, lo + r, hi - r)
    far = F.where(below, hi - r, lo + r)
    return F.where(outside, F.where(even, near, far), c)


def _cubic_weights(t):
    a = _CUBIC_A
    t1, u, u1 = t + 1.0, 1.0 - t, 2.0 - t
    return [((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a,
            ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
            ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0,
            ((a * u1 - 5.0 * a) * u1 + 8.0 * a) * u1 - 4.0 * a]


def _fetch(F, idx, weight, d: int, pad: str, lo: float, hi: float, like):
    """One tap along one axis: (an index inside [0, d), its weight with zeros padding applied)."""
    if pad == "zeros":
        valid = F.logical_and(F.greater(idx, -1), F.less(idx, d))
        one = like * 0.0 + 1.0
        weight = F.where(valid, one if weight is None else weight, like * 0.0)
        return F.clip(idx, 0, d - 1), weight
    if pad == "reflection":
        idx = F.to_index(_reflect(F, F.to_float(idx, like), lo, hi))
    return F.clip(idx, 0, d - 1), weight


def _sample(F, x, grid, dims, attrs):
    mode, pad, align = attrs["mode"], attrs["padding_mode"], bool(attrs["align_corners"])
    k = len(dims)
    per_axis = []
    for i, d in enumerate(dims):
        g = F.coord(grid, k - 1 - i)
        c = (g + 1.0) * ((d - 1) / 2.0) if align else ((g + 1.0) * d - 1.0) / 2.0
        if mode == "nearest":
            c = F.rint(c)
        lo, hi = (0.0, d - 1.0) if align else (-0.5, d - 0.5)
        if pad == "border":
            c = F.where(F.logical_or(F.less(c, lo), F.greater(c, hi)), F.clip(c, 0.0, d - 1.0), c)
        elif pad == "reflection":
            c = _reflect(F, c, lo, hi)
        if mode == "nearest":
            taps = [(F.to_index(c), None)]
        else:
            f = F.floor(c)
            t, base = c - f, F.to_index(f)
            weights = [1.0 - t, t] if mode == "linear" else _cubic_weights(t)
            offsets = [0, 1] if mode == "linear" else [-1, 0, 1, 2]
            taps = [(base + o, w) for o, w in zip(offsets, weights)]
        per_axis.append([_fetch(F, idx, w, d, pad, lo, hi, g) for idx, w in taps])
    rows, _ = F.rows(x)
    strides = [math.prod(dims[i + 1:]) for i in range(k)]
    offsets = F.batch_offsets(x, k, math.prod(dims))
    acc = None
    for combo in itertools.product(*per_axis):
        flat, weight = offsets, None
        for (idx, w), stride in zip(combo, strides):
            flat = flat + idx * stride
            if w is not None:
                weight = w if weight is None else weight * w
        v = F.take(rows, flat)
        if weight is not None:
            v = F.scale(v, weight)
        acc = v if acc is None else acc + v
    return F.channels_first(acc)


# ---- grid_sample -----------------------------------------------------------------------------------
def _grid_sample_rule(ts, attrs):
    x, grid = ts
    require_float(x, "grid_sample's input")
    require_float(grid, "grid_sample's grid")
    k = x.rank - 2
    if k not in (2, 3):
        raise ShapeError(f"grid_sample: the input must be (N, C, H, W) or (N, C, D, H, W), got {x}")
    if grid.rank != k + 2 or grid.shape[-1] != k:
        raise ShapeError(f"grid_sample: a {k}-D input needs a grid (N, *out, {k}), got {grid}",
                         hint="the grid's last axis holds the normalised (x, y[, z]) coordinates")
    if x.shape[0] != grid.shape[0]:
        raise ShapeError(f"grid_sample: input batch {x.shape[0]} and grid batch {grid.shape[0]} differ")
    if not all(is_static(d) for d in x.shape[2:]):
        raise ShapeError(f"grid_sample: the input's spatial dims must be static, got {x}")
    if attrs["mode"] == "cubic" and k != 2:
        raise ShapeError(f"grid_sample: cubic mode samples 4-D inputs only (ONNX), got {x}")
    return [TensorType((x.shape[0], x.shape[1]) + tuple(grid.shape[1:-1]), x.dtype)]


def _grid_sample_ref(xs, attrs, env=None):
    x, grid = xs
    xc = x.astype(compute_dtype(x))
    gc = grid.astype(compute_dtype(grid))
    if x.size == 0 or grid.size == 0:
        return [np.zeros(x.shape[:2] + grid.shape[1:-1], x.dtype)]
    return [_sample(_NumpyNS, xc, gc, [int(d) for d in x.shape[2:]], attrs).astype(x.dtype)]


def _grid_sample_decompose(inputs, attrs):
    x, grid = inputs
    dims = [int(d) for d in x.shape[2:]]
    half = x.dtype in ("float16", "bfloat16")
    xc = _ew.cast(x, "float32") if half else x
    gc = _ew.cast(grid, "float32") if grid.dtype in ("float16", "bfloat16") else grid
    y = _sample(_GraphNS, xc, gc, dims, attrs)
    return [_ew.cast(y, x.dtype) if half else y]


def _grid_sample_flops(ins, outs, attrs):
    k = ins[0].rank - 2
    taps = {"nearest": 1, "linear": 2 ** k, "cubic": 4 ** k}[attrs["mode"]]
    return math.prod(int(d) for d in outs[0].shape) * 2 * taps


_GS_ATTRS = {"mode": Attr("str", "linear", choices=MODES),
             "padding_mode": Attr("str", "zeros", choices=PADDING_MODES),
             "align_corners": Attr("bool", False)}
_F32, _F64 = "float32", "float64"


def _grid(shape, dt=_F32):
    return TensorType(shape, dt)


register_op(OpDef(
    name="grid_sample", family="vision", num_inputs=(2, 2), attrs=_GS_ATTRS, type_rule=_grid_sample_rule,
    reference=_grid_sample_ref, decompose=_grid_sample_decompose, flops=_grid_sample_flops,
    vjp=vjp_from_decomposition(_grid_sample_decompose),
    doc="Sample x (N, C, *D) at the normalised coordinates of grid (N, *O, k): (N, C, *O) (ONNX GridSample).",
    samples=[
        Sample([_grid((1, 2, 4, 5)), _grid((1, 3, 2, 2))], domain=["any", "unit"]),
        Sample([_grid(("batch", 2, 3, 4)), _grid(("batch", "h", 3, 2))], bind={"batch": 2, "h": 2},
               attrs={"mode": "nearest", "padding_mode": "border"}, domain=["any", "any"],
               note="symbolic batch and output height; nearest, border", grad=False),
        Sample([_grid((1, 1, 4, 4), _F64), _grid((1, 2, 3, 2), _F64)], domain=["any", "any"],
               attrs={"mode": "cubic", "padding_mode": "reflection", "align_corners": True},
               note="bicubic, reflection, float64"),
        Sample([_grid((1, 1, 3, 4)), _grid((1, 3, 2, 2))], domain=["any", "any"],
               attrs={"padding_mode": "reflection"}, note="bilinear reflection, coordinates outside"),
        Sample([_grid((1, 2, 2, 3, 3)), _grid((1, 2, 2, 2, 3))], domain=["any", "unit"],
               attrs={"align_corners": True}, note="volumetric (3-D)"),
    ],
))


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros",  # noqa: A002
                align_corners: bool = False):
    """Sample ``input`` at the normalised coordinates of ``grid`` (``torch.nn.functional.grid_sample``).

    Args:
        input: ``(N, C, H, W)`` or ``(N, C, D, H, W)`` with static spatial dims.
        grid: ``(N, H_out, W_out, 2)`` (or ``(N, D_out, H_out, W_out, 3)``), coordinates in [-1, 1], x first.
        mode: ``"bilinear"`` (= ``"linear"``), ``"nearest"`` or ``"bicubic"`` (= ``"cubic"``, 4-D only).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: whether -1 and 1 name the centres (True) or the outer edges of the corner pixels.

    Returns:
        ``(N, C, *out)``.

    Raises:
        DTypeError: ``input`` or ``grid`` is not a float tensor.
        ShapeError: an unknown ``mode``/``padding_mode``, or ``grid`` does not match ``input``'s rank.

    Example:
        ```python
        def identity_warp(x, theta):
            return gf.grid_sample(x, gf.affine_grid(theta, [1, 1, 2, 2]))
        g = gf.trace(identity_warp, gf.TensorSpec((1, 1, 2, 2)), gf.TensorSpec((1, 2, 3)))
        x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
        (y,) = gf.run(g, {"x": x, "theta": np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)},
                      backend="reference")  # y == x
        ```
    """
    if mode not in _TORCH_MODES:
        raise ShapeError(f"grid_sample: unknown mode {mode!r}", hint="bilinear, nearest or bicubic")
    return apply("grid_sample", input, grid, mode=_TORCH_MODES[mode], padding_mode=padding_mode,
                 align_corners=bool(align_corners))


# ---- affine_grid -----------------------------------------------------------------------------------
def _base_grid(dims, align: bool) -> np.ndarray:
    """(prod(dims), k + 1) float64: the homogeneous normalised coordinates (x, y[, z], 1) of every
    output position in C order (onnx's ``construct_original_grid``)."""
    axes = []
    for d in dims:
        if align:
            axes.append(np.linspace(-1.0, 1.0, d) if d > 1 else np.full(1, -1.0))
        else:
            axes.append((2.0 * np.arange(d) + 1.0) / d - 1.0)
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x (the last dim) first
    return np.stack(coords + [np.ones(math.prod(dims))], axis=1)


def _affine_rule(ts, attrs):
    (theta,) = ts
    require_float(theta, "affine_grid's theta")
    size = list(attrs["size"])
    if len(size) not in (4, 5):
        raise ShapeError(f"affine_grid: size must be [N, C, H, W] or [N, C, D, H, W], got {size}")
    k = len(size) - 2
    if theta.rank != 3 or theta.shape[1:] != (k, k + 1):
        raise ShapeError(f"affine_grid: a {k}-D size needs theta (N, {k}, {k + 1}), got {theta}")
    if is_static(size[0]) and is_static(theta.shape[0]):
        if int(size[0]) != int(theta.shape[0]):
            raise ShapeError(f"affine_grid: size's batch {size[0]} differs from theta's {theta.shape[0]}")
    else:  # a symbolic side: equal by construction, or a guard / definition-time error (ONNX AffineGrid
        # and PyTorch refuse a size batch other than theta's at run time; the reference would not)
        require_equal(size[0], theta.shape[0], "affine_grid: size's batch vs theta's")
    if not all(is_static(d) for d in size[2:]):
        raise ShapeError(f"affine_grid: the spatial sizes must be static, got {size}")
    return [TensorType((theta.shape[0],) + tuple(int(d) for d in size[2:]) + (k,), theta.dtype)]


def _affine_ref(xs, attrs, env=None):
    (theta,) = xs
    dims = [int(d) for d in attrs["size"][2:]]
    base = _base_grid(dims, attrs["align_corners"])
    t = theta.astype(compute_dtype(theta))
    grid = np.einsum("pj,nkj->npk", base.astype(t.dtype), t)
    return [grid.reshape((theta.shape[0],) + tuple(dims) + (len(dims),)).astype(theta.dtype)]


def _affine_decompose(inputs, attrs):
    (theta,) = inputs
    dims = [int(d) for d in attrs["size"][2:]]
    base = _base_grid(dims, attrs["align_corners"]).astype(np.float64 if theta.dtype == "float64" else np.float32)
    tc = theta if theta.dtype in ("float32", "float64") else _ew.cast(theta, "float32")
    grid = _linalg.matmul(base, _shape_ops.transpose(tc, [0, 2, 1]))  # (N, P, k)
    grid = _shape_ops.reshape(grid, [theta.type.shape[0]] + dims + [len(dims)])
    return [grid if tc is theta else _ew.cast(grid, theta.dtype)]


register_op(OpDef(
    name="affine_grid", family="vision", num_inputs=(1, 1),
    attrs={"size": Attr("dims"), "align_corners": Attr("bool", False)},
    type_rule=_affine_rule, reference=_affine_ref, decompose=_affine_decompose,
    flops=lambda i, o, a: math.prod(int(d) for d in o[0].shape) * 2 * (len(a["size"]) - 1),
    vjp=vjp_from_decomposition(_affine_decompose),
    doc="The sampling grid (N, *size[2:], k) of the affine maps theta (N, k, k+1) (ONNX AffineGrid).",
    samples=[
        Sample([_grid((2, 2, 3))], attrs={"size": [2, 3, 4, 5]}),
        Sample([_grid(("batch", 2, 3), _F64)], attrs={"size": ["batch", 1, 3, 2], "align_corners": True},
               bind={"batch": 2}, note="symbolic batch, align_corners, float64"),
        Sample([_grid((1, 3, 4))], attrs={"size": [1, 1, 2, 3, 2]}, note="3-D"),
    ],
))


def affine_grid(theta, size, align_corners: bool = False):
    """The sampling grid of a batch of affine maps (``torch.nn.functional.affine_grid``).

    Args:
        theta: ``(N, 2, 3)`` (2-D) or ``(N, 3, 4)`` (3-D) affine matrices.
        size: the target ``[N, C, H, W]`` or ``[N, C, D, H, W]`` (static spatial sizes).
        align_corners: as in :func:`grid_sample`.

    Returns:
        ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` normalised coordinates for :func:`grid_sample`.

    Raises:
        ShapeError: ``size`` is not 4 or 5 long, or ``theta``'s shape does not match it.

    Example:
        ```python
        g = gf.trace(lambda theta: gf.affine_grid(theta, [1, 1, 2, 3]), gf.TensorSpec((1, 2, 3)))
        (grid,) = gf.run(g, {"theta": np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)},
                         backend="reference")  # grid.shape == (1, 2, 3, 2)
        ```
    """
    size = [d if isinstance(d, int) else str(d) for d in size]
    return apply("affine_grid", theta, size=size, align_corners=bool(align_corners))
