"""``gf.trace``: run a model or function on symbolic inputs and record a Graph."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from .. import dtypes as _dt
from ..errors import TraceError
from ..ir.gcpause import gc_paused
from ..ir.graph import Graph
from ..ir.types import TensorSpec, TensorType
from .builder import Builder
from .tensor import Tensor

__all__ = ["trace"]


def _as_type(spec) -> tuple[TensorType, str | None]:
    if isinstance(spec, TensorSpec):
        return spec.type, spec.name
    if isinstance(spec, TensorType):
        return spec, None
    if isinstance(spec, np.ndarray):
        return TensorType(spec.shape, _dt.from_numpy_dtype(spec.dtype)), None
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], (tuple, list)):
        return TensorType(tuple(spec[0]), spec[1]), None
    raise TraceError(f"an input spec must be a gf.TensorSpec (or a TensorType, NumPy array, or (shape, dtype)), "
                     f"got {spec!r}")


def _input_names(fn: Callable, count: int) -> list[str]:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"x{i}" for i in range(len(names), count)]


def _collect_outputs(result: Any) -> tuple[list[Tensor], list[str]]:
    if isinstance(result, Tensor):
        return [result], ["output"]
    if isinstance(result, dict):
        items = list(result.items())
        for k, v in items:
            if not isinstance(v, Tensor):
                raise TraceError(f"output {k!r} is a {type(v).__name__}, not a Tensor")
        return [v for _, v in items], [str(k) for k, _ in items]
    if isinstance(result, (tuple, list)):
        for i, v in enumerate(result):
            if not isinstance(v, Tensor):
                raise TraceError(f"output {i} is a {type(v).__name__}, not a Tensor")
        return list(result), [f"output{i}" if i else "output" for i in range(len(result))]
    raise TraceError(f"the traced function returned a {type(result).__name__}; return a Tensor, a tuple/list "
                     "of Tensors, or a dict name -> Tensor")


def _trace_graph(graph: Graph, specs, name: str | None) -> Graph:
    """A Graph (e.g. from ``gf.from_onnx``) is already traced: a copy, its inputs checked against
    ``specs`` when given (same dtype and rank; a static dim must agree unless either side is symbolic)."""
    if specs and len(specs) != len(graph.inputs):
        raise TraceError(f"graph {graph.name!r} has {len(graph.inputs)} input(s), got {len(specs)} spec(s)",
                         hint="pass one gf.TensorSpec per graph input, or none to keep the graph's own")
    for v, spec in zip(graph.inputs, specs):
        t, _ = _as_type(spec)
        ok = t.dtype == v.type.dtype and len(t.shape) == len(v.type.shape) and all(
            a == b or isinstance(a, str) or isinstance(b, str) for a, b in zip(t.shape, v.type.shape))
        if not ok:
            raise TraceError(f"graph {graph.name!r} input {v.name!r} is {v.type}, the spec says {t}",
                             hint="a graph keeps its own input types; pass matching specs or none")
    out = graph.copy()
    if name:
        out.name = name
    return out


def trace(model, *specs, seed: int = 0, name: str | None = None, training: bool | None = None) -> Graph:
    """Trace ``model`` (an ``nn.Module`` or a function of Tensors) on symbolic inputs. A ``gf.Graph``
    is accepted too and returned as a copy (``specs`` optional, checked against its inputs).

    Args:
        model: an ``nn.Module``, an ``nn.seq()`` builder, a function of Tensors, or a ``gf.Graph``.
        *specs: one ``gf.TensorSpec(shape, dtype, name=...)`` per argument of ``forward``; symbolic
            dims (``"batch"``) stay symbolic.
        seed: parameters are initialised deterministically from it.
        name: the graph's name (default: from the model's class or function).
        training: overrides the module's mode for this trace (dropout and batch norm follow it).

    Returns:
        The typed SSA ``gf.Graph`` with its parameters initialised.

    Raises:
        ShapeError: a layer got a mis-shaped input (names the module path, both shapes, your line).
        TraceError: no specs, a spec count that does not match ``forward``, or something untraceable.

    Example:
        ```python
        g = gf.trace(nn.Linear(784, 10), gf.TensorSpec(("batch", 784), "float32"), seed=0)
        print(g)          # one typed SSA line per node
        ```
    """
    with gc_paused():  # a graph is a web of cycles: see graphforge/ir/gcpause.py
        return _trace(model, *specs, seed=seed, name=name, training=training)


def _trace(model, *specs, seed: int = 0, name: str | None = None, training: bool | None = None) -> Graph:
    from ..nn.module import Module

    if isinstance(model, Graph):
        return _trace_graph(model, specs, name)
    if not specs:
        raise TraceError("gf.trace needs at least one input spec, e.g. gf.TensorSpec(('batch', 784), 'float32')")
    is_module = isinstance(model, Module)
    fn = model.forward if is_module else model
    if not callable(fn):
        raise TraceError(f"cannot trace a {type(model).__name__}: pass an nn.Module or a function")
    try:
        inspect.signature(fn).bind(*specs)
    except TypeError as exc:
        raise TraceError(f"cannot call {getattr(fn, '__qualname__', fn)} with {len(specs)} input(s): {exc}",
                         hint="pass one gf.TensorSpec per positional argument of forward()/the function") from None
    except ValueError:  # no signature (some builtins): let the call itself decide
        pass
    graph = Graph(name or (type(model).__name__.lower() if is_module else getattr(model, "__name__", "graph")))
    if graph.name == "<lambda>":
        graph.name = "graph"
    builder = Builder(graph)
    builder.seed = seed
    types = [_as_type(s) for s in specs]
    names = _input_names(fn, len(types))
    for i, (ttype, given) in enumerate(types):
        input_name = given or names[i]
        try:
            graph.add_input(input_name, ttype)
        except Exception as exc:  # noqa: BLE001 - duplicate names
            raise TraceError(f"input name {input_name!r}: {exc}") from None
    saved_modes = None
    if is_module:
        saved_modes = [(m, m.training) for m in model.modules()]
        if training is not None:
            model.train(training)
        builder.training = model.training
        for path, module in model.named_modules():
            object.__setattr__(module, "_gf_path", path)
        for pname, param in model.named_parameters():
            builder.register_param(param, pname, param.materialize(pname, seed))
    else:
        builder.training = bool(training)
    try:
        with builder.activate():
            args = [Tensor(v, builder) for v in graph.inputs]
            result = model(*args) if is_module else fn(*args)
            outputs, out_names = _collect_outputs(result)
            values = [t.value for t in outputs]
            for buffer_name, value in builder.state_updates.items():
                values.append(value)
                out_names.append(f"update:{buffer_name}")
    finally:
        for module in builder.adopted:
            object.__setattr__(module, "_gf_path", None)
        if saved_modes is not None:
            for m, mode in saved_modes:
                object.__setattr__(m, "training", mode)
                object.__setattr__(m, "_gf_path", None)
    graph.set_outputs(values, out_names)
    return graph
