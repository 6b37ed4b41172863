"""Binding inputs and parameters to a graph: what every back end does before it runs one.

The ``gf.run`` dispatcher that picks a back end lives in the facade (``graphforge.api``): the core
names no back end (rule 1 and the layering test)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import dtypes as _dt
from .errors import GraphforgeError, InputError, LoadError
from .guards import check_guards
from .ir.dims import dim_symbols, resolve_dim, unify_dims
from .ir.graph import Graph

__all__ = ["bind_inputs", "resolve_params", "require_graph"]

def require_graph(obj: Any, what: str) -> Graph:
    """``obj`` if it is a Graph; a model that was never traced gets an InputError saying how."""
    if isinstance(obj, Graph):
        return obj
    if hasattr(obj, "named_modules") or callable(obj):
        # PyTorch/Keras habit: hand the model itself to summary/run/save; graphforge needs its trace
        raise InputError(f"{what} works on a traced gf.Graph, got {type(obj).__name__}",
                         hint="trace the model first: g = gf.trace(model, gf.TensorSpec(shape, dtype)), "
                              f"then call {what}(g, ...)")
    raise InputError(f"{what} works on a traced gf.Graph, got {type(obj).__name__}")


def _is_one_array(obj: Any) -> bool:
    """NumPy arrays, scalars and foreign tensors (jax.Array, torch CPU tensors): anything that
    converts to one array by ``__array__``, as opposed to a list/tuple of per-input arrays."""
    return (isinstance(obj, np.ndarray) or np.isscalar(obj)
            or (not isinstance(obj, (list, tuple)) and hasattr(obj, "__array__") and hasattr(obj, "shape")))


def bind_inputs(graph: Graph, inputs: Any) -> tuple[list[np.ndarray], dict[str, int]]:
    """Match runtime arrays to the graph's inputs: a dict by name, a sequence in order, or a single
    array for a one-input graph. Checks ranks, static dims and dtypes, and binds symbolic dims
    consistently across inputs (``batch`` must be the same everywhere)."""
    specs = graph.inputs
    if isinstance(inputs, Mapping):
        names = [v.name for v in specs]
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if missing == ["rng"] and "rng" in names:
            inputs = dict(inputs, rng=np.uint32(0))
            missing = []
        if unknown or missing:
            raise InputError(f"graph {graph.name!r} takes inputs {names}; "
                             + (f"missing {missing}" if missing else "") + ("; " if missing and unknown else "")
                             + (f"unexpected {unknown}" if unknown else ""))
        arrays = [inputs[n] for n in names]
    else:
        if _is_one_array(inputs):
            inputs = [inputs]
        try:
            arrays = list(inputs)
        except TypeError:
            raise InputError(f"graph {graph.name!r}: inputs must be a dict name -> array, a sequence of "
                             f"arrays or one array, got {type(inputs).__name__}") from None
        if len(arrays) == len(specs) - 1 and specs and specs[-1].name == "rng":
            arrays.append(np.uint32(0))
        if len(arrays) != len(specs):
            # a nested Python list for a one-input graph is the usual way to land here
            hint = ("a list or tuple is read as one array per input; pass one input as a NumPy array "
                    "(np.asarray(data, dtype=...)) or a dict name -> array") if isinstance(inputs, (list, tuple)) else None
            raise InputError(f"graph {graph.name!r} takes {len(specs)} inputs "
                             f"({', '.join(v.name for v in specs)}), got {len(arrays)}", hint=hint)
    out = []
    for spec, array in zip(specs, arrays):
        want = _dt.to_numpy_dtype(spec.type.dtype)
        try:
            array = np.asarray(array)
        except Exception as exc:  # noqa: BLE001 - any object that is not array-like
            raise InputError(f"input {spec.name!r} is not array-like: {exc}") from None
        if _dt.is_string(spec.type.dtype) and array.dtype.kind in "OUS":  # text: object arrays of str
            try:
                array = _dt.as_string_array(array)
            except GraphforgeError as exc:
                raise InputError(f"input {spec.name!r}: {exc.detail}") from None
        if array.dtype != want:
            # Same-kind conversions (float64 -> float32, int32 -> int64) are what users expect;
            # crossing kinds (float data into an integer input) is a mistake worth naming.
            if _kind(array.dtype) != _kind(want):
                raise InputError(f"input {spec.name!r} has dtype {array.dtype}, the graph expects "
                                 f"{spec.type.dtype}", hint=f"convert it with array.astype('{spec.type.dtype}')")
            array = array.astype(want)
        if array.ndim != len(spec.type.shape):
            raise InputError(f"input {spec.name!r} has shape {array.shape}, the graph expects "
                             f"{spec.type} (rank {len(spec.type.shape)})")
        out.append(array)
    env, bound_by = _bind_symbols(graph, specs, out)
    check_guards(graph, env, bound_by)
    return out, env


def _bind_symbols(graph: Graph, specs, arrays) -> tuple[dict[str, int], dict[str, str]]:
    """Bind every symbolic dim of the inputs from the arrays' shapes; ``bound_by`` says which input
    and axis gave each symbol its value, so a disagreement names both inputs."""
    env: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    pending = []
    for spec, array in zip(specs, arrays):
        for axis, (dim, actual) in enumerate(zip(spec.type.shape, array.shape)):
            if type(dim) is int:
                if dim != actual:
                    raise InputError(f"input {spec.name!r} has shape {array.shape}, the graph expects "
                                     f"{spec.type}: axis {axis} is {actual}, expected {dim}")
                continue
            pending.append((spec, array, axis, dim, actual))
    # plain symbols first, then expressions (seq+1) whose other symbols are bound by then
    pending.sort(key=lambda item: len(dim_symbols(item[3])) != 1 or item[3] not in dim_symbols(item[3]))
    while pending:
        progress, left = False, []
        for item in pending:
            spec, array, axis, dim, actual = item
            unknown = dim_symbols(dim) - env.keys()
            if len(unknown) > 1:
                left.append(item)
                continue
            if not unify_dims(dim, actual, env):
                raise InputError(_conflict(spec, array, axis, dim, actual, env, bound_by))
            for sym in unknown:
                bound_by[sym] = f"input {spec.name!r} axis {axis}"
            progress = True
        if not progress:
            spec, array, axis, dim, actual = left[0]
            raise InputError(f"input {spec.name!r} has shape {array.shape}, the graph expects {spec.type}: "
                             f"axis {axis} ({dim}) cannot be solved for its symbols from the size {actual}",
                             hint="give one input a plain symbol for each dim (e.g. 'seq') so it can be bound")
        pending = left
    return env, bound_by


def _conflict(spec, array, axis, dim, actual, env, bound_by) -> str:
    text = (f"input {spec.name!r} has shape {array.shape}, the graph expects {spec.type}: "
            f"axis {axis} is {actual}, expected {dim}")
    syms = sorted(s for s in dim_symbols(dim) if s in env)
    if dim in env:  # two inputs disagree about one symbol: name both
        text += f" (already bound to {env[dim]}); {bound_by.get(dim, 'another input')} bound {dim} = {env[dim]}"
    elif syms:
        text += f" (= {resolve_dim(dim, env)}: " + "; ".join(
            f"{s} = {env[s]} bound by {bound_by.get(s, 'another input')}" for s in syms) + ")"
    return text


def resolve_params(graph: Graph, params: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The graph's stored parameters overridden by ``params``; checks names and shapes."""
    merged = dict(graph.params)
    if params:
        unknown = sorted(set(params) - set(graph.param_values))
        if unknown:
            raise InputError(f"params given for names the graph does not have: {', '.join(unknown[:10])}")
        for name, value in params.items():
            value = np.asarray(value)
            want = graph.param_values[name].type
            if tuple(value.shape) != tuple(want.shape):
                raise InputError(f"param {name!r} has shape {value.shape}, the graph expects {want}")
            merged[name] = value.astype(_dt.to_numpy_dtype(want.dtype), copy=False)
    missing = [n for n in graph.param_values if n not in merged]
    if missing:
        raise LoadError(f"graph {graph.name!r} has no values for parameters {', '.join(missing[:10])}",
                        hint="pass params=... to gf.run, or load them with gf.load_params")
    return merged


def _kind(dtype: np.dtype) -> str:
    try:
        name = _dt.from_numpy_dtype(dtype)
    except Exception:  # noqa: BLE001 - object arrays, strings, ...
        return "other"
    if _dt.is_string(name):
        return "string"
    return "float" if _dt.is_float(name) else "bool" if name == "bool" else "int"
