"""GELU spelled out → ``gelu``.

* erf form: ``0.5 * x * (1 + erf(x / sqrt(2)))`` in any order of the products, with
  ``erf(x * 0.70710678…)`` too, and ``x * (1 + erf(…)) / 2``;
* tanh form: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`` (``x**3``, ``pow(x, 3)``
  or ``x*x*x``), also factored as ``sqrt(2/pi) * x * (1 + 0.044715 * x*x)`` (``x**2`` too)
  → ``gelu(x, approximate="tanh")``."""
from __future__ import annotations

import math

from graphforge import ops

from ..pattern import AnyOf, Assoc, Const, Op, Rule, Var

__all__ = ["RULE"]

X = Var("x", where=lambda v: v.type.dtype.startswith(("float", "bfloat")))
_ERF_ARG = AnyOf(Op("div", X, Const(math.sqrt(2.0))), Op("mul", X, Const(1 / math.sqrt(2.0))))
_ONE_PLUS_ERF = Op("add", Const(1.0), Op("erf", _ERF_ARG, name="erf"))
_CUBE = AnyOf(Assoc("mul", Const(0.044715), Op("pow", X, Const(3.0))),
              Assoc("mul", Const(0.044715), X, X, X))
_SQUARE = AnyOf(Assoc("mul", Const(0.044715), Op("pow", X, Const(2.0))),
                Assoc("mul", Const(0.044715), X, X))
_TANH_ARG = AnyOf(Assoc("mul", Const(math.sqrt(2.0 / math.pi)), Op("add", X, _CUBE)),
                  Assoc("mul", Const(math.sqrt(2.0 / math.pi)), X, Op("add", Const(1.0), _SQUARE)))
_ONE_PLUS_TANH = Op("add", Const(1.0), Op("tanh", _TANH_ARG, name="tanh"))

_PATTERNS = [
    Assoc("mul", Const(0.5), X, _ONE_PLUS_ERF),
    Op("div", Op("mul", X, _ONE_PLUS_ERF), Const(2.0)),
    Assoc("mul", Const(0.5), X, _ONE_PLUS_TANH),
    Op("div", Op("mul", X, _ONE_PLUS_TANH), Const(2.0)),
]


def _build(m, rw):
    return ops.gelu(rw.t(m["x"]), "tanh" if "tanh" in m else "none")


RULE = Rule("gelu", _PATTERNS, _build, requires=("gelu",), doc=__doc__)
