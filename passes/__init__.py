"""Graph-to-graph passes and the PassManager.

``optimize(graph, pipeline="default")`` runs a pipeline of registered passes on a copy of a graph;
``register_pass`` (:mod:`graphforge.passes.registry`) adds a pass with its contract;
:data:`DEFAULT_PIPELINE` is what ``gf.optimize(g)`` runs. Built-in passes: ``infer``, ``fold``,
``cse``, ``dce``, ``simplify`` and ``fuse`` (rule sets in :mod:`graphforge.passes.simplify_rules` and
:mod:`graphforge.passes.fusion`, written with :mod:`graphforge.passes.pattern`, run by
:mod:`graphforge.passes.engine`), and ``grad`` (reverse-mode autodiff)."""
from .manager import (DEFAULT_PIPELINE, MAX_ITERATIONS, PIPELINES, PassManager, PassRecord, PassReport,
                      get_pass, list_passes, optimize, parse_pipeline, register_pass)
from .registry import PassInfo, pass_info  # noqa: E402
from . import autodiff, cse, dce, decompose, fold, fuse, infer, simplify  # noqa: F401,E402  (register the built-in passes)
from . import hoist  # noqa: F401,E402  (loop-invariant code motion out of scan/while bodies)
from . import loop_weights  # noqa: F401,E402  (a loop's (out, in) weights transposed once, before it)

__all__ = ["DEFAULT_PIPELINE", "MAX_ITERATIONS", "PIPELINES", "PassManager", "PassRecord", "PassReport",
           "get_pass", "list_passes", "optimize", "parse_pipeline", "register_pass", "PassInfo", "pass_info"]
from . import quantize  # noqa: F401,E402  (post-training quantization passes)
from . import fold_residual_bias  # noqa: F401,E402  (post-norm residual biases into the norm; inference exports)
from . import mixed_precision  # noqa: F401,E402  (registers the mixed_precision pass)
