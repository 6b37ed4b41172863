"""Shape bucketing for the JAX back end: pad symbolic input dims up to a few sizes, so that
variable-length serving compiles once per bucket instead of once per request length.

``gf.run(graph, inputs, backend="jax", bucket="pow2")`` pads every symbolic input dim to the next
power of two; ``bucket=16`` to the next multiple of 16; ``bucket={"seq": "pow2"}`` only the named
symbols (``{"seq": 32, "batch": "pow2"}`` mixes them). Inputs are zero-padded at the end of each
bucketed axis, the padded graph runs (compiled once per bucketed binding, cached like any other
shape) and every output axis whose size depends on a bucketed symbol is cut back to its true size.

When it is valid (the caller's promise; graphforge does not prove it): the true part of every
output must not depend on the padded positions. That holds for
- a batch axis when examples are independent (no batch statistics: eval-mode BatchNorm is fine,
  a mean over the batch is not);
- a sequence axis when every op that mixes positions is causal — position ``i`` reads only
  positions ``<= i`` (causal attention/masks, causal convolutions, cumulative sums), or ignores
  padded positions through a mask built from the true length that the graph takes as an input.
It does not hold for plain (bidirectional) attention, a mean or softmax over the padded axis, or a
reshape that folds the padded axis into another one.

A bucketed size that breaks one of the graph's guards (``seq <= 64`` from a position table) is not
used: that call runs at its exact size.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from graphforge.errors import InputError
from graphforge.guards import guards
from graphforge.ir.dims import is_static, resolve_dim

__all__ = ["bucket_env", "pad_inputs", "crop_outputs"]


def _bucket_size(n: int, rule) -> int:
    if rule == "pow2":
        return 1 if n <= 1 else 1 << (n - 1).bit_length()
    if isinstance(rule, int) and not isinstance(rule, bool) and rule > 0:
        return -(-n // rule) * rule if n else rule
    raise InputError(f"bucket rule {rule!r} is not 'pow2' or a positive int (pad to a multiple of it)")


def bucket_env(graph, env: Mapping[str, int], bucket) -> dict[str, int] | None:
    """The padded binding for ``bucket`` (None when it equals ``env`` or breaks a guard)."""
    rules = bucket if isinstance(bucket, Mapping) else {s: bucket for s in env}
    unknown = sorted(set(rules) - set(env))
    if unknown:
        raise InputError(f"bucket names symbols the inputs do not bind: {', '.join(unknown)} "
                         f"(bound: {', '.join(sorted(env)) or 'none'})")
    padded = {s: _bucket_size(v, rules[s]) if s in rules else v for s, v in env.items()}
    if padded == dict(env):
        return None
    for g in guards(graph):
        if not g.requirement.holds(padded):
            return None
    for v in graph.inputs:
        for d in v.type.shape:
            if not is_static(d) and d not in padded:
                raise InputError(f"bucketing pads plain symbolic dims; input {v.name!r} has the dim {d}",
                                 hint="give the input a plain symbol (e.g. 'seq') or run without bucket=")
    return padded


def pad_inputs(graph, arrays, padded: Mapping[str, int]) -> list[np.ndarray]:
    out = []
    for v, a in zip(graph.inputs, arrays):
        widths = [(0, (padded[d] - a.shape[i]) if not is_static(d) else 0) for i, d in enumerate(v.type.shape)]
        out.append(np.pad(a, widths) if any(w for _, w in widths) else a)
    return out


def crop_outputs(graph, outs, env: Mapping[str, int], padded: Mapping[str, int]) -> list[np.ndarray]:
    result = []
    for v, o in zip(graph.outputs, outs):
        index = tuple(slice(0, resolve_dim(d, env)) if not is_static(d) and resolve_dim(d, env) != resolve_dim(d, padded)
                      else slice(None) for d in v.type.shape)
        result.append(np.asarray(o[index]))
    return result
