"""Stand-ins for the nn ops the fusion rules target (``layer_norm``, ``attention``, ``conv2d``,
``batch_norm``), written from the contract in docs/ARCHITECTURE.md ("nn ops"). They are registered
only while a test needs them and only when the real op is not in the registry yet, so the rules'
tests run today and switch to the real ops as soon as graphforge/ops/nn_ops.py defines them."""
from __future__ import annotations

import contextlib
import math

import numpy as np

from graphforge.errors import ShapeError
from graphforge.ir.types import TensorType
from graphforge.ops import registry
from graphforge.ops.registry import Attr, OpDef


def _same(ts, attrs):
    return [ts[0]]


def _layer_norm_ref(xs, attrs, env=None):
    x = xs[0].astype(np.float64)
    axis = attrs["axis"] % x.ndim
    axes = tuple(range(axis, x.ndim))
    mu = x.mean(axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + attrs["eps"])
    if len(xs) > 1:
        y = y * xs[1]
    if len(xs) > 2:
        y = y + xs[2]
    return [y.astype(xs[0].dtype)]


def _attention_rule(ts, attrs):
    q, k, v = ts[:3]
    if q.rank != 4 or k.rank != 4 or v.rank != 4:
        raise ShapeError("attention: q, k, v must be rank 4")
    return [TensorType(q.shape[:-1] + v.shape[-1:], q.dtype)]


def _attention_ref(xs, attrs, env=None):
    q, k, v = (a.astype(np.float64) for a in xs[:3])
    scale = attrs["scale"] if attrs["scale"] is not None else 1 / math.sqrt(q.shape[-1])
    s = q @ np.swapaxes(k, -1, -2) * scale
    if attrs["causal"]:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if len(xs) > 3:
        s = np.where(xs[3], s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return [((e / e.sum(-1, keepdims=True)) @ v).astype(xs[0].dtype)]


def _conv_rule(ts, attrs):
    x, w = ts[0], ts[1]
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["pads"], attrs["dilations"]
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return [TensorType((n, w.shape[0], oh, ow), x.dtype)]


def _conv_ref(xs, attrs, env=None):
    x, w = xs[0].astype(np.float64), xs[1].astype(np.float64)
    pt, pl, pb, pr = attrs["pads"]
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    sh, sw = attrs["strides"]
    o, _, kh, kw = w.shape
    n, c, h, wd = x.shape
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    if len(xs) > 2:
        out = out + xs[2].reshape(1, -1, 1, 1)
    return [out.astype(xs[0].dtype)]


def _bn_ref(xs, attrs, env=None):
    x, scale, bias, mean, var = (a.astype(np.float64) for a in xs)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + attrs["eps"]) * scale.reshape(shape) \
        + bias.reshape(shape)
    return [y.astype(xs[0].dtype)]


STUBS = {
    "layer_norm": OpDef(name="layer_norm", type_rule=_same, reference=_layer_norm_ref, num_inputs=(1, 3),
                        attrs={"axis": Attr("int", -1), "eps": Attr("float", 1e-5)}),
    "attention": OpDef(name="attention", type_rule=_attention_rule, reference=_attention_ref, num_inputs=(3, 4),
                       attrs={"scale": Attr("float", None, optional=True), "causal": Attr("bool", False)}),
    "conv2d": OpDef(name="conv2d", type_rule=_conv_rule, reference=_conv_ref, num_inputs=(2, 3),
                    attrs={"strides": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
                           "dilations": Attr("ints", [1, 1]), "groups": Attr("int", 1)}),
    "batch_norm": OpDef(name="batch_norm", type_rule=_same, reference=_bn_ref, num_inputs=(5, 5),
                        attrs={"eps": Attr("float", 1e-5), "momentum": Attr("float", 0.1),
                               "training": Attr("bool", False)}),
}


@contextlib.contextmanager
def nn_ops(*names):
    """Make sure ``names`` are registered (real op if present, else the stand-in) for a block."""
    added = []
    try:
        for name in names:
            if not registry.has_op(name):
                registry.register_op(STUBS[name])
                added.append(name)
        yield [n for n in names if n not in added]
    finally:
        for name in added:
            registry.unregister_op(name)
