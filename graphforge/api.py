"""Entry points that reach into passes and back ends, imported lazily so ``import graphforge``
stays free of jax/onnx (rule 1)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .ir.graph import Graph

__all__ = ["run", "optimize", "grad", "to_onnx", "save_onnx", "from_onnx", "memory_report", "profile",
           "TrainingModeExportWarning"]


def run(graph: Graph, inputs: Any, backend: str = "reference", params: Mapping[str, np.ndarray] | None = None,
        **options) -> list[np.ndarray]:
    """Evaluate ``graph`` on ``inputs`` with a back end (``"reference"``, ``"jax"``,
    ``"onnxruntime"``); returns the list of output arrays. ``params`` overrides stored weights;
    ``options`` go to the back end (e.g. ``bucket="pow2"`` for JAX)."""
    from graphforge.runtimes import run as _run

    return _run(graph, inputs, backend, params, **options)


def optimize(graph, pipeline: str = "default", **options):
    """Run a pass pipeline (``"default"`` or e.g. ``"fold,cse,dce,fuse"``) and return the new graph."""
    from graphforge.passes import optimize as _optimize

    return _optimize(graph, pipeline, **options)


def grad(graph, wrt: Any = "params", output: int = 0, **options):
    """Reverse-mode differentiation as a graph-to-graph pass: outputs = [loss, d loss/d wrt...]."""
    from graphforge.passes.autodiff import grad as _grad
    from graphforge.runtime import require_graph

    return _grad(require_graph(graph, "gf.grad"), wrt=wrt, output=output, **options)


class TrainingModeExportWarning(UserWarning):
    """A graph traced in training mode (dropout active, batch statistics) is being exported."""


def _warn_if_training(graph) -> None:
    """Exporting a training-mode graph is almost always a forgotten ``model.eval()``: say where."""
    import warnings

    sites = [n for n in graph.nodes if n.op == "dropout" or (n.op == "batch_norm" and n.attrs.get("training"))]
    if not sites:
        return
    where = "; ".join(f"{n.op} at {n.scope or '<top>'}" + (f" ({n.loc})" if n.loc else "") for n in sites[:3])
    warnings.warn(f"exporting graph {graph.name!r} traced in training mode: {where}"
                  + (f" and {len(sites) - 3} more" if len(sites) > 3 else "")
                  + "; the exported model will drop activations at random / use batch statistics. Call "
                  "model.eval() before gf.trace (or pass training=False to gf.trace)",
                  TrainingModeExportWarning, stacklevel=3)


def to_onnx(graph, opset: int | None = None, **options):
    """Lower to a checked ``onnx.ModelProto`` (warns when the graph was traced in training mode)."""
    from graphforge.runtimes.onnx import to_onnx as _to_onnx

    _warn_if_training(graph)
    return _to_onnx(graph, opset=opset, **options)


def save_onnx(graph, path: str, opset: int | None = None, **options):
    """Lower to ONNX and write ``path`` atomically (external data for large weights)."""
    from graphforge.runtimes.onnx import save_onnx as _save_onnx

    _warn_if_training(graph)
    return _save_onnx(graph, path, opset=opset, **options)


def from_onnx(model_or_path, **options):
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) as a verified :class:`Graph`."""
    from graphforge.runtimes.onnx_import import from_onnx as _from_onnx

    return _from_onnx(model_or_path, **options)


QUANTIZE_MODES = ("int8-static", "int8-dynamic", "int4-weight")


def quantize(graph, calibration=None, mode: str = "int8-static", *, method: str = "minmax",
             percentile: float = 99.99, reduce_range: bool = True, activation_dtype: str = "uint8",
             block_size: int = 32, backend: str = "onnxruntime"):
    """Post-training quantization: a new graph in QDQ form (``gf.save_onnx`` writes it as QDQ ONNX).

    ``mode``: ``"int8-static"`` (int8 per-channel weights, activations with ranges calibrated on
    ``calibration`` — a batch or a list of batches of inputs, as ``gf.run`` takes them — by
    ``method`` ``"minmax"``, ``"percentile"`` (``percentile``) or ``"entropy"``, run on ``backend``),
    ``"int8-dynamic"`` (activations quantized at run time; no calibration) or ``"int4-weight"``
    (4-bit weights in blocks of ``block_size``). See ``graphforge.passes.quantize``."""
    from graphforge.errors import ConfigError
    from graphforge.passes import quantize as _q
    from graphforge.runtime import require_graph

    graph = require_graph(graph, "gf.quantize")
    if mode == "int8-static":
        from graphforge.runtimes.calibration import calibrate

        ranges = calibrate(graph, calibration, method=method, percentile=percentile, backend=backend)
        return _q.quantize_static(graph, ranges, reduce_range=reduce_range, activation_dtype=activation_dtype)
    if mode == "int8-dynamic":
        return _q.quantize_dynamic(graph, reduce_range=reduce_range)
    if mode == "int4-weight":
        return _q.quantize_weights_int4(graph, block_size=block_size)
    raise ConfigError(f"unknown quantization mode {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
def memory_report(graph_or_trainer, *, optimizer_slots: int = 0, **dims):
    """Peak-memory estimate (``graphforge.memory.MemoryReport``; ``print`` it for the per-scope
    table) of a Graph, a traced model's graph, or a ``gf.Trainer``'s train step (its gradient graph,
    params and live optax state). Bind symbolic dims by name: ``gf.memory_report(g, batch=128)``.
    ``optimizer_slots`` (for a Graph): float32 copies of each trainable parameter the optimizer
    keeps (Adam: 2)."""
    from .memory import estimate_memory

    grad_graph = getattr(graph_or_trainer, "grad_graph", None)
    if grad_graph is not None:  # a gf.Trainer: what one train step holds
        import jax

        leaves = jax.tree_util.tree_leaves(graph_or_trainer.opt_state)
        opt = sum(int(getattr(l, "nbytes", 0)) for l in leaves)
        return estimate_memory(grad_graph, dims, optimizer_bytes=opt)
    from .runtime import require_graph

    return estimate_memory(require_graph(graph_or_trainer, "gf.memory_report"), dims, optimizer_slots=optimizer_slots)


def profile(model_or_graph, inputs, backend: str = "jax", **options):
    """Time one forward run per node, rolled up per module scope and per user ``file:line``
    (``graphforge.runtimes.profiling.ProfileReport``: ``print`` it, ``.chrome_trace(path)``,
    ``.plot(path)``). ``backend``: ``"jax"`` (timed regions) or ``"onnxruntime"`` (its profiler)."""
    from graphforge.runtimes.profiling import profile as _profile

    return _profile(model_or_graph, inputs, backend, **options)
