"""Importer for ONNX Det onto ``det`` (``graphforge/ops/linalg_det.py``)."""
from __future__ import annotations

from .importer import importer

__all__: list[str] = []


@importer("Det")
def _det(ctx, node):
    return [ctx.emit("det", [ctx.input(node, 0)])]
