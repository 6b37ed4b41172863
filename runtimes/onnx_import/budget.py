"""The import budget: how many bytes an ONNX import may materialise in NumPy while it runs.

An ONNX file is untrusted input, and a few bytes of it (``ConstantOfShape([2**20, 2**20])``,
``Range(0, 2**40)``, ``Tile`` ×2**40) describe values of terabytes. The importer computes values
at import time only within this budget: it counts every array it folds or builds, leaves a value
that does not fit as run-time computation where the op allows, and raises :class:`LoadError`
naming the node and the size where it cannot. The budget is the total over one import; set it with
``from_onnx(..., max_constant_bytes=N)`` or the environment variable
``GRAPHFORGE_MAX_CONSTANT_BYTES`` (bytes; ``k``/``M``/``G`` suffixes accepted).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from graphforge.errors import LoadError

__all__ = ["ImportBudget", "DEFAULT_MAX_CONSTANT_BYTES", "ENV_VAR", "resolve_max_constant_bytes",
           "format_bytes", "nbytes_of"]

DEFAULT_MAX_CONSTANT_BYTES = 256 << 20
"""256 MiB: shape arithmetic and folded integer tables of real models use kilobytes; weights are read
from the file (bounded by its size), not counted here."""
ENV_VAR = "GRAPHFORGE_MAX_CONSTANT_BYTES"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def format_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({int(n)} bytes)"
    return f"{int(n)} bytes"


def resolve_max_constant_bytes(explicit: int | None = None) -> int:
    """The budget in bytes: ``explicit`` if given, else the environment variable, else the default."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 0:
            raise LoadError(f"max_constant_bytes must be a non-negative int, got {explicit!r}")
        return explicit
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_CONSTANT_BYTES
    m = re.fullmatch(r"(\d+)\s*([kKmMgGtT]?)(i?[bB])?", raw)
    if not m:
        raise LoadError(f"{ENV_VAR}={raw!r} is not a byte count",
                        hint="use an integer number of bytes, optionally with a k/M/G suffix (e.g. 512M)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class ImportBudget:
    """Bytes left to materialise during one import."""

    def __init__(self, limit: int):
        self.limit = limit
        self.spent = 0

    def afford(self, nbytes: float) -> bool:
        """Charge ``nbytes`` and return True when they fit; return False (charging nothing) otherwise."""
        if not math.isfinite(nbytes) or nbytes < 0 or self.spent + nbytes > self.limit:
            return False
        self.spent += int(nbytes)
        return True

    def require(self, nbytes: float, what: str, node_desc: str) -> None:
        """Charge ``nbytes`` or raise the typed error naming the node, the value and both sizes."""
        if self.afford(nbytes):
            return
        size = format_bytes(nbytes) if math.isfinite(nbytes) else "an unbounded size"
        raise LoadError(f"{node_desc}: {what} would need {size} at import time, over the import budget of "
                        f"{format_bytes(self.limit)} ({format_bytes(self.spent)} already used)",
                        hint=f"if the model is trusted, raise the budget: from_onnx(..., max_constant_bytes=N) "
                             f"or {ENV_VAR}=N")


def nbytes_of(shape, itemsize: int) -> float:
    """Bytes of a tensor of ``shape`` (a float, so absurd shapes do not overflow)."""
    n = float(itemsize)
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            return math.inf  # a symbolic dim has no import-time size
        n *= float(d)
    return n
