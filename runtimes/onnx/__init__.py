"""ONNX back end: lower a Graph to a checked ``onnx.ModelProto`` and run it in onnxruntime.

- ``to_onnx(graph, opset=None, *, external_data_threshold=2**31, name=None, params_as_inputs=False,
  native_ops=None)`` → ``onnx.ModelProto``
  (passes ``onnx.checker`` full_check and strict shape inference); ``save_onnx(graph, path, ...)``
  writes it atomically, large weights in an external data file beside it.
- ``opset``: any of 17 … :func:`max_opset` (the newest the installed onnx and onnxruntime support,
  the default). The composites LayerNormalization (opset 17+), Gelu (20+) and Attention (23+) are
  emitted as native ops where the opset defines them *and* the installed onnxruntime has a kernel
  for that version (probed once, ``kernels.ort_runs_natively``; onnxruntime 1.32 has none for
  Attention at 25+ and would expand it into ~59 nodes), else as graphforge's decomposition;
  ``native_ops=True`` forces every native op the opset has (for another runtime), ``False`` none,
  a set of op names just those.
- Exports are tight: outputs are written by their producers (no renaming Identity), symbolic
  reshapes use Flatten or constant shapes (``0`` copies a dim, one ``-1``), dead nodes are dropped.
- ``run(graph, arrays, env, params, **options)`` is ``gf.run(..., backend="onnxruntime")``;
  :class:`OrtSession` is the reusable session.
- The lowering table: ``LOWERINGS`` / ``@lowers("op", when=...)`` in ``lower.py``, filled by one module
  per op family (``elementwise.py``, ``nn_ops.py``…); ``missing_lowerings()``. Every export first runs
  the ``decompose`` pass (on a copy) for the composites the table does not take as they are.
"""
from __future__ import annotations

from .export import MIN_OPSET, check_opset, default_opset, max_opset, missing_lowerings, save_onnx, to_onnx
from .kernels import ort_runs_natively
from .lower import LOWERINGS, Emitter, NotExpressible, has_lowering, lowers
from .session import OrtSession, default_providers, run

__all__ = ["to_onnx", "save_onnx", "run", "OrtSession", "LOWERINGS", "lowers", "has_lowering", "missing_lowerings",
           "max_opset", "default_opset", "check_opset", "MIN_OPSET", "Emitter", "NotExpressible",
           "default_providers", "ort_runs_natively"]
