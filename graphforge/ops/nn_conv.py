"""conv2d and conv_transpose2d over 1, 2 or 3 spatial axes (the op names are historic: the rank of
the input picks the spatial rank): type rules, im2col references, and VJPs as graphs (the input
gradient of one is the other; the weight gradient is a conv2d over transposed tensors); and their
public functions ``conv2d``, ``conv1d``, ``conv3d``, ``conv_transpose2d`` (``1d``/``3d``) and
``resolve_padding`` (the padding spelling the pools share)."""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import ShapeError
from ..ir.dims import dim_add, dim_divide, dim_mul, dim_product, dim_sub, is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._nn_common import (F32, F64, _check_pairs, _fmt, _spatial_rank, _transposed_out, _tuple_of, _window_out,
                         _windows)
from ._shapes import require_float, same_dtype
from .common import compute_dtype, numel
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import contraction as _contraction, reduction as _reduction, shape_ops as _shape_ops

__all__ = ["conv2d", "conv1d", "conv3d", "conv_transpose2d", "conv_transpose1d", "conv_transpose3d",
           "resolve_padding"]


# ---- conv2d ---------------------------------------------------------------------------------

def _conv_out(size, k, s, p0, p1, d):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _check_conv_operands(ts, attrs, op, layout):
    """The checks conv2d and conv_transpose2d share, in order: a float input, one dtype for all
    operands, an (N, C, *spatial) input with 1-3 spatial axes, well-formed per-axis attrs, a weight of
    the same rank (``layout`` names its axes), groups >= 1. Returns ``(x, w, groups, nsp)``."""
    x, w = ts[0], ts[1]
    require_float(x, f"{op}'s input")
    same_dtype(ts, f"{op}'s input, weight and bias")
    nsp = _spatial_rank(x, op)
    if w.rank != nsp + 2:
        hint = ("an unbatched sample? add a batch axis with x.unsqueeze(0)" if w.rank == x.rank + 1
                else "the weight has one axis per spatial axis of the input, after (out, in/groups)")
        raise ShapeError(f"{op}: the weight must be rank {nsp + 2} ({layout}) for an input with {nsp} spatial "
                         f"axes, got {_fmt(w)} for input {_fmt(x)}", hint=hint)
    _check_pairs(attrs, op, ("strides", "dilations"), nsp)
    g = attrs["groups"]
    if g < 1:
        raise ShapeError(f"{op}: groups must be >= 1, got {g}")
    return x, w, g, nsp


def _conv2d_rule(ts, attrs):
    op = "conv2d"
    x, w, g, nsp = _check_conv_operands(ts, attrs, op, "out, in/groups, *kernel")
    out_c, in_per_group = w.shape[0], w.shape[1]
    kernel = tuple(w.shape[2:])
    want_c = dim_product([in_per_group, g])
    if x.shape[1] != want_c:
        hint = None
        if x.shape[-1] == want_c:
            hint = ("if your data is NHWC, transpose it with x.permute(0, 3, 1, 2)" if x.rank == 4
                    else "if your data is channels-last, move the channels to axis 1 with x.permute")
        elif g == 1:
            hint = f"the layer was declared with in_channels={want_c}; make it match the input ({x.shape[1]})"
        nhwc = hint is not None and "channels-last" in hint or (hint is not None and "NHWC" in hint)
        layout_name = {3: "NCW", 4: "NCHW", 5: "NCDHW"}[x.rank]
        raise ShapeError(f"conv2d: expects {layout_name} input with {want_c} channels at axis 1, got {_fmt(x)}"
                         + (f"; {hint}" if nhwc else ""), hint=None if nhwc else hint)
    if is_static(out_c) and out_c % g:
        raise ShapeError(f"conv2d: {out_c} output channels do not divide into groups={g}")
    if not all(is_static(k) for k in kernel):
        raise ShapeError(f"conv2d: the kernel size must be static, got {_fmt(w)}")
    strides, pads, dil = attrs["strides"], attrs["pads"], attrs["dilations"]
    out = []
    for i in range(nsp):
        size, k, s, p0, p1, d = x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nsp + i], dil[i]
        # a symbolic size (e.g. a variable image size) gives a dim expression with a guard
        out.append(_conv_out(size, k, s, p0, p1, d) if is_static(size) else _window_out(size, k, s, p0, p1, d, op, 2 + i))
    if any(is_static(o) and o < 1 for o in out):
        padded = "x".join(str(x.shape[2 + i] + pads[i] + pads[nsp + i]) if is_static(x.shape[2 + i]) else "?"
                          for i in range(nsp))
        raise ShapeError(f"conv2d: the (dilated) kernel {'x'.join(map(str, kernel))} (dilation {dil}) is larger than "
                         f"the padded input {padded} of {_fmt(x)}", hint="pad the input or use a smaller kernel")
    if len(ts) == 3 and tuple(ts[2].shape) != (out_c,):
        raise ShapeError(f"conv2d: the bias must have shape ({out_c},) (one value per output channel), got {_fmt(ts[2])}")
    return [TensorType((x.shape[0], out_c) + tuple(out), x.dtype)]


_OUT_LETTERS, _K_LETTERS = "pqr", "ijk"


def _conv2d_np(x, w, attrs):
    g = attrs["groups"]
    nsp = x.ndim - 2
    pads, strides, dil = attrs["pads"], attrs["strides"], attrs["dilations"]
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)])
    out = [_conv_out(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nsp + i], dil[i]) for i in range(nsp)]
    win = _windows(xp, kernel, strides, dil, out)  # (N, C, *out, *kernel)
    P, K = _OUT_LETTERS[:nsp], _K_LETTERS[:nsp]
    win = win.reshape((n, g, cg) + tuple(out) + tuple(kernel))
    wg = w.reshape((g, o // g, cg) + tuple(kernel))
    y = np.einsum(f"ngc{P}{K},goc{K}->ngo{P}", win, wg, optimize=True)
    return y.reshape((n, o) + tuple(out))


def _biased_reference(conv_np):
    """The reference kernel for ``conv_np(x, w, attrs)``: computed in the compute dtype, plus the
    optional per-channel bias, returned C-contiguous in the input's dtype."""
    def reference(xs, attrs, env=None):
        x = xs[0]
        cd = compute_dtype(x)
        y = conv_np(x.astype(cd), xs[1].astype(cd), attrs)
        if len(xs) == 3:
            y = y + xs[2].astype(cd).reshape((1, -1) + (1,) * (x.ndim - 2))
        return [np.ascontiguousarray(y).astype(x.dtype)]
    return reference


_conv2d_ref = _biased_reference(_conv2d_np)


def _conv_flops(ins, outs, attrs):
    w = ins[1]
    per_out = 2 * int(np.prod([int(d) for d in w.shape[1:]]))
    return per_out * numel(outs[0]) + (numel(outs[0]) if len(ins) == 3 else 0)


def _weight_grad(inp, cot, w_shape, attrs):
    """d(sum(conv(inp, W) * cot)) / dW as a conv over transposed tensors (any spatial rank):
    input ``inp`` (N, C, *S) viewed as (C/G, G*N, *S), ``cot`` (N, O, *OS) as the weight
    (O, N, *OS), with the strides and dilations swapped."""
    g = attrs["groups"]
    nsp = len(w_shape) - 2
    n = inp.shape[0]
    cg = w_shape[1]
    kernel = list(w_shape[2:])
    rest = list(range(2, 2 + nsp))
    sizes = list(inp.shape[2:])
    if g == 1:
        xt = _shape_ops.transpose(inp, [1, 0] + rest)
    else:
        xt = _shape_ops.reshape(inp, [n, g, cg] + sizes)
        xt = _shape_ops.transpose(xt, [2, 1, 0] + [r + 1 for r in rest])
        xt = _shape_ops.reshape(xt, [cg, dim_product([g, n])] + sizes)
    wt = _shape_ops.transpose(cot, [1, 0] + rest)
    gw = apply("conv2d", xt, wt, strides=list(attrs["dilations"]), pads=list(attrs["pads"]),
               dilations=list(attrs["strides"]), groups=g)  # (C/G, O, *k'), k' >= k
    if list(gw.shape[2:]) != kernel:
        gw = _shape_ops.slice(gw, [0] * nsp, kernel, rest)
    return _shape_ops.transpose(gw, [1, 0] + rest)


def _weight_grad_windows(inp, cot, w_shape, attrs):
    """``_weight_grad`` where the spatial sizes are symbolic (the transposed conv's kernel would be the
    run-time output size): per kernel offset, the strided slice of the padded input that met it —
    ``xp[..., o*d : o*d + (out-1)*s + 1 : s]``, shaped like ``cot`` — stacked to (N, G, C/G, K, *out)
    and contracted with the cotangent (N, G, O/G, *out) over the batch and the output positions."""
    g = attrs["groups"]
    nsp = len(w_shape) - 2
    strides, pads, dil = attrs["strides"], attrs["pads"], attrs["dilations"]
    n, c = inp.shape[0], inp.shape[1]
    o, cg = w_shape[0], w_shape[1]
    kernel = list(w_shape[2:])
    out = list(cot.shape[2:])
    flat_pads = [0, 0, 0, 0] + [p for i in range(nsp) for p in (pads[i], pads[nsp + i])]
    xp = _shape_ops.pad(inp, flat_pads) if any(flat_pads) else inp
    parts = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        starts = [offs[i] * dil[i] for i in range(nsp)]
        ends = [dim_add(dim_mul(dim_add(out[i], -1), strides[i]), starts[i] + 1) for i in range(nsp)]
        part = _shape_ops.slice(xp, starts, ends, list(range(2, 2 + nsp)), list(strides))
        parts.append(_shape_ops.unsqueeze(part, [2]))
    k = len(parts)
    patches = parts[0] if k == 1 else _shape_ops.concat(parts, 2)                     # (N, C, K, *out)
    positions = dim_product(out)
    patches = _shape_ops.reshape(patches, [n, g, dim_divide(c, g) if not is_static(c) else c // g, k, positions])
    og = o // g
    cot = _shape_ops.reshape(cot, [n, g, og, positions])
    gw = _contraction.einsum("ngop,ngckp->gock", cot, patches)                            # (G, O/G, C/G, K)
    return _shape_ops.reshape(gw, [o, cg] + kernel)


def _conv2d_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    strides, pads, dil = attrs["strides"], attrs["pads"], attrs["dilations"]
    nsp = len(strides)
    # The transposed conv's natural size misses the rows the strided conv skipped at the end.
    out_pad = [dim_sub(x.shape[2 + i], _convt_out(g.shape[2 + i], w.shape[2 + i], strides[i], pads[i], pads[nsp + i],
                                                  dil[i], 0)) for i in range(nsp)]
    if all(is_static(p) for p in out_pad):
        gx = apply("conv_transpose2d", g, w, strides=list(strides), pads=list(pads), output_padding=out_pad,
                   dilations=list(dil), groups=attrs["groups"])
    else:
        # symbolic sizes: the end rows the windows reached (the end padding) or skipped (at most s-1)
        # are a run-time count, so the transposed conv keeps every row past the begin padding, gets
        # s-1 zero rows more (x has at most that many beyond it) and is cut to x's size
        gx = apply("conv_transpose2d", g, w, strides=list(strides), pads=list(pads[:nsp]) + [0] * nsp,
                   output_padding=[0] * nsp, dilations=list(dil), groups=attrs["groups"])
        if any(st > 1 for st in strides):
            gx = _shape_ops.pad(gx, [0, 0, 0, 0] + [p for st in strides for p in (0, st - 1)])
        gx = _shape_ops.slice(gx, [0] * nsp, list(x.shape[2:]), list(range(2, 2 + nsp)))
    spatial_static = all(is_static(v) for v in list(x.shape[2:]) + list(g.shape[2:]))
    gw = (_weight_grad if spatial_static else _weight_grad_windows)(x, g, tuple(w.shape), attrs)
    grads = [gx, gw]
    if len(inputs) == 3:
        grads.append(_reduction.sum(g, [0] + list(range(2, 2 + nsp))))
    return grads


_CONV_ATTRS = {"strides": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
               "dilations": Attr("ints", [1, 1]), "groups": Attr("int", 1)}

register_op(OpDef(
    name="conv2d", family="nn", num_inputs=(2, 3), attrs=dict(_CONV_ATTRS), type_rule=_conv2d_rule,
    reference=_conv2d_ref, flops=_conv_flops, vjp=_conv2d_vjp,
    doc="Convolution over 1-3 spatial axes (N, C, *spatial) — the name is historic; w (out, in/groups, *kernel); "
        "per-axis strides/dilations; pads are the begins of every spatial axis then the ends ([top, left, bottom, "
        "right] in 2-D, ONNX's order).",
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
               note="symbolic H, W: floor((h-1)/2)+1 and w-1, guarded by h >= 2, w >= 2"),
        Sample([TensorType(("batch", 4, 9), F32), TensorType((6, 2, 3), F32), TensorType((6,), F32)],
               attrs={"strides": [2], "pads": [1, 2], "dilations": [2], "groups": 2}, bind={"batch": 2},
               note="1-D: groups, dilation, stride, symbolic batch"),
        Sample([TensorType(("batch", 4, "h", "w"), F64), TensorType((6, 2, 2, 3), F64), TensorType((6,), F64)],
               attrs={"strides": [2, 3], "pads": [0, 1, 1, 2], "dilations": [2, 1], "groups": 2},
               bind={"batch": 2, "h": 6, "w": 7}, note="symbolic H, W with groups, strides, dilation: the weight "
                                                      "gradient gathers strided windows at run time"),
        Sample([TensorType((2, 3, "len"), F64), TensorType((2, 3, 4), F64)],
               attrs={"strides": [3], "pads": [2, 0], "dilations": [1]}, bind={"len": 9},
               note="1-D, symbolic length, stride 3: floor((len-2)/3)+1"),
        Sample([TensorType((1, 2, 4, 5, 4), F64), TensorType((3, 2, 2, 3, 2), F64), TensorType((3,), F64)],
               attrs={"strides": [1, 2, 1], "pads": [1, 0, 1, 0, 1, 1], "dilations": [1, 1, 2]},
               note="3-D: stride, dilation, asymmetric pads"),
    ],
))


# ---- conv_transpose2d -----------------------------------------------------------------------

def _convt_out(size, k, s, p0, p1, d, op):
    return (size - 1) * s - p0 - p1 + d * (k - 1) + 1 + op


def _conv_transpose2d_rule(ts, attrs):
    op = "conv_transpose2d"
    x, w, g, nsp = _check_conv_operands(ts, attrs, op, "in, out/groups, *kernel")
    in_c, out_per_group = w.shape[0], w.shape[1]
    kernel = tuple(w.shape[2:])
    if x.shape[1] != in_c:
        hint = ("if your data is NHWC, transpose it with x.permute(0, 3, 1, 2)" if x.shape[-1] == in_c
                else f"the weight {_fmt(w)} takes {in_c} input channels (PyTorch layout (in, out/groups, *kernel))")
        raise ShapeError(f"conv_transpose2d: expects NCHW-style (N, C, *spatial) input with {in_c} channels at axis 1, "
                         f"got {_fmt(x)}", hint=hint)
    if is_static(in_c) and in_c % g:
        raise ShapeError(f"conv_transpose2d: {in_c} input channels do not divide into groups={g}")
    if not all(is_static(k) for k in kernel):
        raise ShapeError(f"conv_transpose2d: the kernel size must be static, got {_fmt(w)}")
    strides, dil, pads = attrs["strides"], attrs["dilations"], attrs["pads"]
    out_pad = list(attrs["output_padding"])
    if len(out_pad) != nsp or not all(0 <= out_pad[i] < max(strides[i], dil[i]) for i in range(nsp)):
        raise ShapeError(f"conv_transpose2d: output_padding {attrs['output_padding']} must be {nsp} ints, each "
                         f"smaller than the stride or the dilation ({list(strides)}, {list(dil)})")
    out = []
    for i in range(nsp):
        size, k, s, p0, p1, d = x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nsp + i], dil[i]
        out.append(_convt_out(size, k, s, p0, p1, d, out_pad[i]) if is_static(size)
                   else _transposed_out(size, k, s, p0, p1, d, out_pad[i], op))
    if any(is_static(o) and o < 1 for o in out):
        raise ShapeError(f"conv_transpose2d: pads {attrs['pads']} crop the whole output of {_fmt(x)}")
    out_c = dim_product([out_per_group, g])
    if len(ts) == 3 and tuple(ts[2].shape) != (out_c,):
        raise ShapeError(f"conv_transpose2d: the bias must have shape ({out_c},), got {_fmt(ts[2])}")
    return [TensorType((x.shape[0], out_c) + tuple(out), x.dtype)]


def _conv_transpose2d_np(x, w, attrs):
    g = attrs["groups"]
    nsp = x.ndim - 2
    strides, pads, dil, out_pad = attrs["strides"], attrs["pads"], attrs["dilations"], attrs["output_padding"]
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    og = w.shape[1]
    kernel = w.shape[2:]
    full = [(sizes[i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 + out_pad[i] for i in range(nsp)]
    S, K = _OUT_LETTERS[:nsp], _K_LETTERS[:nsp]
    xg = x.reshape((n, g, c // g) + tuple(sizes))
    wg = w.reshape((g, c // g, og) + tuple(kernel))
    cols = np.einsum(f"ngc{S},gco{K}->ngo{K}{S}", xg, wg, optimize=True)
    buf = np.zeros((n, g, og) + tuple(full), dtype=cols.dtype)
    lead = (slice(None),) * 3
    for offs in itertools.product(*(range(k) for k in kernel)):
        dst = tuple(slice(o * dil[i], o * dil[i] + (sizes[i] - 1) * strides[i] + 1, strides[i])
                    for i, o in enumerate(offs))
        buf[lead + dst] += cols[lead + tuple(offs)]
    y = buf[lead + tuple(slice(pads[i], full[i] - pads[nsp + i]) for i in range(nsp))]
    return y.reshape((n, g * og) + y.shape[3:])


_conv_transpose2d_ref = _biased_reference(_conv_transpose2d_np)


def _conv_transpose2d_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x, w = inputs[0], inputs[1]
    nsp = len(x.shape) - 2
    conv_attrs = {k: list(attrs[k]) if k != "groups" else attrs[k] for k in ("strides", "pads", "dilations", "groups")}
    # conv_transpose2d is the adjoint of conv2d (same weight layout read as (out, in/groups, ...)).
    gx = apply("conv2d", g, w, **conv_attrs)
    if list(gx.shape[2:]) != list(x.shape[2:]):
        gx = _shape_ops.slice(gx, [0] * nsp, list(x.shape[2:]), list(range(2, 2 + nsp)))
    spatial_static = all(is_static(v) for v in list(x.shape[2:]) + list(g.shape[2:]))
    gw = (_weight_grad if spatial_static else _weight_grad_windows)(g, x, tuple(w.shape), conv_attrs)
    grads = [gx, gw]
    if len(inputs) == 3:
        grads.append(_reduction.sum(g, [0] + list(range(2, 2 + nsp))))
    return grads


def _convt_flops(ins, outs, attrs):
    w = ins[1]
    per_in = 2 * int(np.prod([int(d) for d in w.shape[1:]]))
    return per_in * numel(ins[0]) + (numel(outs[0]) if len(ins) == 3 else 0)


register_op(OpDef(
    name="conv_transpose2d", family="nn", num_inputs=(2, 3),
    attrs=dict(_CONV_ATTRS, output_padding=Attr("ints", [0, 0])), type_rule=_conv_transpose2d_rule,
    reference=_conv_transpose2d_ref, flops=_convt_flops, vjp=_conv_transpose2d_vjp,
    doc="Transposed convolution (the adjoint of conv2d) over 1-3 spatial axes; w (in, out/groups, *kernel) "
        "(PyTorch layout); output_padding adds rows at the end of each axis.",
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
               note="symbolic H, W: 2*h+1 and w+1"),
        Sample([TensorType(("batch", 4, 5), F32), TensorType((4, 1, 3), F32), TensorType((2,), F32)],
               attrs={"strides": [2], "pads": [1, 0], "output_padding": [1], "dilations": [1], "groups": 2},
               bind={"batch": 2}, note="1-D: groups, output_padding, symbolic batch"),
        Sample([TensorType((1, 2, 2, 3, 2), F64), TensorType((2, 3, 2, 2, 3), F64), TensorType((3,), F64)],
               attrs={"strides": [2, 1, 2], "pads": [0, 1, 1, 1, 0, 0], "output_padding": [1, 0, 0],
                      "dilations": [1, 2, 1]}, note="3-D: strides, dilation, pads"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def resolve_padding(padding, kernel, dilation=None, stride=None) -> list[int]:
    """Explicit pads (the begins of every spatial axis, then the ends: ``[top, left, bottom, right]``
    in 2-D) from an int, one value per axis, begins+ends, "valid" or "same" (PyTorch semantics:
    stride 1, the odd extra pad goes to the end). The spatial rank is ``len(kernel)``.

    Args:
        padding: see above.
        kernel: the kernel size per spatial axis.
        dilation: one per spatial axis.
        stride: one per spatial axis.
    """
    n = len(kernel)
    dilation = [1] * n if dilation is None else list(dilation)
    stride = [1] * n if stride is None else list(stride)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * n)
        if padding == "same":
            if list(stride) != [1] * n:
                raise ShapeError("padding='same' is not supported for strided convolutions (PyTorch semantics)",
                                 hint="give explicit pads, e.g. padding=(k // 2, k // 2)")
            pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
            return [lo for lo, _ in pads] + [hi for _, hi in pads]
        raise ShapeError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (list, tuple)):
        if len(padding) == n:
            return [int(p) for p in padding] * 2
        if len(padding) == 2 * n:
            return [int(p) for p in padding]
        what = "(ph, pw) or 4 (top, left, bottom, right)" if n == 2 else f"(one per axis) or {2 * n} (begins, ends)"
        raise ShapeError(f"padding must have {n} {what} entries, got {padding!r}")
    p = int(padding)
    return [p] * (2 * n)


def _nsp_of(w, default=2):
    rank = len(w.shape) if hasattr(w, "shape") else default + 2
    return rank - 2 if rank in (3, 4, 5) else default


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """Convolution (N, C, *spatial) with 1-3 spatial axes — the weight's rank picks it; ``w`` is
    (out, in/groups, *kernel); padding an int, one per axis, begins+ends ((top, left, bottom, right)
    in 2-D), "same" or "valid".

    Args:
        x: an (N, C, *spatial) Tensor.
        w: the weight.
        b: None or the (out,) bias.
        stride: an int or one per spatial axis.
        padding: see above.
        dilation: an int or one per spatial axis.
        groups: independent channel groups.
    """
    n = _nsp_of(w)
    strides, dilations = _tuple_of(stride, "stride", n), _tuple_of(dilation, "dilation", n)
    kernel = [int(k) for k in w.shape[2:]] if len(w.shape) == n + 2 else [1] * n
    pads = resolve_padding(padding, kernel, dilations, strides)
    args = (x, w) if b is None else (x, w, b)
    return apply("conv2d", *args, strides=strides, pads=pads, dilations=dilations, groups=groups)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution (N, C, W); ``w`` is (out, in/groups, k). The ``conv2d`` op over one axis.

    Args:
        x: an (N, C, W) Tensor.
        w: the (out, in/groups, k) weight.
        b: None or the (out,) bias.
        stride: an int or a 1-tuple.
        padding: an int, a 1-tuple, a (begin, end) pair, ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or a 1-tuple.
        groups: independent channel groups.

    Returns:
        The (N, out, W_out) Tensor.

    Raises:
        ShapeError: a badly formed ``padding``, or ``"same"`` with a stride other than 1.
    """
    return conv2d(x, w, b, stride, padding, dilation, groups)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """3-D convolution (N, C, D, H, W); ``w`` is (out, in/groups, kd, kh, kw). The ``conv2d`` op over
    three axes.

    Args:
        x: an (N, C, D, H, W) Tensor.
        w: the (out, in/groups, kd, kh, kw) weight.
        b: None or the (out,) bias.
        stride: an int or one per spatial axis ``(sd, sh, sw)``.
        padding: an int, one per spatial axis, 6 values (the three begins, then the three ends),
            ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or one per spatial axis.
        groups: independent channel groups.

    Returns:
        The (N, out, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: a badly formed ``padding``, or ``"same"`` with a stride other than 1.
    """
    return conv2d(x, w, b, stride, padding, dilation, groups)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """Transposed convolution (PyTorch argument order); ``w`` is (in, out/groups, *kernel) with 1-3
    spatial axes (the weight's rank picks it).

    Args:
        x: an (N, C, *spatial) Tensor.
        w: the weight.
        b: None or the bias.
        stride: an int or one per spatial axis.
        padding: an int or one per spatial axis.
        output_padding: an int or one per spatial axis.
        groups: channel groups.
        dilation: an int or one per spatial axis.
    """
    n = _nsp_of(w)
    strides, dilations = _tuple_of(stride, "stride", n), _tuple_of(dilation, "dilation", n)
    if isinstance(padding, str):
        raise ShapeError("conv_transpose2d takes explicit padding (an int or a tuple), not a string")
    args = (x, w) if b is None else (x, w, b)
    return apply("conv_transpose2d", *args, strides=strides, pads=resolve_padding(padding, [1] * n),
                 output_padding=_tuple_of(output_padding, "output_padding", n), dilations=dilations, groups=groups)


conv_transpose1d = conv_transpose3d = conv_transpose2d
