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
    """Evaluate ``graph`` on ``inputs`` with a back end.

    Args:
        graph: a traced ``gf.Graph`` (an ``nn.Module`` must be traced first).
        inputs: one array, a list of arrays (one per graph input, in order) or a dict input name -> array.
            Symbolic dims bind to the arrays' sizes.
        backend: ``"reference"`` (the NumPy oracle), ``"jax"`` (XLA, one compilation per shape) or
            ``"onnxruntime"``.
        params: arrays overriding the graph's stored weights, by name.
        **options: passed to the back end (e.g. ``bucket="pow2"`` for JAX).

    Returns:
        The list of output arrays (NumPy), in the order of ``graph.outputs``.

    Raises:
        InputError: the back end is unknown, or an input is missing, unexpected, or of the wrong
            shape or dtype (named).
        BackendError: the back end failed on a node (named).

    Example:
        ```python
        g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
        (y,) = gf.run(g, {"x": np.ones((3, 4), np.float32)}, backend="jax")   # y.shape == (3, 2)
        ```
    """
    from graphforge.runtimes import run as _run

    return _run(graph, inputs, backend, params, **options)


def optimize(graph, pipeline: str = "default", **options):
    """Run a pass pipeline over ``graph`` and return the new graph (``graph`` is not changed).

    Args:
        graph: the ``gf.Graph`` to optimise.
        pipeline: ``"default"``, ``"none"`` or a pipeline string such as ``"fold,cse,dce,fuse"`` or
            ``"infer,(fold,simplify,cse,dce)*,fuse"`` (``*``: repeat to a fixed point).
        **options: ``report=True`` prints the per-pass table (time, node counts),
            ``print_after="fuse"`` the IR after a pass, ``verify=True`` verifies after each pass.

    Returns:
        The optimised ``gf.Graph``.

    Raises:
        PassError: an unknown pass name or a malformed pipeline string.
        VerifyError: a pass broke an IR invariant (with ``verify=True``).

    Example:
        ```python
        g2 = gf.optimize(g, "fold,cse,dce,fuse")
        print(len(g.nodes), "->", len(g2.nodes))
        ```
    """
    from graphforge.passes import optimize as _optimize

    return _optimize(graph, pipeline, **options)


def grad(graph, wrt: Any = "params", output: int = 0, **options):
    """Reverse-mode differentiation as a graph-to-graph pass.

    Args:
        graph: a ``gf.Graph`` whose output ``output`` is a scalar (the loss).
        wrt: ``"params"`` (every trainable parameter), one input or param name, or a list of names.
        output: the index of the output to differentiate.
        **options: ``keep_outputs=True`` keeps the graph's other outputs after the gradients.

    Returns:
        A new ``gf.Graph`` whose outputs are the loss and then ``grad:<name>`` for each name of ``wrt``.

    Raises:
        GraphforgeError: ``output`` does not exist or is not a floating-point scalar, ``wrt`` names
            something the graph does not have (or twice), or a value cannot be differentiated.
        ShapeError: the output is not a scalar.
        UnsupportedOpError: an op on the path has no VJP rule.

    Example:
        ```python
        loss = gf.trace(lambda x: gf.sum(x * x), gf.TensorSpec((3,)))
        tg = gf.grad(loss, wrt="x")            # outputs: loss, grad:x (= 2x)
        ```
    """
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
    """Lower ``graph`` to a checked ``onnx.ModelProto`` (``onnx.checker`` with ``full_check``).

    Warns (``TrainingModeExportWarning``) when the graph was traced in training mode.

    Args:
        graph: the ``gf.Graph`` to export; symbolic dims become ``dim_param``s.
        opset: the ONNX opset (17 and up); None: the newest both onnx and onnxruntime support.
        **options: passed to the ONNX lowering.

    Returns:
        The ``onnx.ModelProto``.

    Raises:
        ExportError: ops the opset cannot express (all listed, each with its source line).

    Example:
        ```python
        proto = gf.to_onnx(gf.optimize(g))
        print(len(proto.graph.node), "ONNX nodes")
        ```
    """
    from graphforge.runtimes.onnx import to_onnx as _to_onnx

    _warn_if_training(graph)
    return _to_onnx(graph, opset=opset, **options)


def save_onnx(graph, path: str, opset: int | None = None, **options):
    """Lower ``graph`` to ONNX (as :func:`to_onnx`) and write ``path`` atomically.

    Large weights go to external data beside the file; nothing is left behind on failure.

    Args:
        graph: the ``gf.Graph`` to export.
        path: the ``.onnx`` file to write.
        opset: the ONNX opset; None: the newest both onnx and onnxruntime support.
        **options: passed to the ONNX lowering.

    Returns:
        The ``onnx.ModelProto`` written.

    Raises:
        ExportError: the graph cannot be expressed at ``opset``, or the file cannot be written.

    Example:
        ```python
        gf.save_onnx(trainer.export_graph(), "mlp.onnx")
        ```
    """
    from graphforge.runtimes.onnx import save_onnx as _save_onnx

    _warn_if_training(graph)
    return _save_onnx(graph, path, opset=opset, **options)


def from_onnx(model_or_path, **options):
    """Import an ONNX model as a verified ``gf.Graph`` (checked with ``onnx.checker``, strict shape
    inference, external data only from inside the model's directory); see docs/onnx_import.md.

    Args:
        model_or_path: a path, the file's bytes or an ``onnx.ModelProto``.
        **options: importer options (e.g. budgets for hostile files).

    Returns:
        The imported ``gf.Graph`` with its initializers as params.

    Raises:
        LoadError: the file is missing, invalid, over budget, or uses ops the importer does not know.

    Example:
        ```python
        g = gf.from_onnx("mlp.onnx")
        outs = gf.run(g, {"x": x}, backend="jax")
        ```
    """
    from graphforge.runtimes.onnx_import import from_onnx as _from_onnx

    return _from_onnx(model_or_path, **options)


QUANTIZE_MODES = ("int8-static", "int8-dynamic", "int4-weight")


def quantize(graph, calibration=None, mode: str = "int8-static", *, method: str = "minmax",
             percentile: float = 99.99, reduce_range: bool = True, activation_dtype: str = "uint8",
             block_size: int = 32, backend: str = "onnxruntime", other_params: str = "int8",
             per_channel: bool = True):
    """Post-training quantization: a new graph in QDQ form (``gf.save_onnx`` writes it as QDQ ONNX).

    ``mode``: ``"int8-static"`` (int8 per-channel weights, activations with ranges calibrated on
    ``calibration`` — a batch or a list of batches of inputs, as ``gf.run`` takes them — by
    ``method`` ``"minmax"``, ``"percentile"`` (``percentile``) or ``"entropy"``, run on ``backend``),
    ``"int8-dynamic"`` (activations quantized at run time; no calibration) or ``"int4-weight"``
    (4-bit weights in blocks of ``block_size``). See ``graphforge.passes.quantize``.

    Args:
        graph: the float Graph (or traced model) to quantize.
        calibration: for ``"int8-static"``: a batch or a list of batches of inputs (dicts, as
            ``gf.run`` takes them) the activation ranges are measured on; ignored by the other modes.
        mode: ``"int8-static"``, ``"int8-dynamic"`` or ``"int4-weight"``.
        method: how calibration turns observed values into ranges: ``"minmax"``, ``"percentile"`` or
            ``"entropy"``.
        percentile: the percentile kept by ``method="percentile"``.
        reduce_range: quantize weights to 7 bits (avoids overflow on CPUs without VNNI).
        per_channel: for the int8 modes, one weight scale per output channel (default: the smaller
            weight error) or, ``False``, one per weight tensor (onnxruntime's and PyTorch's default
            for dynamic quantization; its integer kernels run a per-tensor scale a few per cent
            faster on small models, docs/serving.md §10).
        activation_dtype: ``"uint8"`` or ``"int8"`` for the static mode's activations.
        block_size: weights per quantization block in ``"int4-weight"`` mode.
        backend: the back end calibration runs on.
        other_params: for the int8 modes, ``"int8"`` (default) also makes the float parameters that
            float ops read small: a LayerNorm's scale and shift are folded into the linear layers
            that read it (``passes/fold_norm.py``), and the rest (biases added in float, position
            and embedding tables, other norms' parameters) are stored as int8 with a dequantize
            before their readers; ``"float"`` keeps them float32.

    Returns:
        A new Graph with quantize/dequantize (QDQ) nodes; ``graph`` is not changed.

    Raises:
        ConfigError: an unknown ``mode`` or calibration ``method``, or static mode without calibration data.
        InputError: ``graph`` is not a Graph, or an unknown ``backend``.

    Example:
        ```python
        g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
        q = gf.quantize(g, [{"x": np.random.rand(8, 4).astype(np.float32)}])   # int8-static
        qd = gf.quantize(g, mode="int8-dynamic")
        ```
    """
    from graphforge.errors import ConfigError
    from graphforge.passes import quantize as _q
    from graphforge.runtime import require_graph

    graph = require_graph(graph, "gf.quantize")
    if other_params not in _q.OTHER_PARAMS:
        raise ConfigError(f"other_params must be one of {', '.join(map(repr, _q.OTHER_PARAMS))}, got {other_params!r}")
    if mode in ("int8-static", "int8-dynamic") and other_params == "int8":
        # LayerNorm scales/shifts move into the linears that read them (before calibration: the
        # activation in between changes), so they are not stored at all
        from graphforge.passes.fold_norm import fold_norm_affine

        graph, _ = fold_norm_affine(graph.copy())
    if mode == "int8-static":
        from graphforge.runtimes.calibration import calibrate

        ranges = calibrate(graph, calibration, method=method, percentile=percentile, backend=backend)
        return _q.quantize_static(graph, ranges, reduce_range=reduce_range, activation_dtype=activation_dtype,
                                  other_params=other_params, per_channel=per_channel)
    if mode == "int8-dynamic":
        return _q.quantize_dynamic(graph, reduce_range=reduce_range, other_params=other_params,
                                   per_channel=per_channel)
    if mode == "int4-weight":
        return _q.quantize_weights_int4(graph, block_size=block_size)
    raise ConfigError(f"unknown quantization mode {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
def memory_report(graph_or_trainer, *, optimizer_slots: int = 0, **dims):
    """Peak-memory estimate (``graphforge.memory.MemoryReport``; ``print`` it for the per-scope
    table) of a Graph, a traced model's graph, or a ``gf.Trainer``'s train step (its gradient graph,
    params and live optax state). Bind symbolic dims by name: ``gf.memory_report(g, batch=128)``.
    ``optimizer_slots`` (for a Graph): float32 copies of each trainable parameter the optimizer
    keeps (Adam: 2).

    Args:
        graph_or_trainer: a Graph (or traced model), or a ``gf.Trainer`` (its train step is estimated).
        optimizer_slots: for a Graph, the optimizer's float32 copies per trainable parameter.
        **dims: sizes for the graph's symbolic dims, by name (``batch=128``).

    Returns:
        A ``MemoryReport`` (peak bytes, broken down into params, optimizer state, inputs, activations).

    Raises:
        InputError: ``graph_or_trainer`` is neither a Graph nor a Trainer.

    Example:
        ```python
        g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
        print(gf.memory_report(g, batch=32))
        ```
    """
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
    ``.plot(path)``). ``backend``: ``"jax"`` (timed regions) or ``"onnxruntime"`` (its profiler).

    Args:
        model_or_graph: a Graph, or a model traced for the given inputs.
        inputs: the input arrays, a dict by input name (as ``gf.run`` takes them).
        backend: ``"jax"`` or ``"onnxruntime"``.
        **options: ``repeat`` (timed runs, default 10) and ``warmup`` (untimed runs first, default 2).

    Returns:
        A ``ProfileReport``.

    Raises:
        ConfigError: ``backend`` cannot be profiled, or ``repeat < 1`` / ``warmup < 0``.

    Example:
        ```python
        g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
        report = gf.profile(g, {"x": np.ones((3, 4), np.float32)})
        print(report)
        ```
    """
    from graphforge.runtimes.profiling import profile as _profile

    return _profile(model_or_graph, inputs, backend, **options)
