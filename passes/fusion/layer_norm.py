"""LayerNorm spelled out → ``layer_norm(x, gamma?, beta?, axis, eps)``.

Matches ``mu = mean(x)``, ``d = x - mu``, ``var = mean(d*d | d**2)`` (what ``x.var(...)`` and
``square(d)`` trace to), then ``d * rsqrt(var + eps)`` (also ``d * reciprocal(sqrt(var + eps))``,
``d * (1 / sqrt(var + eps))``, ``d * (var + eps) ** -0.5``) or ``d / sqrt(var + eps)`` (also
``d / (var + eps) ** 0.5``), optionally times ``gamma`` — applied after the normalisation or to ``d``
before it (``gamma * d / sqrt(...)``) — and plus ``beta``, with the means over the same trailing
axes (kept dims, given as negative or positive indices). ``gamma``/``beta`` must span exactly the
normalised axes."""
from __future__ import annotations

from graphforge.trace.tensor import apply
from graphforge import ops

from ..pattern import AnyOf, Assoc, Const, Op, Rule, Var
from ._common import neg_axis

__all__ = ["RULE"]

X = Var("x", where=lambda v: v.type.dtype.startswith(("float", "bfloat")))
_KEEP = {"keepdims": True, "axes": lambda a: a is not None and len(a) >= 1}
D = Op("sub", X, Op("mean", X, attrs=_KEEP, name="mu"), name="d")
_VAR = Op("mean", AnyOf(Op("mul", D, D), Op("pow", D, Const(2.0))), attrs=_KEEP, name="var")
_VE = Op("add", _VAR, Const(name="eps", where=lambda e: e > 0))
_SQRT = AnyOf(Op("sqrt", _VE), Op("pow", _VE, Const(0.5)))
_INV = AnyOf(Op("rsqrt", _VE), Op("reciprocal", _SQRT), Op("div", Const(1.0), _SQRT),
             Op("pow", _VE, Const(-0.5)))
G, B = Var("gamma"), Var("beta")

_SCALED = AnyOf(Assoc("mul", D, _INV, G), Op("mul", Op("div", D, _SQRT), G),
                Op("div", Op("mul", D, G), _SQRT))
_PATTERNS = [
    Op("add", _SCALED, B),
    _SCALED,
    Assoc("mul", D, _INV),
    Op("div", D, _SQRT),
]


def _axes(node, rank):
    return sorted(a % rank for a in node.attrs["axes"])


def _affine_ok(value, x_shape, first) -> bool:
    norm = tuple(x_shape[first:])
    shape = tuple(value.type.shape)
    if value.type.dtype == "bool":
        return False
    lead = len(shape) - len(norm)
    if lead < 0:
        return False
    return shape[lead:] == norm and all(d == 1 for d in shape[:lead])


def _check(m) -> bool:
    x = m["x"]
    rank = x.type.rank
    if rank == 0 or m.root.outputs[0].type != x.type:
        return False
    axes = _axes(m["mu"], rank)
    if axes != _axes(m["var"], rank) or axes != list(range(axes[0], rank)):
        return False
    for name in ("gamma", "beta"):
        if name in m and not (_affine_ok(m[name], x.type.shape, axes[0]) and m[name].type.dtype == x.type.dtype):
            return False
    return True


def _affine(rw, value, x_shape, first):
    t = rw.t(value)
    norm = list(x_shape[first:])
    if value.type.rank != len(norm):
        t = ops.reshape(t, norm)
    return t


def _build(m, rw):
    x = m["x"]
    rank = x.type.rank
    first = _axes(m["mu"], rank)[0]
    args = [rw.t(x)]
    if "gamma" in m:
        args.append(_affine(rw, m["gamma"], x.type.shape, first))
        if "beta" in m:
            args.append(_affine(rw, m["beta"], x.type.shape, first))
    elif "beta" in m:
        return None
    return apply("layer_norm", *args, axis=neg_axis(first, rank), eps=float(m["eps"]))


RULE = Rule("layer_norm", _PATTERNS, _build, check=lambda m: _check(m) and ("beta" not in m or "gamma" in m),
            requires=("layer_norm",), doc=__doc__)
