"""TensorType: a shape of static and symbolic dims plus a dtype."""
from __future__ import annotations

from dataclasses import dataclass

from .. import dtypes as _dt
from ..errors import ShapeError
from .dims import Dim, check_dim, dim_product, resolve_shape

__all__ = ["TensorType", "TensorSpec"]


_INT64_END = 2 ** 63
_CANONICAL_DTYPES = frozenset(_dt.DTYPES)
# str dims known to be canonical (check_dim returned them unchanged); bounded so a long-running
# process that sees ever new symbol names does not grow it without end.
_CANONICAL_STR_DIMS: set[str] = set()
_MAX_CACHED_DIMS = 4096


def _checked_dim(dim):
    out = check_dim(dim)
    if type(out) is str and type(dim) is str and out == dim and len(_CANONICAL_STR_DIMS) < _MAX_CACHED_DIMS:
        _CANONICAL_STR_DIMS.add(out)
    return out


@dataclass(frozen=True)
class TensorType:
    shape: tuple[Dim, ...]
    dtype: str

    def __post_init__(self):
        shape = self.shape
        # Fast path: type rules build most types from dims and dtypes that are already canonical
        # (plain ints in int64 range, canonical str dims seen before, canonical dtype names);
        # anything else goes through the full validation of check_dim / canonical_dtype.
        if type(shape) is not tuple or not all(
                (type(d) is int and 0 <= d < _INT64_END) or (type(d) is str and d in _CANONICAL_STR_DIMS)
                for d in shape):
            shape = tuple(_checked_dim(d) for d in shape)
        object.__setattr__(self, "shape", shape)
        dtype = self.dtype
        if type(dtype) is not str or dtype not in _CANONICAL_DTYPES:
            object.__setattr__(self, "dtype", _dt.canonical_dtype(dtype))

    # Types are dict keys all over the passes (CSE keys, type stamps, ONNX value infos): the hash of
    # (shape, dtype) is computed once, not per lookup, and a type compared with itself (results
    # often share their input's type object) answers without comparing the shapes.
    def __eq__(self, other):
        if self is other:
            return True
        if other.__class__ is self.__class__:
            return self.shape == other.shape and self.dtype == other.dtype
        return NotImplemented

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.shape, self.dtype))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self):
        # str hashes differ between processes: a pickled type recomputes its hash where it is loaded.
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(type(d) is int for d in self.shape)  # canonical dims are exact ints or strs

    @property
    def numel(self) -> Dim:
        return dim_product(self.shape)

    def concrete(self, env) -> tuple[int, ...]:
        return resolve_shape(self.shape, env)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype) -> "TensorType":
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{_dt.short_name(self.dtype)}[{','.join(str(d) for d in self.shape)}]"


class TensorSpec(TensorType):
    """A graph input: a TensorType with an optional name (``gf.TensorSpec(("batch", 784), "float32")``).

    Args:
        shape: ints and symbolic dim names (``"batch"``).
        dtype: the dtype.
        name: the graph input's name (default: the forward argument's name).
    """

    def __init__(self, shape, dtype="float32", name: str | None = None):
        if isinstance(shape, (str, int)) or not hasattr(shape, "__iter__"):
            raise ShapeError(f"a TensorSpec shape is a tuple of dims, got {shape!r}",
                             hint=f"write ({shape!r},) for a rank-1 shape, or e.g. ('batch', {shape!r})")
        super().__init__(tuple(shape), dtype)
        object.__setattr__(self, "name", name)

    def __repr__(self) -> str:
        return f"TensorSpec({self.shape!r}, {self.dtype!r}, name={self.name!r})"

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)
