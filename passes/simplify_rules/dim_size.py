"""``dim_size`` over static dims is a number known at compile time: a ``constant``."""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt

from ..pattern import Op, Rule, Var

__all__ = ["RULES"]


def _static(node, m) -> bool:
    shape = node.inputs[0].type.shape
    return all(isinstance(shape[a], int) for a in node.attrs["axes"])


def _constant(m, rw):
    node = m.root
    shape = node.inputs[0].type.shape
    size = int(np.prod([shape[a] for a in node.attrs["axes"]], dtype=np.int64))
    array = np.array(size, dtype=_dt.to_numpy_dtype(node.outputs[0].type.dtype))
    return rw.builder.emit1("constant", [], {"value": array})


RULES = [Rule("static_dim_size", Op("dim_size", Var(), where=_static), _constant, internal_uses_only=False,
              provenance="root", doc=__doc__)]
