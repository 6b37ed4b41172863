"""Concrete inputs for conformance samples (shared by the op-table tests, the fuzzer and benchmarks).

Domains: ``any`` (standard normal), ``positive`` (0.5..2), ``above_one`` (1.1..3), ``unit`` (-0.9..0.9), ``nonzero`` (|x| in
0.5..2 with random sign), ``distinct`` (a shuffled grid: no ties, gaps of at least 0.1),
``permutation`` (distinct integers), ``int:LO:HI`` (integers in [LO, HI)), ``bool``,
``unclipped:LO:HI`` (values at least 0.05 away from the bounds), or a fixed NumPy array (repeated to fit
another shape).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..ir.dims import resolve_shape
from .registry import Sample

__all__ = ["make_inputs", "sample_env"]


def sample_env(sample: Sample) -> dict[str, int]:
    return dict(sample.bind)


def _fill(shape, dtype: str, domain, rng: np.random.Generator) -> np.ndarray:
    np_dtype = _dt.to_numpy_dtype(dtype)
    if isinstance(domain, np.ndarray):
        if domain.shape != tuple(shape) and domain.size:
            # fixed values asked for another shape (a test re-shaping a sample's inputs, a fuzzer
            # broadcasting an operand): the values repeated, so their properties (non-zero, in range) hold
            domain = np.resize(domain, shape)
        return domain.astype(np_dtype)
    size = int(np.prod(shape, dtype=np.int64))
    if dtype == "string":
        # text for a string tensor whatever domain was asked (a fuzzer appending an operand asks
        # "any"): numerals from a small vocabulary, so equality has hits and a cast to a number works
        words = np.array(["1.5", "-2", "0", "3e1", "7", "42"], dtype=object)
        return np.asarray(words[rng.integers(0, len(words), size=shape)], dtype=object)
    if domain == "bool" or dtype == "bool":
        return rng.random(shape) < 0.5
    if isinstance(domain, str) and domain.startswith("int:"):
        lo, hi = (int(v) for v in domain.split(":")[1:3])
        return rng.integers(lo, hi, size=shape).astype(np_dtype)
    if domain == "permutation":
        return rng.permutation(size).reshape(shape).astype(np_dtype)
    if domain == "positive":
        x = rng.uniform(0.5, 2.0, size=shape)
    elif domain == "above_one":
        x = rng.uniform(1.1, 3.0, size=shape)
    elif domain == "unit":
        x = rng.uniform(-0.9, 0.9, size=shape)
    elif domain == "nonzero":
        x = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    elif domain == "distinct":
        x = (rng.permutation(size) - size / 2) * 0.1 + 0.05
        x = x.reshape(shape)
    elif isinstance(domain, str) and domain.startswith("unclipped:"):
        lo_t, hi_t = domain.split(":")[1:3]
        lo = float(lo_t) if lo_t else -2.0
        hi = float(hi_t) if hi_t else 2.0
        x = rng.uniform(lo - 1.0, hi + 1.0, size=shape)
        near = np.minimum(np.abs(x - lo), np.abs(x - hi)) < 0.05
        x = np.where(near, x + 0.1, x)
    else:
        x = rng.standard_normal(size=shape)
    if not _dt.is_float(dtype):
        x = np.round(x * 3)
    return np.asarray(x).astype(np_dtype)


def make_inputs(sample: Sample, seed: int = 0) -> list[np.ndarray]:
    """Concrete arrays for ``sample``'s inputs, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    env = sample_env(sample)
    domains = list(sample.domain) if sample.domain is not None else ["any"] * len(sample.inputs)
    return [_fill(resolve_shape(t.shape, env), t.dtype, d, rng) for t, d in zip(sample.inputs, domains)]
