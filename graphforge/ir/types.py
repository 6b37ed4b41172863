"""TensorType: a shape of static and symbolic dims plus a dtype."""
from __future__ import annotations

from dataclasses import dataclass

from .. import dtypes as _dt
from ..errors import ShapeError
from .dims import Dim, check_dim, dim_product, is_static, resolve_shape

__all__ = ["TensorType", "TensorSpec"]


@dataclass(frozen=True)
class TensorType:
    shape: tuple[Dim, ...]
    dtype: str

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(check_dim(d) for d in self.shape))
        object.__setattr__(self, "dtype", _dt.canonical_dtype(self.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(is_static(d) for d in self.shape)

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
    """A graph input: a TensorType with an optional name (``gf.TensorSpec(("batch", 784), "float32")``)."""

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
