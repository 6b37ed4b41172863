"""Deformable convolution: ``deform_conv2d`` (ONNX DeformConv, torchvision ``deform_conv2d``).

``deform_conv2d(x, w, offset, bias?, mask?)``: ``x`` ``(N, C, H, W)``, ``w`` ``(O, C / group, kh, kw)``,
``offset`` ``(N, offset_group * 2 * kh * kw, oh, ow)`` (per kernel tap a (dy, dx) pair), ``bias`` ``(O,)``,
``mask`` ``(N, offset_group * kh * kw, oh, ow)`` (DCNv2's modulation; ones when absent). Each kernel tap
of each output position samples ``x`` bilinearly at its regular position plus its offset, zeros outside
the map (onnx's reference: GridSample with align_corners and zeros padding, in pixel units); the
samples, times the mask, are contracted with ``w`` like a grouped convolution. Spatial dims, channels
and the kernel are static; the batch may be symbolic.

A composite: the sampling is written once against an array namespace (``vision_roi``'s), NumPy for the
reference and graphforge ops (gathers, an einsum) for the decomposition, whose gradient is the VJP.
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
from .vision_roi import _GF, _NP
# modules, not names: the op families use each other's functions (looked up at call time)
from . import contraction as _contraction
from . import creation as _creation
from . import elementwise as _ew
from . import shape_ops as _shape_ops

__all__ = ["deform_conv2d"]


class _NPD(_NP):
    @staticmethod
    def einsum(spec, a, b):
        return np.einsum(spec, a, b)

    @staticmethod
    def add_bias(y, b):
        return y + b.reshape(1, -1, 1, 1)

    @staticmethod
    def select(a, axis, j):
        return np.take(a, j, axis=axis)


class _GFD(_GF):
    @staticmethod
    def einsum(spec, a, b):
        return _contraction.einsum(spec, a, b)

    @staticmethod
    def add_bias(y, b):
        return y + _GF.reshape(b, [1, -1, 1, 1])

    @staticmethod
    def select(a, axis, j):
        return _shape_ops.squeeze(_shape_ops.slice(a, [j], [j + 1], [axis]), [axis])


def _out_size(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - ((k - 1) * d + 1)) // s + 1


def _deform(F, x, w, offset, bias, mask, attrs, batch):
    c, height, width = (int(d) for d in x.shape[1:])
    o, cg, kh, kw = (int(d) for d in w.shape)
    oh, ow = (int(d) for d in offset.shape[2:])
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    pt, pl = attrs["pads"][0], attrs["pads"][1]
    groups, og = int(attrs["group"]), int(attrs["offset_group"])
    cpo = c // og  # channels per offset group
    off = F.reshape(offset, [batch, og, kh, kw, 2, oh, ow])
    # regular tap positions (kh, kw, oh, ow), then plus the offsets: (N, og, kh, kw, oh, ow)
    base_y = np.array([[[[pos for _ in range(ow)] for pos in [-pt + sh * i + ki * dh for i in range(oh)]]
                        for _ in range(kw)] for ki in range(kh)], np.float64)
    base_x = np.array([[[[-pl + sw * j + kj * dw for j in range(ow)] for _ in range(oh)]
                        for kj in range(kw)] for _ in range(kh)], np.float64)
    ys = F.select(off, 4, 0) + F.const(base_y, offset)
    xs = F.select(off, 4, 1) + F.const(base_x, offset)
    # bilinear taps with zeros outside [0, size): rows of x laid out (N * og * H * W, cpo)
    xr = F.reshape(x, [batch, og, cpo, height, width])
    xr = F.transpose(xr, [0, 1, 3, 4, 2])
    rows = F.reshape(xr, [-1, cpo])
    n_off = F.batch_offsets(offset, 5, og * height * width)  # (N, 1, 1, 1, 1, 1)
    g_off = F.const(np.arange(og).reshape(1, og, 1, 1, 1, 1) * (height * width), offset)
    g_off = F.to_index(g_off)
    acc = None
    fy, fx = F.floor(ys), F.floor(xs)
    ty, tx = ys - fy, xs - fx
    iy, ix = F.to_index(fy), F.to_index(fx)
    for ay, wy in ((0, 1.0 - ty), (1, ty)):
        for ax, wx in ((0, 1.0 - tx), (1, tx)):
            yy, xx = iy + ay, ix + ax
            valid = F.logical_and(F.logical_and(F.greater(yy, -1), F.less(yy, height)),
                                  F.logical_and(F.greater(xx, -1), F.less(xx, width)))
            weight = F.where(valid, wy * wx, ys * 0.0)
            flat = n_off + g_off + F.clip(yy, 0, height - 1) * width + F.clip(xx, 0, width - 1)
            v = F.scale(F.take(rows, flat), weight)  # (N, og, kh, kw, oh, ow, cpo)
            acc = v if acc is None else acc + v
    if mask is not None:
        acc = F.scale(acc, F.reshape(mask, [batch, og, kh, kw, oh, ow]))
    # columns (N, oh, ow, groups, C/groups * kh * kw), channel order c = offset group * cpo + cpo index
    cols = F.transpose(acc, [0, 4, 5, 1, 6, 2, 3])  # (N, oh, ow, og, cpo, kh, kw)
    cols = F.reshape(cols, [batch, oh, ow, groups, cg * kh * kw])
    wg = F.reshape(w, [groups, o // groups, cg * kh * kw])
    y = F.reshape(F.einsum("nijgk,gok->ngoij", cols, wg), [batch, o, oh, ow])
    return y if bias is None else F.add_bias(y, bias)


def _deform_rule(ts, attrs):
    x, w, offset = ts[:3]
    for t, what in ((x, "input"), (w, "weight"), (offset, "offset")):
        require_float(t, f"deform_conv2d's {what}")
    if x.rank != 4 or not all(is_static(d) for d in x.shape[1:]):
        raise ShapeError(f"deform_conv2d: the input must be (N, C, H, W) with static C, H, W, got {x}")
    if w.rank != 4 or not all(is_static(d) for d in w.shape):
        raise ShapeError(f"deform_conv2d: the weight must be a static (O, C/group, kh, kw), got {w}")
    c, height, width = (int(d) for d in x.shape[1:])
    o, cg, kh, kw = (int(d) for d in w.shape)
    groups, og = int(attrs["group"]), int(attrs["offset_group"])
    if groups < 1 or og < 1 or cg * groups != c or o % groups or c % og:
        raise ShapeError(f"deform_conv2d: input {x} and weight {w} do not fit group={groups}, offset_group={og}",
                         hint="C = weight.shape[1] * group; O and C divisible by group; C by offset_group")
    (sh, sw), (dh, dw), pads = attrs["strides"], attrs["dilations"], attrs["pads"]
    oh = _out_size(height, kh, sh, dh, pads[0], pads[2])
    ow = _out_size(width, kw, sw, dw, pads[1], pads[3])
    want = (x.shape[0], og * 2 * kh * kw, oh, ow)
    if offset.rank != 4 or tuple(offset.shape[1:]) != want[1:] or offset.shape[0] != x.shape[0]:
        raise ShapeError(f"deform_conv2d: the offset must be {want}, got {offset}")
    if len(ts) > 3 and (ts[3].rank != 1 or ts[3].shape[0] != o):
        raise ShapeError(f"deform_conv2d: the bias must be ({o},), got {ts[3]}")
    if len(ts) > 4 and (ts[4].rank != 4 or tuple(ts[4].shape[1:]) != (og * kh * kw, oh, ow)):
        raise ShapeError(f"deform_conv2d: the mask must be (N, {og * kh * kw}, {oh}, {ow}), got {ts[4]}")
    return [TensorType((x.shape[0], o, oh, ow), x.dtype)]


def _deform_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    arrs = [a.astype(cd) for a in xs]
    arrs += [None] * (5 - len(arrs))
    return [_deform(_NPD, arrs[0], arrs[1], arrs[2], arrs[3], arrs[4], attrs, x.shape[0]).astype(x.dtype)]


def _deform_decompose(inputs, attrs):
    x = inputs[0]
    half = x.dtype in ("float16", "bfloat16")
    ins = [_ew.cast(t, "float32") if half else t for t in inputs] + [None] * (5 - len(inputs))
    y = _deform(_GFD, ins[0], ins[1], ins[2], ins[3], ins[4], attrs, x.type.shape[0])
    return [_ew.cast(y, x.dtype) if half else y]


def _deform_flops(ins, outs, attrs):
    o, cg, kh, kw = (int(d) for d in ins[1].shape)
    return math.prod(int(d) for d in outs[0].shape) * cg * kh * kw * 2 + math.prod(int(d) for d in ins[2].shape) * 8


_DEFORM_ATTRS = {"strides": Attr("ints", [1, 1]), "dilations": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
                 "group": Attr("int", 1), "offset_group": Attr("int", 1)}


def _t(shape, dt="float32"):
    return TensorType(shape, dt)


register_op(OpDef(
    name="deform_conv2d", family="vision", num_inputs=(3, 5), attrs=_DEFORM_ATTRS, type_rule=_deform_rule,
    reference=_deform_ref, decompose=_deform_decompose, flops=_deform_flops,
    vjp=vjp_from_decomposition(_deform_decompose),
    doc="Deformable 2-D convolution of x (N, C, H, W) by w (O, C/group, kh, kw) sampled at offsets "
        "(N, og*2*kh*kw, oh, ow), optional bias (O,) and mask (N, og*kh*kw, oh, ow) (ONNX DeformConv).",
    samples=[
        Sample([_t((1, 2, 4, 4)), _t((3, 2, 2, 2)), _t((1, 8, 3, 3))]),
        Sample([_t(("batch", 4, 4, 5), "float64"), _t((2, 2, 2, 3), "float64"), _t(("batch", 24, 4, 2), "float64"),
                _t((2,), "float64"), _t(("batch", 12, 4, 2), "float64")],
               attrs={"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2]},
               bind={"batch": 2}, note="symbolic batch, groups, offset groups, bias, mask, float64"),
        Sample([_t((1, 1, 5, 5)), _t((1, 1, 2, 2)), _t((1, 8, 3, 3))], attrs={"dilations": [2, 2]},
               domain=["any", "any", "any"], note="dilated"),
    ],
))


def deform_conv2d(input, weight, offset, bias=None, mask=None, stride=1, padding=0, dilation=1,  # noqa: A002
                  groups: int = 1, offset_groups: int = 1):
    """Deformable 2-D convolution (ONNX DeformConv; torchvision's ``deform_conv2d`` with explicit groups).

    Args:
        input: ``(N, C, H, W)``.
        weight: ``(O, C / groups, kh, kw)``.
        offset: ``(N, offset_groups * 2 * kh * kw, oh, ow)``, (dy, dx) per kernel tap.
        bias: optional ``(O,)``.
        mask: optional ``(N, offset_groups * kh * kw, oh, ow)`` modulation.
        stride: an int or ``(sh, sw)``.
        padding: an int, ``(ph, pw)`` or ``[top, left, bottom, right]``.
        dilation: an int or ``(dh, dw)``.
        groups: convolution groups.
        offset_groups: groups of input channels sharing one offset field.

    Returns:
        ``(N, O, oh, ow)``.
    """
    def pair(v):
        return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]

    pads = pair(padding)
    pads = pads + pads if len(pads) == 2 else pads
    if mask is not None and bias is None:
        bias = _creation.zeros([int(weight.shape[0])], weight.dtype)
    ins = [input, weight, offset] + ([bias] if bias is not None else []) + ([mask] if mask is not None else [])
    return apply("deform_conv2d", *ins, strides=pair(stride), dilations=pair(dilation), pads=pads,
                 group=int(groups), offset_group=int(offset_groups))
