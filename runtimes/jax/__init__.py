"""JAX/XLA back end: lower a Graph to a pure JAX function and ``jax.jit`` it.

``lower(graph, env)`` gives ``f(params: dict, inputs: tuple) -> tuple(outputs)``; ``compile_graph``
jits it (cached per graph identity + structure and input signature); ``run`` is the ``gf.run``
entry point (``backend="jax"``) and returns NumPy arrays. ``lower`` first runs the ``decompose``
pass (on a copy) for the composite ops the table has no lowering for (``layer_norm`` reaches XLA as
its registry decomposition, which XLA fuses), see :func:`decomposed`, and the ``loop_weights`` pass
(a loop body's ``(out, in)`` weights transposed once before the loop), see :func:`prepared`.

float64: JAX truncates 64-bit types unless x64 is enabled. We never flip the global flag
(``jax.config.update("jax_enable_x64", True)`` would leak into the user's own JAX code); every
trace, compile and call of a lowered graph runs inside the scoped ``jax.enable_x64(True)`` context
(jax ≥ 0.7), so float64/int64 graphs compute in 64 bits while float32 graphs stay float32 (every
lowering is explicit about dtypes). Symbolic dims are resolved from the concrete input shapes.
GPU: jit places the computation on ``jax.devices()[0]``, i.e. the GPU when there is one.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from graphforge.errors import BackendError, GraphforgeError, UnsupportedOpError
from graphforge.ir.dims import has_symbolic_attr, resolve_attr_dims, resolve_shape
from graphforge.ir.graph import Graph
from graphforge.ops.registry import lookup_op
from graphforge.passes.decompose import decompose
from graphforge.passes.hoist import LOOP_OPS
from graphforge.passes.loop_weights import loop_weights, scanned_biases, transposed_loop_weights

# Importing the family modules fills LOWERINGS (one module per graphforge/ops family).
from . import creation, elementwise, linalg, nn_ops, reduction, shape_ops  # noqa: F401
from . import control_flow  # noqa: F401
from . import random  # noqa: F401,E402  (random_uniform)
from . import math_ops  # noqa: F401
from . import quantize  # noqa: F401,E402  (quantized ops)
from . import contraction  # noqa: F401  (einsum)
from . import selection  # noqa: F401  (topk)
from . import data_dependent  # noqa: F401  (nonzero, compress, unique, non_max_suppression)
from .lower import LOWERINGS, LowerCtx, apply_lowering, has_lowering, lowers

__all__ = ["run", "lower", "compile_graph", "compiled_count", "x64", "LOWERINGS", "lowers", "has_lowering",
           "missing_lowerings", "signature", "decomposed", "prepared"]

_PRECISION = {"highest": lax.Precision.HIGHEST, "default": None, "high": lax.Precision.HIGH}


def x64():
    """The scoped 64-bit context every lowered graph is traced, compiled and called in."""
    return jax.enable_x64(True)


def missing_lowerings() -> list[str]:
    """Registry ops with neither a JAX lowering nor a decomposition to fall back on."""
    from graphforge.ops.registry import all_ops
    return sorted(n for n, d in all_ops().items() if not has_lowering(n) and d.decompose is None)


def _decomposable(op: str) -> bool:
    opdef = lookup_op(op)
    return opdef is not None and opdef.decompose is not None


def _working_copy(graph: Graph, outputs=None) -> tuple[Graph, list | None]:
    """A copy of ``graph`` for the lowering's own passes, and ``outputs`` (Values of ``graph``)
    made the copy's outputs (a pass redirects them as it rewrites)."""
    work = graph.copy()
    if outputs is not None:
        # Graph.copy keeps inputs, params and nodes in order: pair the old Values with the new
        mapping = {id(a): b for a, b in zip(graph.inputs, work.inputs)}
        mapping.update((id(v), work.param_values[n]) for n, v in graph.param_values.items())
        for old, new in zip(graph.nodes, work.nodes):
            mapping.update((id(a), b) for a, b in zip(old.outputs, new.outputs))
        work.set_outputs([mapping[id(v)] for v in outputs])
    return work, outputs


def decomposed(graph: Graph, outputs=None) -> tuple[Graph, list | None]:
    """``graph`` with every composite op the JAX table does not lower (``layer_norm``…) replaced by
    its registry decomposition (the ``decompose`` pass, on a copy; the graph itself when there is
    none), and ``outputs`` (Values of ``graph``) mapped to the copy's."""
    if all(LOWERINGS.can_lower(n) or not _decomposable(n.op) for n in graph.walk()):
        return graph, outputs
    work, outputs = _working_copy(graph, outputs)
    refused: list = []
    work, _ = decompose(work, LOWERINGS.can_lower, refused=refused)
    if refused:
        node, why = refused[0]
        raise UnsupportedOpError(f"no JAX lowering for {node.op}, and {why}", ops=[node.op],
                                 scope=node.scope, op=node.op, loc=node.loc)
    return work, (list(work.outputs) if outputs is not None else None)


def prepared(graph: Graph, outputs=None) -> tuple[Graph, list | None]:
    """What :func:`lower` lowers: :func:`decomposed`, then (on the same working copy) the
    ``loop_weights`` pass when a loop body reads a loop-invariant ``(out, in)`` weight — YNNPACK
    would transpose it on every step — or a scan reads a biased input projection (the bias is added
    in the body, fused there, instead of in a second pass over the stacked input; passes/loop_weights.py).
    The graph itself when neither applies."""
    work, outs = decomposed(graph, outputs)
    if not any(n.op in LOOP_OPS and (transposed_loop_weights(n) or scanned_biases(n)) for n in work.walk()):
        return work, outs
    if work is graph:
        work, outs = _working_copy(graph, outputs)
    loop_weights(work)
    return work, (list(work.outputs) if outs is not None else None)


def lower(graph: Graph, env: Mapping[str, int], *, precision: str = "highest", outputs=None, eager: bool = False):
    """``f(params, inputs) -> tuple`` evaluating ``graph`` with JAX ops (pure, jit-able).

    ``params`` maps param/buffer/const names to arrays; names absent from it are baked in from
    ``graph.params`` as constants. ``outputs`` selects Values to return (default: graph outputs).
    A node whose result length depends on the data (ops/data_dependent.py: a dim no input binds) is
    refused with ``UnsupportedOpError`` (jax.jit needs static shapes) unless ``eager``: then ``f`` is
    meant to run op by op outside jax.jit (what ``run`` does for such graphs)."""
    prec = _PRECISION[precision]
    graph, outputs = prepared(graph, outputs)
    refuse_strings(graph)  # XLA has no string type (runtimes/jax/strings.py)
    missing = sorted({n.op for n in graph.walk() if not has_lowering(n.op) and n.op != "yield"})
    if missing:
        raise UnsupportedOpError(f"no JAX lowering for op(s) {', '.join(missing)}")
    plan = []
    for node in graph.nodes:
        try:
            shapes = [tuple(resolve_shape(v.type.shape, env)) for v in node.outputs]
        except GraphforgeError:
            if not _data_dependent(node, env):
                raise
            if not eager:
                raise UnsupportedOpError(
                    f"{node.op}: its result {', '.join(str(v.type) for v in node.outputs)} has a length that depends "
                    f"on the data, which jax.jit cannot compile (XLA needs static shapes)", ops=[node.op],
                    hint="gf.run(..., backend='jax') runs such graphs eagerly; 'reference' and 'onnxruntime' run them "
                         "too") from None
            plan.append((node, None, None))  # resolved when it runs, from the lengths bound so far
            continue
        plan.append((node, LowerCtx(node, shapes, prec, env), _concrete_attrs(node, env)))
    outs = list(graph.outputs if outputs is None else outputs)
    stored = graph.params

    def fn(params, inputs):
        vals: dict[int, Any] = {}
        for spec, x in zip(graph.inputs, inputs):
            vals[id(spec)] = x
        for name, v in graph.param_values.items():
            vals[id(v)] = params[name] if name in params else jnp.asarray(stored[name])
        live = dict(env)  # eager runs bind each data-dependent length from the array that has it
        for node, ctx, attrs in plan:
            if ctx is None:
                ctx, attrs = _deferred(node, live, prec)
            res = apply_lowering(node, ctx, [vals[id(v)] for v in node.inputs], attrs)
            for v, r in zip(node.outputs, res):
                vals[id(v)] = r
                if eager:
                    for d, n in zip(v.type.shape, r.shape):
                        if type(d) is str and d not in live and d.isidentifier():
                            live[d] = int(n)
        return tuple(vals[id(o)] for o in outs)

    return fn


def _deferred(node, env: Mapping[str, int], prec):
    """(ctx, attrs) of a node of an eager run, resolved with the lengths bound so far; a result
    dim the node itself introduces stays unknown (None) to its lowering."""
    try:
        shapes = [tuple(resolve_shape(v.type.shape, env)) for v in node.outputs]
    except GraphforgeError:
        shapes = [None] * len(node.outputs)
    return LowerCtx(node, shapes, prec, env), _concrete_attrs(node, env)


def _data_dependent(node, env: Mapping[str, int]) -> bool:
    """Whether ``node`` (or an op before it) has result dims that no input binds."""
    from graphforge.ir.dims import dim_symbols

    return any(dim_symbols(d) - set(env) for v in node.outputs for d in v.type.shape if type(d) is not int)


def _needs_eager(graph: Graph, env: Mapping[str, int]) -> bool:
    return any(_data_dependent(node, env) for node in graph.walk())


def _concrete_attrs(node, env: Mapping[str, int]) -> dict:
    """The node's attributes with symbolic dims (slice bounds, reshape targets, arange bounds)
    resolved: one compilation serves one concrete binding, so lowerings only see ints."""
    from graphforge.ops.registry import lookup_op

    attrs = node.attrs
    opdef = lookup_op(node.op)
    if opdef is None or not has_symbolic_attr(attrs) and not any(type(v) is str for v in attrs.values()):
        return attrs
    keys = [k for k, spec in opdef.attrs.items() if spec.kind in ("dim", "dims") and attrs.get(k) is not None]
    return resolve_attr_dims(attrs, keys, env) if keys else attrs


def signature(arrays) -> tuple:
    return tuple((tuple(np.shape(a)), str(np.asarray(a).dtype) if not hasattr(a, "dtype") else str(a.dtype))
                 for a in arrays)


def _fingerprint(graph: Graph) -> tuple:
    nodes = tuple(id(n) for n in graph.walk())  # region bodies too: a pass may edit a loop body in place
    return (len(nodes), nodes, tuple(id(o) for o in graph.outputs))


def compile_graph(graph: Graph, arrays, env: Mapping[str, int], *, precision: str = "highest"):
    """The jitted lowered function for this graph and input signature (cached on the graph, freed
    with it)."""
    per_graph = graph.compiled_cache("jax")
    key = (_fingerprint(graph), signature(arrays), tuple(sorted(env.items())), precision)
    fn = per_graph.get(key)
    if fn is None:
        if len(per_graph) > 32:
            per_graph.clear()
        # graphforge's per-graph XLA:CPU defaults (remat, convolutions: xla_options.py)
        from .xla_options import graph_options
        opts = graph_options(graph, platform=jax.default_backend())
        fn = jax.jit(lower(graph, env, precision=precision), compiler_options=opts or None)
        per_graph[key] = fn
    return fn


def compiled_count(graph: Graph) -> int:
    """How many compilations of ``graph`` are cached (one per concrete input signature)."""
    return len(graph.compiled_cache("jax"))


def run(graph: Graph, arrays, env: Mapping[str, int], params: Mapping[str, np.ndarray], **options) -> list[np.ndarray]:
    """``gf.run(..., backend="jax")``. Options: ``precision``; ``bucket`` ("pow2", an int N or a
    dict symbol -> rule) pads symbolic input dims to buckets (see :mod:`.buckets` for when it is valid)."""
    precision = options.get("precision", "highest")
    bucket = options.get("bucket")
    if bucket is not None:
        from .buckets import bucket_env, crop_outputs, pad_inputs

        padded = bucket_env(graph, env, bucket)
        if padded is not None:
            outs = run(graph, pad_inputs(graph, arrays, padded), padded, params, precision=precision)
            return crop_outputs(graph, outs, env, padded)
    with x64():
        if _needs_eager(graph, env):  # data-dependent lengths: op by op, outside jax.jit
            fn = lower(graph, env, precision=precision, eager=True)
        else:
            fn = compile_graph(graph, arrays, env, precision=precision)
        used = {n: params[n] for n in graph.param_values}
        try:
            # wait here, so that a failed execution raises before its buffers reach NumPy (converting a
            # failed buffer aborts the process inside XLA)
            outs = jax.block_until_ready(fn(used, tuple(jnp.asarray(a) for a in arrays)))
        except Exception as exc:  # noqa: BLE001 - only XLA's out-of-memory status is translated
            if "RESOURCE_EXHAUSTED" not in str(exc):
                raise
            raise BackendError(f"XLA ran out of memory running graph {graph.name!r}: {str(exc).strip()[:300]}",
                               hint="a model from an untrusted file can ask for any size; run it with smaller "
                                    "inputs or on a machine with more memory") from None
        return [np.asarray(o) for o in outs]
from . import barrier as _barrier  # noqa: E402,F401  (optimization_barrier)
from . import linalg_det  # noqa: F401,E402  (det)
from .strings import refuse_strings  # noqa: E402  (string tensors: refused, typed)
