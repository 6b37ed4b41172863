"""conv2d and conv_transpose2d: type rules, im2col references, and VJPs as graphs (the input
gradient of one is the other; the weight gradient is a conv2d over transposed tensors)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import dim_product, is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._nn_common import (F32, F64, _check_pairs, _fmt, _require_nchw, _transposed_out, _window_out,
                         _windows)
from ._shapes import require_float, same_dtype
from .common import compute_dtype, numel
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import reduction as _reduction, shape_ops as _shape_ops

__all__: list[str] = []


# ---- conv2d ---------------------------------------------------------------------------------

def _conv_out(size, k, s, p0, p1, d):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _check_conv_operands(ts, attrs, op, layout):
    """The checks conv2d and conv_transpose2d share, in order: a float input, one dtype for all
    operands, well-formed attr pairs, an NCHW input, a rank-4 weight (``layout`` names its axes),
    groups >= 1. Returns ``(x, w, groups)``."""
    x, w = ts[0], ts[1]
    require_float(x, f"{op}'s input")
    same_dtype(ts, f"{op}'s input, weight and bias")
    _check_pairs(attrs, op)
    _require_nchw(x, op)
    if w.rank != 4:
        raise ShapeError(f"{op}: the weight must be rank 4 ({layout}), got {_fmt(w)}")
    g = attrs["groups"]
    if g < 1:
        raise ShapeError(f"{op}: groups must be >= 1, got {g}")
    return x, w, g


def _conv2d_rule(ts, attrs):
    op = "conv2d"
    x, w, g = _check_conv_operands(ts, attrs, op, "out, in/groups, kh, kw")
    out_c, in_per_group, kh, kw = w.shape
    want_c = dim_product([in_per_group, g])
    if x.shape[1] != want_c:
        hint = None
        if x.shape[3] == want_c:
            hint = "if your data is NHWC, transpose it with x.permute(0, 3, 1, 2)"
        elif g == 1:
            hint = f"the layer was declared with in_channels={want_c}; make it match the input ({x.shape[1]})"
        nhwc = hint is not None and "NHWC" in hint
        raise ShapeError(f"conv2d: expects NCHW input with {want_c} channels at axis 1, got {_fmt(x)}"
                         + (f"; {hint}" if nhwc else ""), hint=None if nhwc else hint)
    if is_static(out_c) and out_c % g:
        raise ShapeError(f"conv2d: {out_c} output channels do not divide into groups={g}")
    if not (is_static(kh) and is_static(kw)):
        raise ShapeError(f"conv2d: the kernel size must be static, got {_fmt(w)}")
    h, wd = x.shape[2], x.shape[3]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["pads"], attrs["dilations"]
    if not (is_static(h) and is_static(wd)):  # e.g. a variable image size: sizes are dim expressions
        oh = _conv_out(h, kh, sh, pt, pb, dh) if is_static(h) else _window_out(h, kh, sh, pt, pb, dh, op, 2)
        ow = _conv_out(wd, kw, sw, pl, pr, dw) if is_static(wd) else _window_out(wd, kw, sw, pl, pr, dw, op, 3)
    else:
        oh, ow = _conv_out(h, kh, sh, pt, pb, dh), _conv_out(wd, kw, sw, pl, pr, dw)
    if is_static(oh) and is_static(ow) and (oh < 1 or ow < 1):
        raise ShapeError(f"conv2d: the (dilated) kernel {kh}x{kw} (dilation {dh}x{dw}) is larger than the padded "
                         f"input {h + pt + pb}x{wd + pl + pr} of {_fmt(x)}", hint="pad the input or use a smaller kernel")
    if len(ts) == 3 and tuple(ts[2].shape) != (out_c,):
        raise ShapeError(f"conv2d: the bias must have shape ({out_c},) (one value per output channel), got {_fmt(ts[2])}")
    return [TensorType((x.shape[0], out_c, oh, ow), x.dtype)]

def _conv2d_np(x, w, attrs):
    g = attrs["groups"]
    pt, pl, pb, pr = attrs["pads"]
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = _conv_out(h, kh, attrs["strides"][0], pt, pb, attrs["dilations"][0])
    ow = _conv_out(wd, kw, attrs["strides"][1], pl, pr, attrs["dilations"][1])
    win = _windows(xp, kh, kw, attrs["strides"], attrs["dilations"], oh, ow)
    if g == 1:
        out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, O)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    win = win.reshape(n, g, cg, oh, ow, kh, kw)
    wg = w.reshape(g, o // g, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape(n, o, oh, ow)


def _biased_reference(conv_np):
    """The reference kernel for ``conv_np(x, w, attrs)``: computed in the compute dtype, plus the
    optional per-channel bias, returned C-contiguous in the input's dtype."""
    def reference(xs, attrs, env=None):
        x = xs[0]
        cd = compute_dtype(x)
        y = conv_np(x.astype(cd), xs[1].astype(cd), attrs)
        if len(xs) == 3:
            y = y + xs[2].astype(cd).reshape(1, -1, 1, 1)
        return [np.ascontiguousarray(y).astype(x.dtype)]
    return reference


_conv2d_ref = _biased_reference(_conv2d_np)


def _conv_flops(ins, outs, attrs):
    w = ins[1]
    per_out = 2 * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
    return per_out * numel(outs[0]) + (numel(outs[0]) if len(ins) == 3 else 0)


def _weight_grad(inp, cot, w_shape, attrs):
    """d(sum(conv2d(inp, W) * cot)) / dW as a conv2d over transposed tensors:
    input ``inp`` (N, C, H, W) viewed as (C/G, G*N, H, W), ``cot`` (N, O, OH, OW) as the weight
    (O, N, OH, OW), with the strides and dilations swapped."""

    g = attrs["groups"]
    n = inp.shape[0]
    c = inp.shape[1]
    o, cg, kh, kw = w_shape
    if g == 1:
        xt = _shape_ops.transpose(inp, [1, 0, 2, 3])
    else:
        xt = _shape_ops.reshape(inp, [n, g, cg, inp.shape[2], inp.shape[3]])
        xt = _shape_ops.transpose(xt, [2, 1, 0, 3, 4])
        xt = _shape_ops.reshape(xt, [cg, dim_product([g, n]), inp.shape[2], inp.shape[3]])
    wt = _shape_ops.transpose(cot, [1, 0, 2, 3])
    gw = apply("conv2d", xt, wt, strides=list(attrs["dilations"]), pads=list(attrs["pads"]),
               dilations=list(attrs["strides"]), groups=g)  # (C/G, O, kh', kw'), kh' >= kh
    if gw.shape[2] != kh or gw.shape[3] != kw:
        gw = _shape_ops.slice(gw, [0, 0], [kh, kw], [2, 3])
    del c
    return _shape_ops.transpose(gw, [1, 0, 2, 3])


def _conv2d_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["pads"], attrs["dilations"]
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = g.shape[2], g.shape[3]
    # The transposed conv's natural size misses the rows the strided conv skipped at the end.
    oph = x.shape[2] - ((oh - 1) * sh - pt - pb + dh * (kh - 1) + 1)
    opw = x.shape[3] - ((ow - 1) * sw - pl - pr + dw * (kw - 1) + 1)
    gx = apply("conv_transpose2d", g, w, strides=[sh, sw], pads=[pt, pl, pb, pr], output_padding=[oph, opw],
               dilations=[dh, dw], groups=attrs["groups"])
    gw = _weight_grad(x, g, tuple(w.shape), attrs)
    grads = [gx, gw]
    if len(inputs) == 3:
        grads.append(_reduction.sum(g, [0, 2, 3]))
    return grads


_CONV_ATTRS = {"strides": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
               "dilations": Attr("ints", [1, 1]), "groups": Attr("int", 1)}

register_op(OpDef(
    name="conv2d", family="nn", num_inputs=(2, 3), attrs=dict(_CONV_ATTRS), type_rule=_conv2d_rule,
    reference=_conv2d_ref, flops=_conv_flops, vjp=_conv2d_vjp,
    doc="2-D convolution, NCHW; w (out, in/groups, kh, kw); pads [top, left, bottom, right].",
    samples=[
        Sample([TensorType((2, 3, 5, 5), F32), TensorType((4, 3, 3, 3), F32), TensorType((4,), F32)],
               attrs={"pads": [1, 1, 1, 1]}),
        Sample([TensorType(("batch", 2, 6, 5), F32), TensorType((3, 2, 3, 2), F32)],
               attrs={"strides": [2, 1], "pads": [1, 0, 0, 1]}, bind={"batch": 2}, note="symbolic batch, strided"),
        Sample([TensorType((1, 4, 7, 6), F64), TensorType((6, 2, 2, 3), F64), TensorType((6,), F64)],
               attrs={"strides": [2, 2], "pads": [0, 1, 1, 0], "dilations": [2, 1], "groups": 2},
               note="groups, dilation, stride"),
        Sample([TensorType(("batch", 2, 4, 4), F64), TensorType((2, 1, 3, 3), F64)],
               attrs={"pads": [1, 1, 1, 1], "groups": 2}, bind={"batch": 3}, note="depthwise, symbolic batch"),
        Sample([TensorType(("batch", 2, "h", "w"), F32), TensorType((3, 2, 3, 2), F32)],
               attrs={"strides": [2, 1], "pads": [1, 0, 0, 1], "dilations": [1, 2]}, bind={"batch": 2, "h": 7, "w": 5},
               grad=False, note="symbolic H, W: floor((h-1)/2)+1 and w-1, guarded by h >= 2, w >= 2"),
    ],
))


# ---- conv_transpose2d -----------------------------------------------------------------------

def _convt_out(size, k, s, p0, p1, d, op):
    return (size - 1) * s - p0 - p1 + d * (k - 1) + 1 + op


def _conv_transpose2d_rule(ts, attrs):
    op = "conv_transpose2d"
    x, w, g = _check_conv_operands(ts, attrs, op, "in, out/groups, kh, kw")
    in_c, out_per_group, kh, kw = w.shape
    if x.shape[1] != in_c:
        hint = ("if your data is NHWC, transpose it with x.permute(0, 3, 1, 2)" if x.shape[3] == in_c
                else f"the weight {_fmt(w)} takes {in_c} input channels (PyTorch layout (in, out/groups, kh, kw))")
        raise ShapeError(f"conv_transpose2d: expects NCHW input with {in_c} channels at axis 1, got {_fmt(x)}",
                         hint=hint)
    if is_static(in_c) and in_c % g:
        raise ShapeError(f"conv_transpose2d: {in_c} input channels do not divide into groups={g}")
    if not (is_static(kh) and is_static(kw)):
        raise ShapeError(f"conv_transpose2d: the kernel size must be static, got {_fmt(w)}")
    op_h, op_w = attrs["output_padding"] if len(attrs["output_padding"]) == 2 else (-1, -1)
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    if not (0 <= op_h < max(sh, dh) and 0 <= op_w < max(sw, dw)):
        raise ShapeError(f"conv_transpose2d: output_padding {attrs['output_padding']} must be two ints, each "
                         f"smaller than the stride or the dilation ({[sh, sw]}, {[dh, dw]})")
    h, wd = x.shape[2], x.shape[3]
    pt, pl, pb, pr = attrs["pads"]
    oh = _convt_out(h, kh, sh, pt, pb, dh, op_h) if is_static(h) else _transposed_out(h, kh, sh, pt, pb, dh, op_h, op)
    ow = _convt_out(wd, kw, sw, pl, pr, dw, op_w) if is_static(wd) else _transposed_out(wd, kw, sw, pl, pr, dw, op_w, op)
    if is_static(oh) and is_static(ow) and (oh < 1 or ow < 1):
        raise ShapeError(f"conv_transpose2d: pads {attrs['pads']} crop the whole output of {_fmt(x)}")
    out_c = dim_product([out_per_group, g])
    if len(ts) == 3 and tuple(ts[2].shape) != (out_c,):
        raise ShapeError(f"conv_transpose2d: the bias must have shape ({out_c},), got {_fmt(ts[2])}")
    return [TensorType((x.shape[0], out_c, oh, ow), x.dtype)]


def _conv_transpose2d_np(x, w, attrs):
    g = attrs["groups"]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["pads"], attrs["dilations"]
    oph, opw = attrs["output_padding"]
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + opw
    xg = x.reshape(n, g, c // g, h, wd)
    wg = w.reshape(g, c // g, og, kh, kw)
    cols = np.einsum("ngchw,gcoij->ngoijhw", xg, wg, optimize=True)
    buf = np.zeros((n, g, og, full_h, full_w), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            buf[:, :, :, i * dh:i * dh + (h - 1) * sh + 1:sh, j * dw:j * dw + (wd - 1) * sw + 1:sw] += cols[:, :, :, i, j]
    y = buf[:, :, :, pt:full_h - pb, pl:full_w - pr]
    return y.reshape(n, g * og, full_h - pt - pb, full_w - pl - pr)


_conv_transpose2d_ref = _biased_reference(_conv_transpose2d_np)


def _conv_transpose2d_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    conv_attrs = {k: list(attrs[k]) if k != "groups" else attrs[k] for k in ("strides", "pads", "dilations", "groups")}
    # conv_transpose2d is the adjoint of conv2d (same weight layout read as (out, in/groups, ...)).
    gx = apply("conv2d", g, w, **conv_attrs)
    if gx.shape[2] != x.shape[2] or gx.shape[3] != x.shape[3]:
        gx = _shape_ops.slice(gx, [0, 0], [x.shape[2], x.shape[3]], [2, 3])
    gw = _weight_grad(g, x, tuple(w.shape), conv_attrs)
    grads = [gx, gw]
    if len(inputs) == 3:
        grads.append(_reduction.sum(g, [0, 2, 3]))
    return grads


def _convt_flops(ins, outs, attrs):
    w = ins[1]
    per_in = 2 * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
    return per_in * numel(ins[0]) + (numel(outs[0]) if len(ins) == 3 else 0)


register_op(OpDef(
    name="conv_transpose2d", family="nn", num_inputs=(2, 3),
    attrs=dict(_CONV_ATTRS, output_padding=Attr("ints", [0, 0])), type_rule=_conv_transpose2d_rule,
    reference=_conv_transpose2d_ref, flops=_convt_flops, vjp=_conv_transpose2d_vjp,
    doc="Transposed 2-D convolution (the adjoint of conv2d), NCHW; w (in, out/groups, kh, kw) (PyTorch layout).",
    samples=[
        Sample([TensorType((2, 3, 3, 3), F32), TensorType((3, 2, 3, 3), F32), TensorType((2,), F32)],
               attrs={"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 0]}),
        Sample([TensorType(("batch", 2, 4, 3), F32), TensorType((2, 3, 2, 2), F32)], bind={"batch": 2},
               note="symbolic batch"),
        Sample([TensorType((1, 4, 3, 4), F64), TensorType((4, 1, 3, 2), F64), TensorType((2,), F64)],
               attrs={"strides": [2, 1], "pads": [0, 1, 1, 0], "dilations": [1, 2], "groups": 2},
               note="groups, dilation"),
        Sample([TensorType((1, 2, "h", "w"), F32), TensorType((2, 3, 3, 2), F32)],
               attrs={"strides": [2, 1], "pads": [1, 0, 0, 0], "output_padding": [1, 0]}, bind={"h": 3, "w": 4},
               grad=False, note="symbolic H, W: 2*h+1 and w+1"),
    ],
))
