"""Small helpers shared by the fusion rules."""
from __future__ import annotations

from graphforge.ir.graph import Value

__all__ = ["weight_and_layout", "is_weight", "bias_for", "neg_axis"]


def is_weight(value: Value) -> bool:
    """A parameter, buffer, folded constant or ``constant`` node (a value known before run time)."""
    return value.kind in ("param", "buffer", "const") or (value.producer is not None and value.producer.op == "constant")


def weight_and_layout(w: Value) -> tuple[Value, bool]:
    """``(W, transpose_b)`` for linear: ``transpose(W)`` → ``(W, True)``, a plain ``w`` → ``(w, False)``."""
    node = w.producer
    if node is not None and node.op == "transpose" and w.type.rank == 2:
        perm = node.attrs.get("perm")
        if perm is None or [p % 2 for p in perm] == [1, 0]:
            return node.inputs[0], True
    return w, False


def bias_for(b: Value, out_features) -> tuple[bool, bool]:
    """(usable, needs_reshape) for a bias added to a matmul result with ``out_features`` columns."""
    shape = b.type.shape
    if shape in ((out_features,), (1,), ()):
        return True, False
    if len(shape) >= 2 and all(d == 1 for d in shape[:-1]) and shape[-1] in (out_features, 1):
        return True, True
    return False, False


def neg_axis(axis: int, rank: int) -> int:
    """Axis in the negative spelling nn layers use (``-1`` for the last axis)."""
    return axis % rank - rank if rank else axis
