"""Quantized ops with ONNX semantics: QuantizeLinear / DequantizeLinear (per-tensor, per-axis and
blocked), DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.

Rounding is round-half-to-even and results saturate to the integer type's range, as ONNX and
onnxruntime do. Scales are float (half types compute in float32, like every reference here; the
multiply-by-ratio of QLinear* ops is computed in float32, as onnxruntime's requantisation is).
Zero points are optional trailing inputs; an importer fills a zero constant when a later optional
input is present. None of these ops is differentiable (integer results; quantisation-aware training
would use a straight-through estimator, which is not an op's gradient).

Scale/zero-point layouts (``axis``, ``block_size`` attributes, the ONNX meaning):
per-tensor (a scalar or a 1-element 1-D tensor), per-axis (1-D, one per ``x.shape[axis]``), blocked
(``block_size > 0``: the same rank as ``x``, ``ceil(x.shape[axis] / block_size)`` along ``axis``).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.dims import dim_ceildiv
from ..ir.types import TensorType
from ..trace.tensor import apply
from .nn_conv import _CONV_ATTRS, _conv2d_np, _conv2d_rule
from ._shapes import normalize_axis
from .common import numel
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import linalg as _linalg

__all__ = ["quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "matmul_integer", "conv_integer",
           "qlinear_matmul", "qlinear_conv", "QUANT_DTYPES", "qrange", "expand_quant_param", "quantize_np",
           "FLOAT_QUANT_DTYPES", "quantize_float_np"]

# the integer types quantize_linear produces: those of ONNX's that graphforge's dtypes have (4-bit and
# 16-bit unsigned types join when dtypes.py defines them)
QUANT_DTYPES = tuple(d for d in ("uint8", "int8", "int16", "uint16", "int4", "uint4", "int2", "uint2") if d in _dt.DTYPES)
_SCALE_DTYPES = ("float32", "float16", "bfloat16")
# float8/float4 quantization (ONNX 19+/23+): y = saturating_cast(x / scale + zero_point), the cast rounding
# to nearest even; dequantization (x - zero_point) * scale in float32
FLOAT_QUANT_DTYPES = tuple(d for d in _dt.FLOAT8_DTYPES + _dt.FLOAT4_DTYPES if d in _dt.DTYPES)
F32 = "float32"


def qrange(dtype: str) -> tuple[int, int]:
    """The saturation range of a quantized dtype."""
    info = ml_dtypes.iinfo(_dt.to_numpy_dtype(dtype))  # (np.iinfo does not know the 4-bit types)
    return int(info.min), int(info.max)


def _require(t: TensorType, allowed, what: str, op: str) -> None:
    if t.dtype not in allowed:
        raise DTypeError(f"{op}: {what} must be {' or '.join(allowed)}, got {t}")


def _per_tensor(t: TensorType) -> bool:
    return t.rank == 0 or (t.rank == 1 and t.shape[0] == 1)


def _check_param(x: TensorType, p: TensorType, axis: int, block: int, op: str, what: str) -> None:
    """``p`` (a scale or zero point) fits ``x`` per tensor, per axis or blocked (module docstring)."""
    if block < 0:
        raise ShapeError(f"{op}: block_size must be >= 0, got {block}")
    if block == 0:
        if _per_tensor(p):
            return
        if p.rank != 1:
            raise ShapeError(f"{op}: {what} must be a scalar (per tensor) or 1-D (per axis), got {p}",
                             hint="give block_size > 0 for a blocked layout of the same rank as the input")
        if x.rank == 0:
            raise ShapeError(f"{op}: a 0-D input takes a per-tensor {what}, got {p}")
        ax = normalize_axis(axis, x.rank)
        if p.shape[0] != x.shape[ax]:
            raise ShapeError(f"{op}: a per-axis {what} needs {x.shape[ax]} values (input {x}, axis {ax}), got {p}")
        return
    if p.rank != x.rank or x.rank == 0:
        raise ShapeError(f"{op}: a blocked {what} has the input's rank ({x}), got {p}")
    ax = normalize_axis(axis, x.rank)
    for i, (dx, dp) in enumerate(zip(x.shape, p.shape)):
        want = dim_ceildiv(dx, block) if i == ax else dx
        if dp != want:
            raise ShapeError(f"{op}: a blocked {what} for input {x} (axis {ax}, block_size {block}) must have "
                             f"shape {tuple(dim_ceildiv(d, block) if j == ax else d for j, d in enumerate(x.shape))}, "
                             f"got {p}")


def _check_zero_point(scale: TensorType, zp: TensorType, op: str, what: str = "zero point") -> None:
    # ONNX accepts a one-element zero point beside a scalar scale (and the reverse): both are per tensor
    if tuple(zp.shape) != tuple(scale.shape) and not (_per_tensor(zp) and _per_tensor(scale)):
        raise ShapeError(f"{op}: the {what} must have the scale's shape {scale}, got {zp}")


def expand_quant_param(p: np.ndarray, x_shape, axis: int, block: int) -> np.ndarray:
    """``p`` broadcastable against an array of ``x_shape`` (per tensor, per axis or blocked)."""
    p = np.asarray(p)
    rank = len(x_shape)
    if block == 0:
        if p.ndim == 0 or p.size == 1 and p.ndim == 1:
            return p.reshape(())
        ax = axis % rank
        return p.reshape([-1 if i == ax else 1 for i in range(rank)])
    ax = axis % rank
    return np.take(np.repeat(p, block, axis=ax), np.arange(x_shape[ax]), axis=ax)


def quantize_np(x: np.ndarray, scale, zero_point, dtype: str) -> np.ndarray:
    """``saturate(round_half_even(x / scale) + zero_point)`` in float32 (scale/zp already broadcastable)."""
    lo, hi = qrange(dtype)
    q = np.rint(x.astype(np.float32) / np.asarray(scale).astype(np.float32))
    q = q + np.asarray(zero_point).astype(np.float32)
    with np.errstate(invalid="ignore"):
        return np.clip(q, lo, hi).astype(_dt.to_numpy_dtype(dtype))


# ---- quantize_linear / dequantize_linear ----------------------------------------------------------------

def _q_out_dtype(ts, attrs, op) -> str:
    want = attrs.get("output_dtype")
    if len(ts) == 3:
        zp = ts[2].dtype
        if want not in (None, zp):
            raise DTypeError(f"{op}: output_dtype {want} differs from the zero point's dtype {zp}")
        return zp
    return want or "uint8"


def _quantize_rule(ts, attrs):
    op = "quantize_linear"
    x, scale = ts[0], ts[1]
    _require(x, _SCALE_DTYPES, "the input", op)
    if scale.dtype != x.dtype:
        raise DTypeError(f"{op}: the scale must have the input's dtype {x.dtype}, got {scale}")
    out = _q_out_dtype(ts, attrs, op)
    if out not in QUANT_DTYPES + FLOAT_QUANT_DTYPES:
        raise DTypeError(f"{op}: the quantized dtype must be one of {', '.join(QUANT_DTYPES + FLOAT_QUANT_DTYPES)}, "
                         f"got {out}")
    _check_param(x, scale, attrs["axis"], attrs["block_size"], op, "scale")
    if len(ts) == 3:
        _check_zero_point(scale, ts[2], op)
    return [TensorType(x.shape, out)]


def _quantize_ref(xs, attrs, env=None):
    x = xs[0]
    dtype = _dt.from_numpy_dtype(xs[2].dtype) if len(xs) == 3 else (attrs.get("output_dtype") or "uint8")
    ax, block = attrs["axis"], attrs["block_size"]
    scale = expand_quant_param(xs[1], x.shape, ax, block)
    zp = expand_quant_param(xs[2], x.shape, ax, block) if len(xs) == 3 else 0
    if dtype in FLOAT_QUANT_DTYPES:
        return [quantize_float_np(x, scale, zp, dtype, attrs.get("saturate", True))]
    return [quantize_np(x, scale, zp, dtype)]


def quantize_float_np(x: np.ndarray, scale, zero_point, dtype: str, saturate: bool = True) -> np.ndarray:
    """float8/float4 quantization: ``cast(x / scale + zero_point)`` in float32, the cast rounding to
    nearest even and (``saturate``) clamping to the type's largest finite value, NaN kept."""
    y = x.astype(np.float32) / np.asarray(scale).astype(np.float32)
    y = y + np.asarray(zero_point).astype(np.float32)
    target = _dt.to_numpy_dtype(dtype)
    if saturate:
        limit = float(ml_dtypes.finfo(target).max)
        with np.errstate(invalid="ignore"):
            y = np.clip(y, -limit, limit)
    return y.astype(target)


def _dequantize_rule(ts, attrs):
    op = "dequantize_linear"
    x, scale = ts[0], ts[1]
    _require(x, QUANT_DTYPES + FLOAT_QUANT_DTYPES + ("int32",), "the input", op)
    _require(scale, _SCALE_DTYPES, "the scale", op)
    _check_param(x, scale, attrs["axis"], attrs["block_size"], op, "scale")
    if len(ts) == 3:
        if ts[2].dtype != x.dtype:
            raise DTypeError(f"{op}: the zero point must have the input's dtype {x.dtype}, got {ts[2]}")
        _check_zero_point(scale, ts[2], op)
    return [TensorType(x.shape, scale.dtype)]


def _dequantize_ref(xs, attrs, env=None):
    x, scale = xs[0], xs[1]
    ax, block = attrs["axis"], attrs["block_size"]
    s = expand_quant_param(scale, x.shape, ax, block).astype(np.float32)
    wide = np.float32 if _dt.from_numpy_dtype(x.dtype) in FLOAT_QUANT_DTYPES else np.int64
    q = x.astype(wide)
    if len(xs) == 3:
        q = q - expand_quant_param(xs[2], x.shape, ax, block).astype(wide)
    return [(q.astype(np.float32) * s).astype(scale.dtype)]


_Q_ATTRS = {"axis": Attr("int", 1), "block_size": Attr("int", 0)}


def _n_flops(k):
    return lambda ins, outs, attrs: k * numel(outs[0])


def _i(lo, hi):
    return f"int:{lo}:{hi}"


register_op(OpDef(
    name="quantize_linear", family="quantize", num_inputs=(2, 3),
    attrs={**_Q_ATTRS, "output_dtype": Attr("dtype", None, choices=QUANT_DTYPES + FLOAT_QUANT_DTYPES, optional=True),
           "saturate": Attr("bool", True, elide_default=True)},
    type_rule=_quantize_rule, reference=_quantize_ref, flops=_n_flops(3), vjp=NOT_DIFFERENTIABLE,
    doc="saturate(round_half_even(x / scale) + zero_point): ONNX QuantizeLinear (per tensor, per axis, blocked).",
    samples=[
        Sample([TensorType((3, 4), F32), TensorType((), F32), TensorType((), "uint8")],
               domain=["any", np.array(0.02), np.array(128)], note="per tensor, saturating"),
        Sample([TensorType(("batch", 3, 2), F32), TensorType((3,), F32), TensorType((3,), "int8")],
               bind={"batch": 2}, domain=["any", np.array([0.01, 0.05, 0.1]), np.array([0, -3, 5])],
               note="per axis (channels), symbolic batch"),
        Sample([TensorType((2, 6), F32), TensorType((2, 3), F32), TensorType((2, 3), "int8")],
               attrs={"axis": 1, "block_size": 2}, domain=["any", "positive", _i(-4, 4)], note="blocked"),
        Sample([TensorType((5,), F32), TensorType((1,), F32)], attrs={"output_dtype": "int8"},
               domain=["any", np.array([0.03])], note="no zero point, int8 output"),
        Sample([TensorType((2, 3), F32), TensorType((), F32), TensorType((), "int16")],
               domain=["any", np.array(1e-3), np.array(7)], note="int16"),
        Sample([TensorType((7,), F32), TensorType((), F32), TensorType((), "int8")],
               domain=[np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9]), np.array(1.0), np.array(0)],
               grad=False, note="ties round to even, saturation"),
        Sample([TensorType(("batch", 3), F32), TensorType((3,), F32), TensorType((3,), "float8e4m3fn")],
               bind={"batch": 2}, attrs={"axis": 1},
               domain=[np.array([[0.1, 500.0, -3.3], [1e6, -1e6, 0.0]]), np.array([0.5, 1.0, 2.0]),
                       np.zeros(3, ml_dtypes.float8_e4m3fn)], note="float8 e4m3fn per axis, saturating, symbolic batch"),
        Sample([TensorType((5,), F32), TensorType((), F32)], attrs={"output_dtype": "float8e5m2", "saturate": False},
               domain=[np.array([0.3, -7.0, 1e6, 2.0, -0.001]), np.array(0.25)], note="float8 e5m2 without saturation"),
        Sample([TensorType((2, 4), F32), TensorType((2, 2), F32)], attrs={"output_dtype": "float8e4m3fn", "block_size": 2},
               domain=["any", np.array([[0.5, 1.0], [0.25, 2.0]])], note="float8, blocked"),
    ],
))

register_op(OpDef(
    name="dequantize_linear", family="quantize", num_inputs=(2, 3), attrs=dict(_Q_ATTRS),
    type_rule=_dequantize_rule, reference=_dequantize_ref, flops=_n_flops(2), vjp=NOT_DIFFERENTIABLE,
    nondiff_inputs=(0, 1, 2),
    doc="(x - zero_point) * scale: ONNX DequantizeLinear (per tensor, per axis, blocked).",
    samples=[
        Sample([TensorType((3, 4), "uint8"), TensorType((), F32), TensorType((), "uint8")],
               domain=[_i(0, 256), np.array(0.02), np.array(128)]),
        Sample([TensorType(("batch", 3, 2), "int8"), TensorType((3,), F32), TensorType((3,), "int8")],
               bind={"batch": 2}, domain=[_i(-128, 128), np.array([0.01, 0.05, 0.1]), np.array([0, -3, 5])],
               note="per axis, symbolic batch"),
        Sample([TensorType((2, 5), "int8"), TensorType((2, 3), F32), TensorType((2, 3), "int8")],
               attrs={"axis": 1, "block_size": 2}, domain=[_i(-128, 128), "positive", _i(-4, 4)],
               note="blocked, ragged last block"),
        Sample([TensorType((4,), "int32"), TensorType((), F32)], domain=[_i(-1000, 1000), np.array(0.5)],
               note="int32 (a bias), no zero point"),
        Sample([TensorType((2, 3), "int16"), TensorType((), F32), TensorType((), "int16")],
               domain=[_i(-30000, 30000), np.array(1e-3), np.array(-7)], note="int16"),
        Sample([TensorType(("batch", 3), "float8e4m3fn"), TensorType((), F32), TensorType((), "float8e4m3fn")],
               bind={"batch": 2}, domain=[np.array([[0.5, -448.0, 3.0], [0.0, 1.75, -2.0]], ml_dtypes.float8_e4m3fn),
                                          np.array(2.0), np.array(1.0, ml_dtypes.float8_e4m3fn)],
               note="float8 e4m3fn, zero point, symbolic batch"),
        Sample([TensorType((4,), "float8e5m2"), TensorType((2,), F32)], attrs={"axis": 0, "block_size": 2},
               domain=[np.array([0.5, -6.0, 3.0, 1.5], ml_dtypes.float8_e5m2), np.array([0.5, 2.0])],
               note="float8 e5m2, blocked"),
    ],
))


def quantize_linear(x, scale, zero_point=None, *, axis: int = 1, block_size: int = 0, output_dtype=None,
                    saturate: bool = True):
    """ONNX QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)``; to float8/float4
    ``cast(x / scale + zero_point)`` (``saturate=False``: out-of-range values become inf/NaN)."""
    args = (x, scale) if zero_point is None else (x, scale, zero_point)
    extra = {} if saturate else {"saturate": False}
    return apply("quantize_linear", *args, axis=axis, block_size=block_size, output_dtype=output_dtype, **extra)


def dequantize_linear(x, scale, zero_point=None, *, axis: int = 1, block_size: int = 0):
    """ONNX DequantizeLinear: ``(x - zero_point) * scale`` in the scale's dtype."""
    args = (x, scale) if zero_point is None else (x, scale, zero_point)
    return apply("dequantize_linear", *args, axis=axis, block_size=block_size)


# ---- dynamic_quantize_linear ------------------------------------------------------------------------

def _dql_rule(ts, attrs):
    _require(ts[0], (F32,), "the input", "dynamic_quantize_linear")
    return [TensorType(ts[0].shape, "uint8"), TensorType((), F32), TensorType((), "uint8")]


def dynamic_scale_np(x: np.ndarray) -> tuple[np.float32, np.uint8]:
    """DynamicQuantizeLinear's uint8 scale and zero point for ``x`` (the range always holds 0).
    A zero range (an all-zero or empty tensor) gets scale 1, as onnxruntime gives it."""
    x = x.astype(np.float32)
    lo = np.float32(min(0.0, float(x.min()) if x.size else 0.0))
    hi = np.float32(max(0.0, float(x.max()) if x.size else 0.0))
    scale = np.float32((hi - lo) / np.float32(255))
    if scale == 0:
        return np.float32(1.0), np.uint8(0)
    zp = np.clip(np.rint(np.float32(0) - lo / scale), 0, 255)
    return scale, np.uint8(zp)


def _dql_ref(xs, attrs, env=None):
    scale, zp = dynamic_scale_np(xs[0])
    return [quantize_np(xs[0], scale, zp, "uint8"), np.asarray(scale, np.float32), np.asarray(zp, np.uint8)]


register_op(OpDef(
    name="dynamic_quantize_linear", family="quantize", num_inputs=(1, 1), type_rule=_dql_rule,
    reference=_dql_ref, flops=_n_flops(5), vjp=NOT_DIFFERENTIABLE,
    doc="ONNX DynamicQuantizeLinear: uint8 data, scale and zero point from the tensor's range (holding 0).",
    samples=[
        Sample([TensorType((3, 4), F32)]),
        Sample([TensorType(("batch", 5), F32)], bind={"batch": 3}, domain=["positive"], note="all positive"),
        Sample([TensorType((2, 2), F32)], domain=[np.zeros((2, 2))], note="all zero: scale 1"),
    ],
))


def dynamic_quantize_linear(x):
    """``(y, scale, zero_point)``: ONNX DynamicQuantizeLinear (uint8, the range of ``x`` and 0)."""
    return apply("dynamic_quantize_linear", x)


# ---- matmul_integer / conv_integer -----------------------------------------------------------------------

_INT8 = ("uint8", "int8")


def _matmul_int_rule(ts, attrs):
    op = "matmul_integer"
    a, b = ts[0], ts[1]
    _require(a, _INT8, "A", op)
    _require(b, _INT8, "B", op)
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"{op}: A and B must have rank >= 2, got {a} and {b}")
    for i, (t, zp) in enumerate(zip((a, b), ts[2:])):
        if zp.dtype != t.dtype or not _per_tensor(zp):
            raise ShapeError(f"{op}: the zero point of {'AB'[i]} must be a {t.dtype} scalar, got {zp}",
                             hint="onnxruntime's MatMulInteger takes per-tensor zero points only")
    (out,) = _linalg._matmul_rule([a.with_dtype(F32), b.with_dtype(F32)], {})
    return [out.with_dtype("int32")]


def _centred(x: np.ndarray, zp: np.ndarray | None) -> np.ndarray:
    x = x.astype(np.int64)
    return x if zp is None else x - np.asarray(zp).astype(np.int64).reshape(())


def _matmul_int_ref(xs, attrs, env=None):
    a = _centred(xs[0], xs[2] if len(xs) > 2 else None)
    b = _centred(xs[1], xs[3] if len(xs) > 3 else None)
    return [np.matmul(a, b).astype(np.int32)]


def _mm_flops(ins, outs, attrs):
    return 2 * int(ins[0].shape[-1]) * numel(outs[0])


register_op(OpDef(
    name="matmul_integer", family="quantize", num_inputs=(2, 4), type_rule=_matmul_int_rule,
    reference=_matmul_int_ref, flops=_mm_flops, vjp=NOT_DIFFERENTIABLE,
    doc="ONNX MatMulInteger: (A - a_zero_point) @ (B - b_zero_point) accumulated in int32.",
    samples=[
        Sample([TensorType((3, 4), "uint8"), TensorType((4, 5), "uint8"), TensorType((), "uint8"),
                TensorType((), "uint8")], domain=[_i(0, 256), _i(0, 256), np.array(12), np.array(200)]),
        Sample([TensorType(("batch", 2, 3), "uint8"), TensorType((3, 4), "int8")], bind={"batch": 2},
               domain=[_i(0, 256), _i(-128, 128)], note="uint8 x int8, broadcast batch"),
        Sample([TensorType((2, 3, 8), "int8"), TensorType((2, 8, 2), "int8"), TensorType((1,), "int8")],
               domain=[_i(-128, 128), _i(-128, 128), np.array([-5])], note="int8, A zero point only"),
    ],
))


def _conv_int_rule(ts, attrs):
    op = "conv_integer"
    x, w = ts[0], ts[1]
    _require(x, _INT8, "the input", op)
    _require(w, _INT8, "the weight", op)
    (out,) = _conv2d_rule([x.with_dtype(F32), w.with_dtype(F32)], attrs)
    if len(ts) > 2 and (ts[2].dtype != x.dtype or not _per_tensor(ts[2])):
        raise ShapeError(f"{op}: the input zero point must be a {x.dtype} scalar, got {ts[2]}")
    if len(ts) > 3:
        zp = ts[3]
        if zp.dtype != w.dtype or not (_per_tensor(zp) or tuple(zp.shape) == (w.shape[0],)):
            raise ShapeError(f"{op}: the weight zero point must be a {w.dtype} scalar or have one value per "
                             f"output channel ({w.shape[0]},), got {zp}")
    return [out.with_dtype("int32")]


def _channel(p, rank=4):
    p = np.asarray(p)
    return p.reshape(()) if p.size == 1 else p.reshape([1, -1] + [1] * (rank - 2))


def _w_centred(w, zp):
    w = w.astype(np.int64)
    if zp is None:
        return w
    zp = np.asarray(zp).astype(np.int64)
    return w - (zp.reshape(()) if zp.size == 1 else zp.reshape(-1, 1, 1, 1))


def _conv_int_ref(xs, attrs, env=None):
    x = _centred(xs[0], xs[2] if len(xs) > 2 else None)
    w = _w_centred(xs[1], xs[3] if len(xs) > 3 else None)
    # float64 holds every int32 accumulator exactly (|products| < 2^16, sums < 2^31): BLAS speed, exact
    y = _conv2d_np(x.astype(np.float64), w.astype(np.float64), attrs)
    return [np.rint(y).astype(np.int32)]


def _conv_int_flops(ins, outs, attrs, w_index=1):
    w = ins[w_index]
    return 2 * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3]) * numel(outs[0])


register_op(OpDef(
    name="conv_integer", family="quantize", num_inputs=(2, 4), attrs=dict(_CONV_ATTRS),
    type_rule=_conv_int_rule, reference=_conv_int_ref, flops=_conv_int_flops, vjp=NOT_DIFFERENTIABLE,
    doc="ONNX ConvInteger (2-D, NCHW): conv2d of the zero-point-centred integers, accumulated in int32.",
    samples=[
        Sample([TensorType((1, 2, 5, 5), "uint8"), TensorType((3, 2, 3, 3), "uint8"), TensorType((), "uint8")],
               attrs={"pads": [1, 1, 1, 1]}, domain=[_i(0, 256), _i(0, 256), np.array(100)]),
        Sample([TensorType(("batch", 2, 6, 5), "uint8"), TensorType((4, 1, 2, 2), "int8"), TensorType((), "uint8"),
                TensorType((4,), "int8")], attrs={"strides": [2, 1], "groups": 2}, bind={"batch": 2},
               domain=[_i(0, 256), _i(-128, 128), np.array(7), np.array([0, 1, -2, 3])],
               note="per-channel weight zero points, groups, symbolic batch"),
        Sample([TensorType((1, 1, 4, 4), "int8"), TensorType((2, 1, 2, 2), "int8")],
               attrs={"dilations": [2, 1]}, domain=[_i(-128, 128), _i(-128, 128)], note="int8, dilation"),
        Sample([TensorType(("batch", 2, "h", "w"), "uint8"), TensorType((3, 2, 3, 3), "uint8"), TensorType((), "uint8")],
               attrs={"strides": [2, 2], "pads": [1, 1, 1, 1]}, bind={"batch": 2, "h": 7, "w": 6},
               domain=[_i(0, 256), _i(0, 256), np.array(100)], note="symbolic H, W: floor((h+1)/2)"),
    ],
))


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """ONNX MatMulInteger: int32 ``(a - a_zero_point) @ (b - b_zero_point)``."""
    args = [a, b] + [z for z in (a_zero_point, b_zero_point) if z is not None]
    if a_zero_point is None and b_zero_point is not None:
        raise ShapeError("matmul_integer: give a_zero_point (0) when b_zero_point is given")
    return apply("matmul_integer", *args)


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, strides=(1, 1), pads=(0, 0, 0, 0),
                 dilations=(1, 1), groups: int = 1):
    """ONNX ConvInteger (2-D, NCHW), int32 result."""
    if x_zero_point is None and w_zero_point is not None:
        raise ShapeError("conv_integer: give x_zero_point (0) when w_zero_point is given")
    args = [x, w] + [z for z in (x_zero_point, w_zero_point) if z is not None]
    return apply("conv_integer", *args, strides=list(strides), pads=list(pads), dilations=list(dilations),
                 groups=groups)


# ---- qlinear_matmul / qlinear_conv -------------------------------------------------------------------

# (input, weight) dtype pairs onnxruntime has QLinearMatMul/QLinearConv kernels for
_QLINEAR_PAIRS = (("uint8", "uint8"), ("uint8", "int8"), ("int8", "int8"))


def _check_qlinear(ts, op, per_channel_b: int | None):
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = ts[:8]
    if (a.dtype, b.dtype) not in _QLINEAR_PAIRS:
        raise DTypeError(f"{op}: the operands must be one of "
                         f"{', '.join('/'.join(p) for p in _QLINEAR_PAIRS)}, got {a.dtype} and {b.dtype}")
    scales = (a_s, b_s, y_s)
    for s in scales:
        _require(s, _SCALE_DTYPES, "scales", op)
    if len({s.dtype for s in scales}) > 1:
        raise DTypeError(f"{op}: the scales must share one dtype, got {', '.join(str(s) for s in scales)}")
    for name, s, zp, t in (("a" if per_channel_b is None else "x", a_s, a_zp, a), ("y", y_s, y_zp, None)):
        if not _per_tensor(s) or not _per_tensor(zp):
            raise ShapeError(f"{op}: {name}'s scale and zero point must be per tensor, got {s} and {zp}")
    if a_zp.dtype != a.dtype or y_zp.dtype not in _INT8:
        raise DTypeError(f"{op}: zero points must have their operand's dtype (int8/uint8), got {a_zp} and {y_zp}")
    if y_zp.dtype != a.dtype:
        raise DTypeError(f"{op}: the output zero point must have the input's dtype {a.dtype}, got {y_zp}")
    if b_zp.dtype != b.dtype:
        raise DTypeError(f"{op}: the weight zero point must have the weight's dtype {b.dtype}, got {b_zp}")
    if tuple(b_zp.shape) != tuple(b_s.shape):
        raise ShapeError(f"{op}: the weight zero point must have the weight scale's shape {b_s}, got {b_zp}")
    if not _per_tensor(b_s) and (per_channel_b is None or tuple(b_s.shape) != (per_channel_b,)):
        raise ShapeError(f"{op}: the weight scale must be per tensor"
                         + ("" if per_channel_b is None else f" or per output channel ({per_channel_b},)")
                         + f", got {b_s}")


def _qlinear_mm_rule(ts, attrs):
    op = "qlinear_matmul"
    _check_qlinear(ts, op, None)
    a, b = ts[0], ts[3]
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"{op}: a and b must have rank >= 2, got {a} and {b}")
    (out,) = _linalg._matmul_rule([a.with_dtype(F32), b.with_dtype(F32)], {})
    return [out.with_dtype(ts[7].dtype)]


def requantize_np(acc: np.ndarray, multiplier, y_zp: np.ndarray) -> np.ndarray:
    """``saturate(round_half_even(acc * multiplier) + y_zp)``: int32 accumulators to the output
    type, the multiplier in float32 (onnxruntime's requantisation)."""
    dtype = _dt.from_numpy_dtype(y_zp.dtype)
    lo, hi = qrange(dtype)
    y = np.rint(acc.astype(np.float32) * np.asarray(multiplier, np.float32)) + np.float32(y_zp.reshape(()))
    return np.clip(y, lo, hi).astype(y_zp.dtype)


def _ratio(a_s, b_s, y_s):
    f = np.float32
    return (np.asarray(a_s).astype(f).reshape(()) * np.asarray(b_s).astype(f)) / np.asarray(y_s).astype(f).reshape(())


def _qlinear_mm_ref(xs, attrs, env=None):
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = xs
    acc = np.matmul(_centred(a, a_zp), _centred(b, b_zp))
    return [requantize_np(acc, _ratio(a_s, b_s, y_s).reshape(()), y_zp)]


def _sc(v):
    return np.array(v, np.float32)


register_op(OpDef(
    name="qlinear_matmul", family="quantize", num_inputs=(8, 8), type_rule=_qlinear_mm_rule,
    reference=_qlinear_mm_ref, flops=lambda ins, outs, attrs: 2 * int(ins[0].shape[-1]) * numel(outs[0]),
    vjp=NOT_DIFFERENTIABLE,
    doc="ONNX QLinearMatMul: requantize((a - a_zp) @ (b - b_zp), a_scale * b_scale / y_scale, y_zp).",
    samples=[
        Sample([TensorType((2, 4), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((4, 3), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((), F32), TensorType((), "uint8")],
               domain=[_i(0, 256), _sc(0.0066), np.array(113), _i(0, 256), _sc(0.00705), np.array(114),
                       _sc(0.0107), np.array(118)]),
        Sample([TensorType(("batch", 2, 4), "int8"), TensorType((1,), F32), TensorType((1,), "int8"),
                TensorType((4, 3), "int8"), TensorType((), F32), TensorType((), "int8"),
                TensorType((), F32), TensorType((), "int8")], bind={"batch": 2},
               domain=[_i(-128, 128), _sc([0.01]), np.array([-3]), _i(-128, 128), _sc(0.02), np.array(0),
                       _sc(0.05), np.array(-9)], note="int8, symbolic batch, broadcast b"),
    ],
))


def _qlinear_conv_rule(ts, attrs):
    op = "qlinear_conv"
    x, w = ts[0], ts[3]
    if w.rank != 4:
        raise ShapeError(f"{op}: the weight must be rank 4 (out, in/groups, kh, kw), got {w}")
    _check_qlinear(ts, op, w.shape[0])
    (out,) = _conv2d_rule([x.with_dtype(F32), w.with_dtype(F32)], attrs)
    if len(ts) == 9:
        if ts[8].dtype != "int32" or tuple(ts[8].shape) != (w.shape[0],):
            raise ShapeError(f"{op}: the bias must be int32 with one value per output channel ({w.shape[0]},), "
                             f"got {ts[8]}")
    return [out.with_dtype(ts[7].dtype)]


def _qlinear_conv_ref(xs, attrs, env=None):
    x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp = xs[:8]
    xc = _centred(x, x_zp).astype(np.float64)
    wc = _w_centred(w, w_zp).astype(np.float64)
    acc = np.rint(_conv2d_np(xc, wc, attrs)).astype(np.int64)
    if len(xs) == 9:
        acc = acc + xs[8].astype(np.int64).reshape(1, -1, 1, 1)
    return [requantize_np(acc, _channel(_ratio(x_s, w_s, y_s)), y_zp)]


register_op(OpDef(
    name="qlinear_conv", family="quantize", num_inputs=(8, 9), attrs=dict(_CONV_ATTRS),
    type_rule=_qlinear_conv_rule, reference=_qlinear_conv_ref,
    flops=lambda ins, outs, attrs: _conv_int_flops(ins, outs, attrs, 3), vjp=NOT_DIFFERENTIABLE,
    doc="ONNX QLinearConv (2-D, NCHW): requantized conv of zero-point-centred integers (+ int32 bias); "
        "per-output-channel weight scales and zero points.",
    samples=[
        Sample([TensorType((1, 2, 5, 5), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((3, 2, 3, 3), "int8"), TensorType((3,), F32), TensorType((3,), "int8"),
                TensorType((), F32), TensorType((), "uint8"), TensorType((3,), "int32")],
               attrs={"pads": [1, 1, 1, 1]},
               domain=[_i(0, 256), _sc(0.02), np.array(120), _i(-64, 64), _sc([0.003, 0.005, 0.001]),
                       np.zeros(3), _sc(0.3), np.array(128), _i(-2000, 2000)],
               note="per channel, bias; 7-bit weights: onnxruntime's AVX2 u8*s8 kernel saturates pairs of "
                    "full-range products in int16 (its quantizer's reduce_range), the reference does not"),
        Sample([TensorType(("batch", 2, 6, 5), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((4, 1, 2, 2), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((), F32), TensorType((), "uint8")], attrs={"strides": [2, 1], "groups": 2},
               bind={"batch": 2}, domain=[_i(0, 256), _sc(0.05), np.array(3), _i(0, 256), _sc(0.01),
                                          np.array(128), _sc(0.4), np.array(10)],
               note="uint8 weights, groups, symbolic batch"),
        Sample([TensorType(("batch", 2, "h", "w"), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((4, 1, 2, 2), "uint8"), TensorType((), F32), TensorType((), "uint8"),
                TensorType((), F32), TensorType((), "uint8")], attrs={"strides": [2, 1], "groups": 2},
               bind={"batch": 2, "h": 7, "w": 5}, domain=[_i(0, 256), _sc(0.05), np.array(3), _i(0, 256), _sc(0.01),
                                                      np.array(128), _sc(0.4), np.array(10)],
               note="symbolic H, W: floor((h-2)/2)+1"),
    ],
))


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """ONNX QLinearMatMul."""
    return apply("qlinear_matmul", a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, bias=None, *,
                 strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups: int = 1):
    """ONNX QLinearConv (2-D, NCHW)."""
    args = [x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point]
    if bias is not None:
        args.append(bias)
    return apply("qlinear_conv", *args, strides=list(strides), pads=list(pads), dilations=list(dilations),
                 groups=groups)

