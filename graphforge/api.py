"""Entry points that reach into passes and back ends, imported lazily so ``import graphforge``
stays free of jax/onnx (rule 1)."""
from __future__ import annotations

from typing import Any

__all__ = ["optimize", "grad", "to_onnx", "save_onnx", "from_onnx"]


def optimize(graph, pipeline: str = "default", **options):
    """Run a pass pipeline (``"default"`` or e.g. ``"fold,cse,dce,fuse"``) and return the new graph."""
    from graphforge.passes import optimize as _optimize

    return _optimize(graph, pipeline, **options)


def grad(graph, wrt: Any = "params", output: int = 0, **options):
    """Reverse-mode differentiation as a graph-to-graph pass: outputs = [loss, d loss/d wrt...]."""
    from graphforge.passes.autodiff import grad as _grad
    from graphforge.runtime import require_graph

    return _grad(require_graph(graph, "gf.grad"), wrt=wrt, output=output, **options)


def to_onnx(graph, opset: int | None = None, **options):
    """Lower to a checked ``onnx.ModelProto``."""
    from graphforge.runtimes.onnx import to_onnx as _to_onnx

    return _to_onnx(graph, opset=opset, **options)


def save_onnx(graph, path: str, opset: int | None = None, **options):
    """Lower to ONNX and write ``path`` atomically (external data for large weights)."""
    from graphforge.runtimes.onnx import save_onnx as _save_onnx

    return _save_onnx(graph, path, opset=opset, **options)


def from_onnx(model_or_path, **options):
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) as a verified :class:`Graph`."""
    from graphforge.runtimes.onnx_import import from_onnx as _from_onnx

    return _from_onnx(model_or_path, **options)
