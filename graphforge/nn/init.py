"""Parameter initialisers (PyTorch's defaults), deterministic in a NumPy Generator.

An initialiser is ``init(shape, rng, dtype) -> np.ndarray``; fan-in/fan-out follow PyTorch
(``fan_in = shape[1] * prod(shape[2:])`` for weights of rank >= 2)."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt

__all__ = ["fans", "kaiming_uniform", "xavier_uniform", "uniform_fan_in", "zeros", "ones", "normal",
           "constant"]


def fans(shape) -> tuple[int, int]:
    if len(shape) < 2:
        n = int(shape[0]) if shape else 1
        return n, n
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _cast(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(_dt.to_numpy_dtype(dtype))


def kaiming_uniform(a: float = math.sqrt(5), fan_in: int | None = None):
    """PyTorch's default for Linear/Conv weights (``a=sqrt(5)`` gives bound ``1/sqrt(fan_in)``)."""
    def init(shape, rng, dtype="float32"):
        fi = fan_in or fans(shape)[0]
        gain = math.sqrt(2.0 / (1 + a * a))
        bound = gain * math.sqrt(3.0 / fi)
        return _cast(rng.uniform(-bound, bound, size=shape), dtype)
    return init


def uniform_fan_in(fan_in: int):
    """PyTorch's bias initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    def init(shape, rng, dtype="float32"):
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return _cast(rng.uniform(-bound, bound, size=shape), dtype)
    return init


def xavier_uniform(gain: float = 1.0):
    def init(shape, rng, dtype="float32"):
        fi, fo = fans(shape)
        bound = gain * math.sqrt(6.0 / (fi + fo))
        return _cast(rng.uniform(-bound, bound, size=shape), dtype)
    return init


def normal(std: float = 1.0, mean: float = 0.0):
    def init(shape, rng, dtype="float32"):
        return _cast(rng.normal(mean, std, size=shape), dtype)
    return init


def constant(value: float):
    def init(shape, rng, dtype="float32"):
        return np.full(shape, value, dtype=_dt.to_numpy_dtype(dtype))
    return init


def zeros(shape, rng=None, dtype="float32"):
    return np.zeros(shape, dtype=_dt.to_numpy_dtype(dtype))


def ones(shape, rng=None, dtype="float32"):
    return np.ones(shape, dtype=_dt.to_numpy_dtype(dtype))
