"""Batches for ``gf.Trainer``: arrays given as one or several inputs/targets, their row counts,
and a batch stream shared by epochs of ``steps_per_epoch`` batches."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["Stream", "batch_rows", "as_batch", "as_list", "rows"]


class Stream:
    """One pass over a batch iterable shared by epochs of ``steps_per_epoch`` batches (Keras's
    meaning); a re-iterable restarts when it ends, a one-shot iterator running dry is an error."""

    def __init__(self, source, one_shot: bool):
        self.source, self.one_shot, self.it = source, one_shot, iter(source)

    def take(self, n: int, epoch: int):
        for i in range(n):
            try:
                b = next(self.it)
            except StopIteration:
                if self.one_shot:
                    raise InputError(f"fit: the data iterator ran out after {i} of steps_per_epoch={n} batches "
                                     f"in epoch {epoch + 1}",
                                     hint="make steps_per_epoch * epochs at most the number of batches it yields, "
                                          "or pass a re-iterable") from None
                self.it = iter(self.source)
                try:
                    b = next(self.it)
                except StopIteration:
                    raise InputError("fit: the data yields no batches") from None
            yield b[0], b[1]


def batch_rows(b) -> int:
    """Rows in a batch (its first input's leading dim) without converting it."""
    first = b[0] if isinstance(b, (list, tuple)) else b
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else len(first)



# types whose instances have a dtype and a shape (learned on first sight): a train step's batch is
# checked by one set lookup instead of two hasattr calls per array (jax.Array's are properties)
_ARRAY_TYPES: set = {np.ndarray}


def _is_array(a) -> bool:
    if type(a) in _ARRAY_TYPES:
        return True
    if hasattr(a, "dtype") and hasattr(a, "shape"):
        _ARRAY_TYPES.add(type(a))
        return True
    return False


def as_batch(x) -> list:
    """Like as_list, but keeps arrays that already have a dtype (jax device arrays stay put)."""
    if type(x) in _ARRAY_TYPES:
        return [x]
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    return [a if _is_array(a) else np.asarray(a) for a in items]


def as_list(x, expected: int | None = None, what: str = "", kind: str = "inputs") -> list:
    """``x`` as a list of arrays: one per input (or target) when it is a list of that many, else
    one array (so a nested Python list for a one-input model is its data, not a list of inputs)."""
    if isinstance(x, (list, tuple)) and not (expected == 1 and len(x) != 1):
        if expected is not None and len(x) != expected:
            raise InputError(f"{what}: the model has {expected} {kind}, got a list of {len(x)} arrays")
        items = list(x)
    else:
        items = [x]
    try:
        return [np.asarray(a) for a in items]
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: {kind} are not array-like: {exc}") from None


def rows(arrays: list, what: str) -> int:
    """The common leading dim of ``arrays`` (the number of examples)."""
    counts = [a.shape[0] if a.ndim else None for a in arrays]
    if None in counts:
        raise InputError(f"{what}: every input and target needs a leading batch dim, got shapes "
                         f"{[tuple(a.shape) for a in arrays]}")
    if len(set(counts)) > 1:
        raise InputError(f"{what}: inputs and targets have different numbers of rows: {counts}",
                         hint="x and y must hold the same examples, one row each")
    return counts[0] if counts else 0


