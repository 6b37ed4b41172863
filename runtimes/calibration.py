"""Activation calibration for static quantization: run a graph on sample batches and pick a range
``(lo, hi)`` for each value ``graphforge.passes.quantize.plan`` asks for.

Methods:

* ``minmax`` — the smallest and largest value seen (outliers included);
* ``percentile`` — the ``percentile``-th and ``(100 - percentile)``-th percentiles of all values
  seen, read from a 2048-bin histogram over the min-max range (a second run over the batches);
* ``entropy`` — the clipping threshold minimising the KL divergence between the value histogram
  and its 128-level quantization (TensorRT's method, as onnxruntime's ``CalibrationMethod.Entropy``),
  applied to each side of 0.

The graph runs in onnxruntime (default) or any back end with every calibrated value as an extra
output of a copy of the graph; the caller's graph is not modified. Ranges always hold 0.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph

__all__ = ["METHODS", "calibrate", "collect_ranges", "percentile_range", "entropy_range", "as_batches"]

METHODS = ("minmax", "percentile", "entropy")
_BINS = 2048


def as_batches(calibration: Any) -> list:
    """The calibration data as a list of run inputs: one array (or dict/list of inputs) is one batch,
    a list/tuple of them several; an ``.npz`` mapping of name → array is one batch of named inputs."""
    if calibration is None:
        raise ConfigError("static quantization needs calibration data",
                          hint="pass calibration=[batch, ...] (arrays or dicts of input arrays)")
    if isinstance(calibration, np.ndarray) or isinstance(calibration, dict) or hasattr(calibration, "files"):
        return [dict(calibration) if hasattr(calibration, "files") else calibration]
    batches = list(calibration)
    if not batches:
        raise ConfigError("the calibration data is empty")
    return batches


def _probe(graph: Graph, keys: list[str]) -> Graph:
    """A copy of ``graph`` whose outputs are the values named by ``keys`` (passes.quantize.value_key)."""
    from graphforge.passes.quantize import value_key

    probe = graph.copy()
    by_key = {v.name: v for v in probe.inputs}
    for node in probe.nodes:
        for out in node.outputs:
            by_key[value_key(probe, out)] = out
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ConfigError(f"calibration: graph {graph.name!r} has no value {missing[0]!r}")
    probe.set_outputs([by_key[k] for k in keys], [f"calib_{i}" for i in range(len(keys))])
    return probe


def _run_all(probe: Graph, batches: list, backend: str) -> Iterable[list[np.ndarray]]:
    from graphforge.runtimes import run

    for batch in batches:
        yield [np.asarray(a, np.float32) for a in run(probe, batch, backend=backend)]


def percentile_range(hist: np.ndarray, edges: np.ndarray, percentile: float) -> tuple[float, float]:
    """The ``(100 - p)``-th and ``p``-th percentiles of the histogrammed values."""
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    lo_i = int(np.searchsorted(cdf, (100.0 - percentile) / 100.0, side="left"))
    hi_i = int(np.searchsorted(cdf, percentile / 100.0, side="left"))
    return float(edges[min(lo_i, len(edges) - 1)]), float(edges[min(hi_i + 1, len(edges) - 1)])


def _smooth(d: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """A distribution with no zero: zeros get ``eps``, taken evenly from the non-zero entries."""
    d = d / d.sum()
    zero = d == 0
    n_zero, n_nonzero = int(zero.sum()), int((~zero).sum())
    if n_nonzero == 0:
        return None
    out = d.copy()
    out[zero] = eps
    out[~zero] -= eps * n_zero / n_nonzero
    return out if (out > 0).all() else None


def _kl_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """The clipping threshold (an edge of ``hist``, which counts |x| from 0) with the least KL
    divergence between the clipped distribution and its ``levels``-level quantization
    (TensorRT's calibration, as onnxruntime's entropy calibrator computes it)."""
    n = len(hist)
    if hist.sum() == 0 or n <= levels:
        return float(edges[-1])
    best, best_i = np.inf, n
    for i in range(levels, n + 1, max(1, (n - levels) // 256)):
        sliced = hist[:i].astype(np.float64)
        p = sliced.copy()
        p[i - 1] += hist[i:].sum()  # the clipped outliers land in the last bin
        nonzero = p != 0
        q = np.zeros(i)
        for idx in np.array_split(np.arange(i), levels):
            live = idx[nonzero[idx]]
            if len(live):
                q[live] = sliced[idx].sum() / len(live)
        ps, qs = _smooth(p), (_smooth(q) if q.sum() > 0 else None)
        if ps is None or qs is None:
            continue
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best:
            best, best_i = kl, i
    return float(edges[best_i])


def entropy_range(values_hist: tuple[np.ndarray, np.ndarray], lo: float, hi: float) -> tuple[float, float]:
    """KL-optimal thresholds for the negative and the positive side of a histogram over [lo, hi]."""
    hist, edges = values_hist
    centres = (edges[:-1] + edges[1:]) / 2
    out = []
    for side, bound in ((centres > 0, hi), (centres < 0, -lo)):
        if bound <= 0 or not side.any():
            out.append(0.0)
            continue
        mags = np.abs(centres[side])
        h, e = np.histogram(mags, bins=_BINS // 2, range=(0.0, bound), weights=hist[side])
        out.append(_kl_threshold(h, e))
    return -out[1], out[0]


def collect_ranges(graph: Graph, keys: list[str], batches: list, *, method: str = "minmax",
                   percentile: float = 99.99, backend: str = "onnxruntime") -> dict[str, tuple[float, float]]:
    """``{key: (lo, hi)}`` for the values ``keys`` of ``graph`` over ``batches`` (see the module doc)."""
    if method not in METHODS:
        raise ConfigError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    if not 50.0 < float(percentile) <= 100.0:
        raise ConfigError(f"percentile must be in (50, 100], got {percentile}")
    if not keys:
        return {}
    probe = _probe(graph, keys)
    lo = np.full(len(keys), np.inf)
    hi = np.full(len(keys), -np.inf)
    for outs in _run_all(probe, batches, backend):
        for i, a in enumerate(outs):
            finite = a[np.isfinite(a)]
            if finite.size:
                lo[i] = min(lo[i], float(finite.min()))
                hi[i] = max(hi[i], float(finite.max()))
    lo = np.minimum(np.where(np.isfinite(lo), lo, 0.0), 0.0)
    hi = np.maximum(np.where(np.isfinite(hi), hi, 0.0), 0.0)
    if method == "minmax":
        return {k: (float(a), float(b)) for k, a, b in zip(keys, lo, hi)}
    hists = [np.zeros(_BINS) for _ in keys]
    edges = [np.linspace(a, b if b > a else a + 1.0, _BINS + 1) for a, b in zip(lo, hi)]
    for outs in _run_all(probe, batches, backend):
        for i, a in enumerate(outs):
            keep = np.isfinite(a)
            if method == "entropy":  # exact zeros (ReLU's) are represented exactly; they'd dominate the KL
                keep &= a != 0
            hists[i] += np.histogram(a[keep], bins=edges[i])[0]
    ranges = {}
    for i, k in enumerate(keys):
        if method == "percentile":
            a, b = percentile_range(hists[i], edges[i], percentile)
        else:
            a, b = entropy_range((hists[i], edges[i]), lo[i], hi[i])
        ranges[k] = (min(a, 0.0), max(b, 0.0))
    return ranges


def calibrate(graph: Graph, calibration: Any, *, method: str = "minmax", percentile: float = 99.99,
              backend: str = "onnxruntime") -> dict[str, tuple[float, float]]:
    """The ranges ``passes.quantize.quantize_static`` needs for ``graph``, from the calibration data."""
    from graphforge.passes.quantize import plan, value_key

    p = plan(graph)
    keys = [value_key(graph, v) for v in p.roots]
    return collect_ranges(graph, keys, as_batches(calibration), method=method, percentile=percentile,
                          backend=backend)
