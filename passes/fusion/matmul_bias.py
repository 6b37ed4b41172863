"""``matmul(x, w) + b`` → ``linear(x, W, b)``.

``w`` of shape (in, out) gives ``transpose_b=False``; ``w = transpose(W)`` gives ``linear(x, W, b)``
with ``transpose_b=True`` (PyTorch layout, what ``nn.Linear`` emits). A bias-free ``linear`` followed
by ``+ b`` takes the bias in. The bias must not broadcast the product to a larger shape."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Op, Rule, Var
from ._common import bias_for, weight_and_layout

__all__ = ["RULE"]

_PATTERNS = [
    Op("add", Op("matmul", Var("x"), Var("w", rank=2), name="mm"), Var("b")),
    Op("add", Op("linear", Var("x"), Var("w", rank=2), name="lin", attrs={"activation": "none"}), Var("b")),
]


def _check(m) -> bool:
    mm = m.get("mm") or m.get("lin")
    out = mm.outputs[0]
    if m.root.outputs[0].type != out.type or m["b"].type.dtype != out.type.dtype:
        return False
    return bias_for(m["b"], out.type.shape[-1])[0]


def _build(m, rw):
    mm = m.get("mm") or m.get("lin")
    out_features = mm.outputs[0].type.shape[-1]
    b = rw.t(m["b"])
    if bias_for(m["b"], out_features)[1]:
        b = ops.reshape(b, [m["b"].type.shape[-1]])
    if "lin" in m:
        return ops.linear(rw.t(m["x"]), rw.t(m["w"]), b, transpose_b=m["lin"].attrs.get("transpose_b", True))
    w, transpose_b = weight_and_layout(m["w"])
    return ops.linear(rw.t(m["x"]), rw.t(w), b, transpose_b=transpose_b)


RULE = Rule("matmul_bias", _PATTERNS, _build, check=_check, requires=("linear",), doc=__doc__)
