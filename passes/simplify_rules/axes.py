"""One spelling for axes: the ``axis`` of ``softmax``/``log_softmax``/``layer_norm`` written
negative (``softmax(x, 1)`` on a rank-3 ``x`` → ``axis=-2``), the spelling ``nn`` layers and the
fusion rules use, so one computation has one graph whichever way the user counted (and CSE can merge
the two)."""
from __future__ import annotations

from ..pattern import Op, Rule, Var

__all__ = ["RULES"]

X = Var("x")


def _nonnegative_axis(node, m) -> bool:
    axis = node.attrs.get("axis")
    return isinstance(axis, int) and not isinstance(axis, bool) and 0 <= axis < node.inputs[0].type.rank


def _negative(m, rw):
    node = m.root
    return rw.clone(node, attrs=dict(node.attrs, axis=node.attrs["axis"] - node.inputs[0].type.rank))


# layer_norm takes an optional scale and bias: one pattern per arity.
_PATTERNS = [Op(("softmax", "log_softmax"), X, where=_nonnegative_axis)] + [
    Op("layer_norm", X, *[Var() for _ in range(extra)], where=_nonnegative_axis) for extra in range(3)]

RULES = [Rule("negative_axis", _PATTERNS, _negative, internal_uses_only=False, provenance="root", doc=__doc__)]
