"""Back ends: the NumPy reference interpreter, JAX/XLA and ONNX/onnxruntime, and the dispatcher
that picks one by name (``gf.run`` is this ``run``).

Each back end is imported only when used, so ``import graphforge`` loads no jax or onnx module."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import numpy as np

from graphforge.errors import InputError
from graphforge.ir.graph import Graph
from graphforge.runtime import bind_inputs, require_graph, resolve_params

from .run_guard import check_output_sizes

__all__ = ["run", "get_backend", "BACKENDS"]


# name -> module implementing ``run(graph, arrays, env, params) -> list[np.ndarray]``
BACKENDS = {
    "reference": "graphforge.runtimes.reference",
    "numpy": "graphforge.runtimes.reference",
    "jax": "graphforge.runtimes.jax",
    "onnxruntime": "graphforge.runtimes.onnx",
    "ort": "graphforge.runtimes.onnx",
}


def get_backend(name: str):
    """The back-end module for ``name`` (imported on first use, so ``import graphforge`` loads none)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(sorted(set(BACKENDS)))}")
    return importlib.import_module(BACKENDS[name])


def run(graph: Graph, inputs: Any, backend: str = "reference", params: Mapping[str, np.ndarray] | None = None,
        **options) -> list[np.ndarray]:
    """Evaluate ``graph`` on ``inputs`` with a back end (``"reference"``, ``"jax"``,
    ``"onnxruntime"``); returns the list of output arrays."""
    graph = require_graph(graph, "gf.run")
    module = get_backend(backend)
    arrays, env = bind_inputs(graph, inputs)
    check_output_sizes(graph, env)  # an output no machine here can hold: a typed error, before any allocation
    return module.run(graph, arrays, env, resolve_params(graph, params), **options)
