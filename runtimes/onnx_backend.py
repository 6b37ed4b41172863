"""graphforge as an ``onnx.backend.base.Backend``: ONNX → IR (``from_onnx``) → JAX back end.

Used by onnx's own conformance suite (``onnx.backend.test.BackendTest``, see tests/conformance).
The reference (NumPy) interpreter is used when the JAX back end is not available, and for a graph
holding string tensors (XLA has no string type; runtimes/jax/strings.py refuses them).
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from graphforge.errors import GraphforgeError

from .onnx_import import from_onnx

__all__ = ["GraphforgeBackend", "GraphforgeRep", "default_backend", "prepare", "run_model", "run_node",
           "supports_device"]


def default_backend() -> str:
    """``"jax"`` when the JAX lowering is importable and registers lowerings, else ``"reference"``."""
    try:
        mod = importlib.import_module("graphforge.runtimes.jax")
        if hasattr(mod, "run"):
            return "jax"
    except Exception:  # noqa: BLE001
        pass
    return "reference"


class GraphforgeRep(BackendRep):
    """A prepared model. When an import-time constant (a shape, axes, pads…) is a graph input, the
    model is specialised on the values it is run with (one imported graph per distinct value set)."""

    def __init__(self, model: onnx.ModelProto, graph, backend: str, static: tuple[str, ...] = ()):
        self.model = model
        self.graph = graph
        self.backend = backend
        self.static = static  # ONNX input names specialised at run time
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in inits]
        from .onnx_import.sequences import is_aggregate_type

        # sequence/optional inputs: the graph is specialised on their structure (sequences.py)
        self.aggregates = tuple(vi.name for vi in model.graph.input
                                if vi.name not in inits and is_aggregate_type(vi.type))
        self._cache: dict = {}
        self._structure: dict[int, list] = {}  # id(graph) -> ONNX output structure (sequence outputs)

    def _graph_for(self, feed: dict):
        if self.graph is not None:
            return self.graph, feed
        from .onnx_import.sequences import flatten_feed, structure_key

        aggs = {n: feed[n] for n in self.aggregates}
        tensors = {n: a for n, a in feed.items() if n not in aggs}
        agg_key = tuple((n, structure_key(x)) for n, x in sorted(aggs.items()))
        consts = {n: np.asarray(tensors[n]) for n in self.static}
        graph = self._cache.get(_key(consts) + agg_key)
        if graph is None:
            # consts grows in place
            graph, structure, self.static = _import_specialised(self.model, consts, tensors, aggs)
            self._cache[_key(consts) + agg_key] = graph
            self._structure[id(graph)] = structure
        rest = {n: a for n, a in tensors.items() if n not in consts}
        for n, x in aggs.items():
            rest.update(flatten_feed(n, x))
        return graph, rest

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        from graphforge.runtimes import run as gf_run
        from graphforge.runtimes.onnx_import.importer import sanitize

        from .onnx_import.sequences import regroup

        def arr(n, a):  # sequence/optional inputs stay lists / None
            return a if n in self.aggregates else np.asarray(a)

        if isinstance(inputs, dict):
            feed = {n: arr(n, inputs[n]) for n in self.input_names}
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            feed = {n: arr(n, a) for n, a in zip(self.input_names, arrays)}
        graph, rest = self._graph_for(feed)
        backend = "reference" if self.backend == "jax" and _has_strings(graph) else self.backend
        outs = gf_run(graph, {sanitize(n): a for n, a in rest.items()}, backend=backend) if graph.outputs else []
        outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        structure = self._structure.get(id(graph))
        return tuple(regroup(structure, outs)) if structure is not None else tuple(outs)


def _has_strings(graph) -> bool:
    from graphforge.dtypes import STRING

    return any(v.type.dtype == STRING for v in graph.inputs) or any(
        v.type.dtype == STRING for n in graph.walk() for v in list(n.inputs) + list(n.outputs))


def _key(consts: dict) -> tuple:
    return tuple((n, a.dtype.str, a.shape, a.tobytes()) for n, a in sorted(consts.items()))


def _import_specialised(model, consts: dict, feed: dict, aggs: dict | None = None):
    """Import with ``consts`` fixed, adding each graph input the importer asks for (from ``feed``);
    ``aggs``: the sequence/optional inputs' values. Returns (graph, output structure, static names)."""
    from .onnx_import import NeedsConstantError
    from .onnx_import.importer import from_onnx_structured

    while True:
        try:
            graph, structure = from_onnx_structured(model, constant_inputs=consts, aggregate_inputs=aggs)
            return graph, structure, tuple(consts)
        except NeedsConstantError as exc:
            if exc.tensor in feed and exc.tensor not in consts:
                consts[exc.tensor] = np.asarray(feed[exc.tensor])
                continue
            # computed from the inputs: specialise on every small integer input it may come from
            more = {n: np.asarray(a) for n, a in feed.items() if n not in consts
                    and np.asarray(a).dtype.kind in "iub" and np.asarray(a).size <= 64}
            if not more:  # e.g. a Loop's trip count computed from float bounds (Range's expansion)
                more = {n: np.asarray(a) for n, a in feed.items() if n not in consts and np.asarray(a).size <= 64}
            if not more:
                raise
            consts.update(more)


class GraphforgeBackend(Backend):
    backend_name = None  # None: pick jax when available, else reference

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> GraphforgeRep:
        from .onnx_import import NeedsConstantError
        from .onnx_import.importer import from_onnx_structured

        backend = cls.backend_name or default_backend()
        try:
            graph, structure = from_onnx_structured(model)
            rep = GraphforgeRep(model, graph, backend)
            rep._structure[id(graph)] = structure
            return rep
        except NeedsConstantError:
            pass  # specialised on the values of the constant-like inputs at run time
        return GraphforgeRep(model, None, backend)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple] | None = None, **kwargs: Any) -> tuple:
        raise GraphforgeError("run_node is not supported; build a one-node model instead")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device in ("CPU", "CUDA")


prepare = GraphforgeBackend.prepare
run_model = GraphforgeBackend.run_model
run_node = GraphforgeBackend.run_node
supports_device = GraphforgeBackend.supports_device
