"""JAX and string tensors: XLA has no string type, so a graph holding one is refused, typed.

``lower`` calls :func:`refuse_strings` before anything is traced: the first node that produces or reads a
``string`` tensor is named in an ``UnsupportedOpError`` (with the graph's other string ops), and the
hint points at the back ends that run them (``reference``, ``onnxruntime``). The string ops of
``graphforge/ops/strings.py`` are registered here with lowerings that raise the same error, so the
lowering table records the decision explicitly rather than by omission.
"""
from __future__ import annotations

from graphforge.dtypes import STRING
from graphforge.errors import UnsupportedOpError

from .lower import lowers

__all__ = ["refuse_strings", "string_error"]

_HINT = "run it with gf.run(..., backend='reference') or backend='onnxruntime', which hold string tensors"


def string_error(ops: list[str], where: str = "") -> UnsupportedOpError:
    return UnsupportedOpError(
        f"{', '.join(ops)}{where}: string tensors cannot be lowered to JAX (XLA has no string type)",
        ops=list(ops), hint=_HINT)


def refuse_strings(graph) -> None:
    """Raise :func:`string_error` when any input, parameter or node of ``graph`` holds a string tensor."""
    ops: list[str] = []
    first = ""
    for node in graph.walk():
        values = list(node.inputs) + list(node.outputs)
        if any(v.type.dtype == STRING for v in values):
            if not ops:
                first = f" (node {node.op} @ {node.scope or 'top level'})"
            if node.op not in ops:
                ops.append(node.op)
    if not ops and any(v.type.dtype == STRING for v in graph.inputs):
        ops, first = ["input"], f" (input {next(v.name for v in graph.inputs if v.type.dtype == STRING)!r})"
    if ops:
        raise string_error(ops, first)


def _refuse(op):
    def lowering(ctx, args, attrs):
        raise string_error([op])
    return lowering


for _op in ("string_normalizer", "string_concat", "string_split", "regex_full_match"):
    lowers(_op)(_refuse(_op))
