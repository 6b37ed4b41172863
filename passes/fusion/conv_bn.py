"""``batch_norm(conv2d(x, w, b?))`` in eval mode (one output), with the weights and statistics known
(parameters, buffers or constants) → ``conv2d(x, w', b')`` with folded ``const`` parameters:
``s = scale / sqrt(var + eps)``, ``w' = w * s[:, None, ...]``, ``b' = (b - mean) * s + bias`` (1-3 spatial axes);
no ``b'`` at all when the convolution had no bias and ``b'`` is all zeros (a norm with no mean or shift)."""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.trace.tensor import apply

from ..pattern import Op, Rule, Var, constant_of
from ._common import is_weight

__all__ = ["RULE"]

# any spatial rank (1-3: weight rank 3-5); the folded scale broadcasts over every axis but the first
_W = Var("w", where=lambda v: v.type.rank in (3, 4, 5) and is_weight(v))
_BN_ARGS = [Var(n, where=is_weight) for n in ("scale", "shift", "mean", "var")]
_PATTERNS = [
    Op("batch_norm", Op("conv2d", Var("x"), _W, Var("b", where=is_weight), name="conv"), *_BN_ARGS, name="bn",
       attrs={"training": False}),
    Op("batch_norm", Op("conv2d", Var("x"), _W, name="conv"), *_BN_ARGS, name="bn", attrs={"training": False}),
]


def _arrays(m):
    names = ["w", "scale", "shift", "mean", "var"] + (["b"] if "b" in m else [])
    return {n: constant_of(m, m[n]) for n in names}


def _check(m) -> bool:
    if len(m.root.outputs) != 1:
        return False
    arrays = _arrays(m)
    if any(a is None for a in arrays.values()):
        return False
    out_ch = arrays["w"].shape[0]
    return all(arrays[n].size in (out_ch, 1) for n in arrays if n != "w")


def _build(m, rw):
    a = {k: np.asarray(v, dtype=np.float64) for k, v in _arrays(m).items()}
    eps = float(m["bn"].attrs.get("eps", 1e-5))
    out_ch = a["w"].shape[0]
    flat = {k: np.broadcast_to(v.reshape(-1), (out_ch,)) for k, v in a.items() if k != "w"}
    s = flat["scale"] / np.sqrt(flat["var"] + eps)
    w = a["w"] * s.reshape((-1,) + (1,) * (a["w"].ndim - 1))
    b = (flat.get("b", np.zeros(out_ch)) - flat["mean"]) * s + flat["shift"]
    graph = rw.graph
    conv = m["conv"]
    dtype = _dt.to_numpy_dtype(m["w"].type.dtype)
    stem = conv.scope or "conv"
    wv = graph.add_param(graph.fresh_param_name(f"{stem}.weight_bn"), m["w"].type.with_shape(w.shape),
                         w.astype(dtype), "const")
    attrs = {k: v for k, v in conv.attrs.items()}
    if "b" not in m and not np.any(b.astype(dtype)):
        # a bias-free convolution under a norm with no shift left (mean 0, shift 0: a fresh model's
        # statistics): no bias to store or add — the convolution kernel skips it
        return apply("conv2d", rw.t(m["x"]), rw.t(wv), **attrs)
    bv = graph.add_param(graph.fresh_param_name(f"{stem}.bias_bn"), m["w"].type.with_shape((out_ch,)),
                         b.astype(dtype), "const")
    return apply("conv2d", rw.t(m["x"]), rw.t(wv), rw.t(bv), **attrs)


RULE = Rule("conv_bn", _PATTERNS, _build, check=_check, requires=("conv2d", "batch_norm"), doc=__doc__)
