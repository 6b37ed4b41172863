"""Shape helpers shared by the type rules: broadcasting with symbolic dims, axis handling."""
from __future__ import annotations

from typing import Sequence

from ..dtypes import is_float
from ..errors import DTypeError, ShapeError
from ..ir.dims import Dim, require_broadcast
from ..ir.types import TensorType

__all__ = ["broadcast_shapes", "normalize_axis", "normalize_axes", "same_dtype", "reduce_shape",
           "require_float", "require_rank"]


def broadcast_shapes(*shapes: Sequence[Dim]) -> tuple[Dim, ...]:
    """NumPy broadcasting. A symbolic dim meets 1 or itself; two different symbolic dims give
    ``max(a, b)`` and the guard that they broadcast (equal, or one is 1), checked when the inputs are
    bound. A symbolic dim never meets a static one other than 1: that would fix a size the input
    declared free (an error at trace time, as torch.export reports a specialised dynamic dim)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dim: Dim = 1
        for shape in shapes:
            j = i - (rank - len(shape))
            if j < 0:
                continue
            d = shape[j]
            if d == 1:
                continue
            if dim == 1 or dim == d:
                dim = d
            elif not isinstance(dim, int) and not isinstance(d, int):
                dim = require_broadcast(dim, d, f"broadcast of dim {i - rank} of shapes "
                                                + " and ".join("(" + ", ".join(map(str, s)) + ")" for s in shapes))
            else:
                raise ShapeError(f"shapes {' and '.join('(' + ', '.join(map(str, s)) + ')' for s in shapes)} "
                                 f"cannot be broadcast together (dim {i - rank}: {dim} vs {d})")
        out.append(dim)
    return tuple(out)


def normalize_axis(axis: int, rank: int, *, allow_end: bool = False) -> int:
    limit = rank + 1 if allow_end else rank
    if not -limit <= axis < limit:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % limit if limit else 0


def normalize_axes(axes, rank: int) -> list[int]:
    if axes is None:
        return list(range(rank))
    if isinstance(axes, int):
        axes = [axes]
    out = sorted({normalize_axis(a, rank) for a in axes})
    if len(out) != len(list(axes)):
        raise ShapeError(f"repeated axis in {list(axes)}")
    return out


def reduce_shape(shape, axes: list[int], keepdims: bool) -> tuple[Dim, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def same_dtype(types: Sequence[TensorType], what: str = "inputs") -> str:
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1:
        raise DTypeError(f"{what} must share one dtype, got {', '.join(str(t) for t in types)}",
                         hint="cast one operand with x.astype(dtype)")
    return types[0].dtype


def require_float(t: TensorType, what: str = "input") -> None:
    if not is_float(t.dtype):
        raise DTypeError(f"{what} must be a floating-point tensor, got {t}",
                         hint="cast it with x.astype('float32')")


def require_rank(t: TensorType, rank: int | tuple, what: str = "input") -> None:
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if t.rank not in ranks:
        raise ShapeError(f"{what} must have rank {' or '.join(map(str, ranks))}, got {t}")
