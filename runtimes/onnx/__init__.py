"""ONNX back end: lower a Graph to a checked ``onnx.ModelProto`` and run it in onnxruntime.

- ``to_onnx(graph, opset=None, *, external_data_threshold=2**31, name=None)`` → ``onnx.ModelProto``
  (passes ``onnx.checker`` full_check and strict shape inference); ``save_onnx(graph, path, ...)``
  writes it atomically, large weights in an external data file beside it.
- ``opset``: any of 17 … :func:`max_opset` (the newest the installed onnx and onnxruntime support,
  the default); LayerNormalization is native from 17, Gelu from 20, Attention from 23, decomposed below.
- ``run(graph, arrays, env, params, **options)`` is ``gf.run(..., backend="onnxruntime")``;
  :class:`OrtSession` is the reusable session.
- The lowering table: ``LOWERINGS`` / ``@lowers("op")`` in ``lower*.py``; ``missing_lowerings()``.
"""
from __future__ import annotations

from .export import MIN_OPSET, check_opset, default_opset, max_opset, missing_lowerings, save_onnx, to_onnx
from .lower import LOWERINGS, Emitter, NotExpressible, has_lowering, lowers
from .session import OrtSession, default_providers, run

__all__ = ["to_onnx", "save_onnx", "run", "OrtSession", "LOWERINGS", "lowers", "has_lowering", "missing_lowerings",
           "max_opset", "default_opset", "check_opset", "MIN_OPSET", "Emitter", "NotExpressible",
           "default_providers"]
