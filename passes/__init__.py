"""Graph-to-graph passes and the PassManager.

``optimize(graph, pipeline="default")`` runs a pipeline of registered passes on a copy of a graph;
``register_pass`` adds a pass; :data:`DEFAULT_PIPELINE` is what ``gf.optimize(g)`` runs. Built-in
passes: ``infer``, ``fold``, ``cse``, ``dce``, ``simplify``, ``fuse`` (rules in
:mod:`graphforge.passes.fusion`, written with :mod:`graphforge.passes.pattern`)."""
from .manager import (DEFAULT_PIPELINE, MAX_ITERATIONS, PIPELINES, PassManager, PassRecord, PassReport,
                      get_pass, list_passes, optimize, parse_pipeline, register_pass)
from . import cse, dce, fold, fuse, infer, simplify  # noqa: F401,E402  (register the built-in passes)

__all__ = ["DEFAULT_PIPELINE", "MAX_ITERATIONS", "PIPELINES", "PassManager", "PassRecord", "PassReport",
           "get_pass", "list_passes", "optimize", "parse_pipeline", "register_pass"]
