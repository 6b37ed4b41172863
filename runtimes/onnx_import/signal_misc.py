"""Importers for ONNX ops that are plain compositions of registry ops (issue 19's cheap ops):

- ``HannWindow`` / ``HammingWindow`` / ``BlackmanWindow``: the generalised cosine window
  ``a0 - a1 cos(2 pi n / D) + a2 cos(4 pi n / D)`` over ``n = arange(size)`` with ``D = size``
  (``periodic=1``, the default) or ``size - 1`` (symmetric), computed in float64 and cast to
  ``output_datatype``. ``size`` must be a constant (it is the result's length).
- ``GlobalLpPool``: ``(sum over the spatial axes of |x|^p) ^ (1/p)`` with the spatial axes kept as 1.
- ``DFT`` (matmuls with float64 cos/sin tables) and ``STFT`` (constant-index frames, window, DFT).
- ``ReverseSequence``: reverses the first ``sequence_lens[b]`` entries along ``time_axis`` of each
  batch entry ``b``: one ``gather`` from the flattened input at ``where(t < L_b, L_b - 1 - t, t)``
  (``sequence_lens`` may be a run-time input; the shape of ``x`` must be static).
- ``CenterCropPad``: a ``slice`` and a zero ``pad``; ``SwiGLU``: ``A * sigmoid(alpha A) * B``.
- ``Pad`` with ``mode="wrap"`` (called from the Pad importer): one ``gather`` per padded axis at the
  constant indices ``(arange(-before, n + after)) mod n`` (negative pads crop first).
"""
from __future__ import annotations

import numpy as np

from .importer import attrs_of, importer, onnx_dtype, unsupported

__all__ = ["wrap_pad"]

# ONNX's coefficients (onnx/defs/math/defs.cc: HannWindow, HammingWindow, BlackmanWindow)
_WINDOWS = {"HannWindow": (0.5, 0.5, 0.0), "HammingWindow": (25.0 / 46.0, 21.0 / 46.0, 0.0),
            "BlackmanWindow": (0.42, 0.5, 0.08)}


@importer(*_WINDOWS)
def _window(ctx, node):
    a = attrs_of(node)
    size = np.asarray(ctx.need_const(node, 0, "size")).reshape(-1)
    if size.size != 1 or size.dtype.kind not in "iu" or int(size[0]) < 0:
        unsupported(node, f"size must be one non-negative integer, got {size.tolist()}")
    n = int(size[0])
    dtype = onnx_dtype(int(a.get("output_datatype", 1)))
    periodic = int(a.get("periodic", 1))
    if periodic not in (0, 1):
        unsupported(node, f"periodic={periodic} (must be 0 or 1)")
    a0, a1, a2 = _WINDOWS[node.op_type]
    e = ctx.emit
    denom = n if periodic else n - 1
    t = e("arange", [], start=0, stop=n, step=1, dtype="float64")
    # denom 0 (a one-point symmetric window): ONNX's reference divides by zero only for n = 1, giving NaN
    # angles; torch and NumPy give [1.0]. The angle is 0 there, so every window is a0 - a1 + a2 == 0.
    step = 2.0 * np.pi / denom if denom else 0.0
    ang = e("mul", [t, ctx.scalar(step, "float64")])
    w = e("sub", [ctx.scalar(a0, "float64"), e("mul", [ctx.scalar(a1, "float64"), e("cos", [ang])])])
    if a2:
        two = e("mul", [ang, ctx.scalar(2.0, "float64")])
        w = e("add", [w, e("mul", [ctx.scalar(a2, "float64"), e("cos", [two])])])
    return [ctx.cast(w, dtype)]


@importer("GlobalLpPool")
def _global_lp_pool(ctx, node):
    x = ctx.input(node, 0)
    p = int(attrs_of(node).get("p", 2))
    if p < 1:
        unsupported(node, f"p={p} (must be >= 1)")
    rank = len(x.type.shape)
    if rank < 3:
        unsupported(node, f"input of rank {rank} (needs (N, C, spatial...))")
    dt = x.type.dtype
    e = ctx.emit
    if p == 2:
        powed = e("mul", [x, x])
    elif p == 1:
        powed = e("abs", [x])
    else:
        powed = e("pow", [e("abs", [x]), ctx.scalar(float(p), dt)])
    total = e("sum", [powed], axes=list(range(2, rank)), keepdims=True)
    if p == 1:
        return [total]
    if p == 2:
        return [e("sqrt", [total])]
    return [e("pow", [total, ctx.scalar(1.0 / p, dt)])]


@importer("ReverseSequence")
def _reverse_sequence(ctx, node):
    a = attrs_of(node)
    x, lens = ctx.input(node, 0), ctx.input(node, 1)
    shape = x.type.shape
    rank = len(shape)
    if rank < 2 or not all(isinstance(d, int) for d in shape):
        unsupported(node, f"input {x.type}: needs a static shape of rank >= 2")
    ta, ba = int(a.get("time_axis", 0)), int(a.get("batch_axis", 1))
    if {ta, ba} != {0, 1}:
        unsupported(node, f"time_axis={ta}, batch_axis={ba} (ONNX allows 0 and 1, one each)")
    ctx.require((rank + 1, *shape), 8, "the index grid")
    grid = np.indices(shape, dtype=np.int64)
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(rank)]
    base = sum(grid[d] * strides[d] for d in range(rank) if d != ta)
    e = ctx.emit
    t = ctx.materialize(grid[ta], "reverse_sequence_time")
    lb = e("gather", [ctx.cast(lens, "int64"), ctx.materialize(grid[ba], "reverse_sequence_batch")], axis=0)
    rev = e("sub", [e("sub", [lb, ctx.scalar(1, "int64")]), t])
    src = e("where", [e("less", [t, lb]), rev, t])
    flat = e("add", [e("mul", [src, ctx.scalar(strides[ta], "int64")]),
                     ctx.materialize(np.asarray(base, np.int64), "reverse_sequence_base")])
    return [e("gather", [e("reshape", [x], shape=[-1]), flat], axis=0)]


# ---- DFT: matrix products with constant cos/sin tables -----------------------------------------------

def _dft_tables(n_in: int, length: int, inverse: bool, onesided: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n_in, K) real and imaginary parts of the transform matrix, in float64.

    Forward: ``W[n, k] = exp(-2 pi i k n / L)`` for k < K (L, or L//2 + 1 when one-sided); inverse:
    ``exp(+2 pi i k n / L) / L``. Inverse one-sided (irfft): the input is the first L//2 + 1 bins of a
    Hermitian spectrum and the output is real: every bin but DC (and Nyquist for even L) counts twice.
    Rows past what the transform reads (n >= L, or >= L//2 + 1 for irfft) are zero: NumPy's ``n=``
    truncation; shorter inputs are zero-padded by simply having fewer rows.
    """
    if inverse and onesided:
        k = np.arange(n_in, dtype=np.float64)[:, None]
        t = np.arange(length, dtype=np.float64)[None, :]
        ang = 2.0 * np.pi * k * t / length
        weight = np.where((k == 0) | ((length % 2 == 0) & (k == length // 2)), 1.0, 2.0) / length
        live = k <= length // 2
        return np.where(live, weight * np.cos(ang), 0.0), np.where(live, weight * np.sin(ang), 0.0)
    n_out = length // 2 + 1 if onesided else length
    t = np.arange(n_in, dtype=np.float64)[:, None]
    k = np.arange(n_out, dtype=np.float64)[None, :]
    ang = 2.0 * np.pi * k * t / length
    sign, scale = (1.0, 1.0 / length) if inverse else (-1.0, 1.0)
    live = t < length
    return np.where(live, scale * np.cos(ang), 0.0), np.where(live, sign * scale * np.sin(ang), 0.0)


@importer("DFT")
def _dft(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    shape = x.type.shape
    rank = len(shape)
    if rank < 2 or shape[-1] not in (1, 2):
        unsupported(node, f"input {x.type}: the last axis must hold 1 (real) or 2 (real, imaginary) entries")
    if ctx.opset >= 20:
        axis = int(np.asarray(ctx.need_const(node, 2, "axis")).reshape(-1)[0]) if ctx.has(node, 2) else -2
    else:
        axis = int(a.get("axis", 1))
    if not -rank <= axis < rank - 1 and not -rank <= axis < 0:
        unsupported(node, f"axis {axis} for an input of rank {rank}")
    axis %= rank
    if axis == rank - 1:
        unsupported(node, "axis names the real/imaginary axis")
    n_in = shape[axis]
    if not isinstance(n_in, int):
        unsupported(node, f"a symbolic signal axis ({x.type}, axis {axis})")
    inverse, onesided = bool(int(a.get("inverse", 0))), bool(int(a.get("onesided", 0)))
    if ctx.has(node, 1):
        length = int(np.asarray(ctx.need_const(node, 1, "dft_length")).reshape(-1)[0])
    else:
        length = 2 * (n_in - 1) if inverse and onesided else n_in
    if length < 1:
        unsupported(node, f"dft_length {length} (must be >= 1)")
    if onesided and not inverse and shape[-1] == 2:
        unsupported(node, "onesided with a complex input (ONNX allows it for real input only)")
    return [_dft_core(ctx, x, axis, length, inverse, onesided)]


def _dft_core(ctx, x, axis: int, length: int, inverse: bool, onesided: bool):
    """ONNX DFT of ``x`` (``(..., 1|2)``, static signal axis ``axis`` >= 0) as registry ops."""
    shape = x.type.shape
    rank = len(shape)
    cos_t, sin_t = _dft_tables(shape[axis], length, inverse, onesided)
    dt = x.type.dtype
    cdt = "float64"  # the tables and products in float64 (like onnx's reference), rounded once at the end
    e = ctx.emit
    cos_v = ctx.cast(ctx.materialize(cos_t.astype(cdt), "dft_cos"), cdt)
    sin_v = ctx.cast(ctx.materialize(sin_t.astype(cdt), "dft_sin"), cdt)
    perm = [d for d in range(rank - 1) if d != axis] + [axis]   # signal axis last, re/im axis dropped
    back = list(np.argsort(perm + [rank - 1]))[:-1]

    def part(i):
        p = e("slice", [ctx.cast(x, cdt)], starts=[i], ends=[i + 1], axes=[rank - 1])
        return e("transpose", [e("squeeze", [p], axes=[rank - 1])], perm=perm)

    xr = part(0)
    xi = part(1) if shape[-1] == 2 else None
    out_r = e("matmul", [xr, cos_v])
    out_i = e("matmul", [xr, sin_v])
    if xi is not None:  # (xr + i xi)(c + i s) = (xr c - xi s) + i (xr s + xi c)
        out_r = e("sub", [out_r, e("matmul", [xi, sin_v])])
        out_i = e("add", [out_i, e("matmul", [xi, cos_v])])
    parts = [out_r] if inverse and onesided else [out_r, out_i]
    parts = [e("unsqueeze", [e("transpose", [p], perm=[int(b) for b in back])], axes=[rank - 1]) for p in parts]
    y = parts[0] if len(parts) == 1 else e("concat", parts, axis=rank - 1)
    return ctx.cast(y, dt)


@importer("STFT")
def _stft(ctx, node):
    """STFT(signal (B, T, 1|2), frame_step, window?, frame_length?): frames gathered at constant
    indices ``f * step + l`` ((F, L), F = 1 + (T - L) // step), times the window (which may be a run-time
    input), then the DFT over the frame axis (one-sided by default: real signals only)."""
    a = attrs_of(node)
    x = ctx.input(node, 0)
    shape = x.type.shape
    if len(shape) != 3 or shape[-1] not in (1, 2) or not isinstance(shape[1], int):
        unsupported(node, f"signal {x.type}: needs (batch, static length, 1 or 2)")
    step = int(np.asarray(ctx.need_const(node, 1, "frame_step")).reshape(-1)[0])
    window = ctx.input(node, 2) if ctx.has(node, 2) else None
    if ctx.has(node, 3):
        length = int(np.asarray(ctx.need_const(node, 3, "frame_length")).reshape(-1)[0])
    elif window is not None and isinstance(window.type.shape[0], int):
        length = int(window.type.shape[0])
    else:
        unsupported(node, "neither frame_length nor a window of static length gives the frame length")
    if window is not None and window.type.shape[0] != length:
        unsupported(node, f"window {window.type} does not have frame_length {length} entries")
    onesided = bool(int(a.get("onesided", 1)))
    if onesided and shape[-1] == 2:
        unsupported(node, "onesided with a complex signal (ONNX allows it for real signals only)")
    if step < 1 or not 1 <= length <= shape[1]:
        unsupported(node, f"frame_step {step}, frame_length {length} for a signal of length {shape[1]}")
    frames = 1 + (shape[1] - length) // step
    idx = (np.arange(frames, dtype=np.int64)[:, None] * step + np.arange(length, dtype=np.int64)[None, :])
    e = ctx.emit
    y = e("gather", [x, ctx.materialize(idx, "stft_frames")], axis=1)           # (B, F, L, C)
    if window is not None:
        w = e("reshape", [ctx.cast(window, x.type.dtype)], shape=[1, 1, length, 1])
        y = e("mul", [y, w])
    return [_dft_core(ctx, y, 2, length, False, onesided)]


@importer("MelWeightMatrix")
def _mel_weight_matrix(ctx, node):
    """MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz): every
    input is a constant, so the (dft_length // 2 + 1, num_mel_bins) triangular filter bank is computed at
    import time, following the operator's definition (onnx/defs/math/defs.cc) step by step: mel edges
    spaced by (high - low) / (num_mel_bins + 2), mapped to bins floor((dft_length + 1) * hz / sample_rate)."""
    a = attrs_of(node)
    names = ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")
    mels, dft_len, rate, lo, hi = (np.asarray(ctx.need_const(node, i, n)).reshape(-1)[0] for i, n in enumerate(names))
    mels, dft_len = int(mels), int(dft_len)
    if mels < 1 or dft_len < 1 or float(rate) <= 0 or not 0 <= float(lo) <= float(hi):
        unsupported(node, f"num_mel_bins={mels}, dft_length={dft_len}, sample_rate={rate}, edges [{lo}, {hi}]")
    n_spec = dft_len // 2 + 1
    ctx.require((n_spec, mels), 8, "the mel weight matrix")
    lo_mel = 2595.0 * np.log1p(float(lo) / 700.0) / np.log(10.0)
    hi_mel = 2595.0 * np.log1p(float(hi) / 700.0) / np.log(10.0)
    step = (hi_mel - lo_mel) / (mels + 2)
    hz = 700.0 * np.expm1((np.arange(mels + 2) * step + lo_mel) / 2595.0 * np.log(10.0))
    bins = (((dft_len + 1) * hz) // rate).astype(np.int64)
    if bins.max() >= n_spec or bins.min() < 0:
        unsupported(node, f"upper_edge_hertz {hi} maps past the {n_spec} spectrogram bins")
    out = np.zeros((n_spec, mels))
    for i in range(mels):
        left, center, right = (int(b) for b in bins[i:i + 3])
        if center == left:
            out[center, i] = 1.0
        else:
            out[left:center + 1, i] = (np.arange(left, center + 1) - left) / (center - left)
        if right > center:
            out[center:right, i] = (right - np.arange(center, right)) / (right - center)
    dtype = onnx_dtype(int(a.get("output_datatype", 1)))
    from graphforge.dtypes import to_numpy_dtype

    if dtype == "bfloat16":
        return [ctx.cast(ctx.materialize(out.astype(np.float32), "mel_weights"), dtype)]
    return [out.astype(to_numpy_dtype(dtype))]


def wrap_pad(ctx, node, x, pads):
    """Pad ``x`` circularly; ``pads`` = [before0, after0, before1, after1, ...] (ONNX Pad's ``wrap``)."""
    shape = x.type.shape
    for ax, d in enumerate(shape):
        before, after = pads[2 * ax], pads[2 * ax + 1]
        if not before and not after:
            continue
        if not isinstance(d, int) or d < 1:
            unsupported(node, f"wrap padding of axis {ax} of {x.type}: needs a static, non-empty axis")
        # negative pads crop first, and the rest wraps around the cropped extent (onnxruntime's order)
        lo, hi = max(-before, 0), d - max(-after, 0)
        if hi - lo < 1:
            unsupported(node, f"pads ({before}, {after}) remove all of axis {ax} of {x.type}")
        idx = lo + np.arange(-max(before, 0), hi - lo + max(after, 0), dtype=np.int64) % (hi - lo)
        x = ctx.emit("gather", [x, ctx.materialize(idx, "wrap_pad_index")], axis=ax)
    return x


@importer("CenterCropPad")
def _center_crop_pad(ctx, node):
    """CenterCropPad(x, shape): each named axis is cropped (a ``slice`` starting at (dim - size) // 2)
    or zero-padded (``pad`` with (size - dim) // 2 before, the rest after) to its target size."""
    x = ctx.input(node, 0)
    shape = x.type.shape
    rank = len(shape)
    sizes = [int(s) for s in np.asarray(ctx.need_const(node, 1, "shape")).reshape(-1)]
    axes = [int(v) % rank for v in attrs_of(node).get("axes", range(rank))]
    if len(axes) != len(sizes):
        unsupported(node, f"{len(sizes)} target sizes for axes {axes}")
    starts, ends, pads = [0] * rank, [2 ** 63 - 1] * rank, [0] * (2 * rank)
    for ax, size in zip(axes, sizes):
        d = shape[ax]
        if not isinstance(d, int) or size < 0:
            unsupported(node, f"target size {size} for axis {ax} of {x.type} (needs a static axis)")
        if size < d:
            starts[ax] = (d - size) // 2
            ends[ax] = starts[ax] + size
        elif size > d:
            pads[2 * ax] = (size - d) // 2
            pads[2 * ax + 1] = size - d - pads[2 * ax]
    if any(starts) or any(e != 2 ** 63 - 1 for e in ends):
        x = ctx.emit("slice", [x], starts=starts, ends=ends, axes=list(range(rank)))
    if any(pads):
        x = ctx.emit("pad", [x], pads=pads, mode="constant", value=0.0)
    return [x]


@importer("SwiGLU")
def _swiglu(ctx, node):
    """SwiGLU(A, B) = A * sigmoid(alpha * A) * B (same shapes and dtypes, no broadcasting)."""
    x, gate = ctx.input(node, 0), ctx.input(node, 1)
    if x.type != gate.type:
        unsupported(node, f"inputs {x.type} and {gate.type} must have the same type (no broadcasting)")
    alpha = float(attrs_of(node).get("alpha", 1.0))
    e = ctx.emit
    z = x if alpha == 1.0 else e("mul", [x, ctx.scalar(alpha, x.type.dtype)])
    return [e("mul", [e("mul", [x, e("sigmoid", [z])]), gate])]
