"""A run-time size check before a back end runs a graph: outputs that cannot fit in memory.

A graph imported from an untrusted ONNX file may compute a terabyte-sized value at run time (the
import budget keeps ``ConstantOfShape([2**20, 2**20])`` as run-time computation, as it should).
Every back end must hand its outputs back as host NumPy arrays, so an output larger than the
machine's physical memory can never be returned: without this check the reference interpreter
raises ``MemoryError`` after trying, onnxruntime fails in its arena, and JAX/XLA aborts the whole
process (an absl ``Check failed`` while converting the failed buffer). Shapes are known once the
inputs are bound, so the check refuses such a graph before anything is allocated, with a typed
error naming the output, its producer and the size.

Intermediate values are not checked: XLA may fuse them away (a broadcast feeding a reduction).
``GRAPHFORGE_MAX_OUTPUT_BYTES`` (bytes, ``k``/``M``/``G`` suffixes) overrides the limit.
"""
from __future__ import annotations

import math
import os
import re
from typing import Mapping

from graphforge import dtypes as _dt
from graphforge.errors import BackendError, ConfigError, GraphforgeError
from graphforge.ir.dims import resolve_dim
from graphforge.ir.graph import Graph

__all__ = ["ENV_VAR", "max_output_bytes", "check_output_sizes"]

ENV_VAR = "GRAPHFORGE_MAX_OUTPUT_BYTES"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def max_output_bytes() -> int | None:
    """The limit: the environment variable, else the physical memory (None when unknown)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        m = re.fullmatch(r"(\d+)\s*([kKmMgGtT]?)(i?[bB])?", raw)
        if not m:
            raise ConfigError(f"{ENV_VAR}={raw!r} is not a byte count",
                              hint="use an integer number of bytes, optionally with a k/M/G suffix (e.g. 8G)")
        return int(m.group(1)) * _UNITS[m.group(2).lower()]
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _format(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def check_output_sizes(graph: Graph, env: Mapping[str, int]) -> None:
    """Raise :class:`BackendError` when an output of ``graph`` (its dims bound by ``env``) is larger
    than :func:`max_output_bytes`."""
    limit = max_output_bytes()
    if limit is None:
        return
    for name, value in zip(graph.output_names, graph.outputs):
        try:
            nbytes = float(_dt.to_numpy_dtype(value.type.dtype).itemsize)
        except (GraphforgeError, TypeError, AttributeError):
            continue
        for d in value.type.shape:
            try:
                nbytes *= float(d if isinstance(d, int) else resolve_dim(d, env))
            except GraphforgeError:  # a data-dependent length: known only once the node has run
                nbytes = 0.0
                break
        if math.isfinite(nbytes) and nbytes > limit:
            node = value.producer
            where = f" (computed by {node.op}{' @ ' + node.scope if getattr(node, 'scope', '') else ''})" if node else ""
            raise BackendError(f"output {name!r}{where} would be {_format(nbytes)} "
                               f"({value.type}), more than the {_format(limit)} this machine can hold",
                               hint=f"a model from an untrusted file can ask for any size; if this is intended, "
                                    f"set {ENV_VAR}")
