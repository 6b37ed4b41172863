"""Parameter: a declared weight (shape, dtype, initialiser) that acts as a Tensor inside a trace.

Default initialisers: ``nn.Parameter`` draws from ``nn.init.normal(std=0.02)``, ``nn.Buffer`` starts
at ``nn.init.zeros()``; the draw is deterministic per (trace seed, parameter name)."""
from __future__ import annotations

import zlib

import numpy as np

from .. import dtypes as _dt
from ..errors import ConfigError, GraphforgeError, ShapeError
from ..ir.dims import check_dim
from ..trace.builder import current_builder
from ..trace.tensor import Tensor
from . import init as _init

__all__ = ["Parameter", "Buffer", "param_rng"]


def param_rng(seed: int, name: str) -> np.random.Generator:
    """One generator per (seed, parameter name): adding a layer does not shift the others' values."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


class Parameter(Tensor):
    """A trainable tensor owned by a Module. ``Parameter(shape, init=...)`` declares one;
    ``Parameter(array)`` fixes its value. Inside ``gf.trace`` it behaves like any Tensor.

    ``init``: an initialiser from ``nn.init`` (``nn.init.kaiming_uniform()``; see that module for the
    convention) or a function ``(shape, rng, dtype) -> array``; default ``nn.init.normal(std=0.02)``.
    ``load_state_dict`` (or ``Parameter(array)``) fixes ``data``, which then wins over ``init``.

    Args:
        shape_or_value: a shape (declares the parameter) or a NumPy array (fixes its value).
        dtype: the dtype when a shape is given.
        init: see above.
        trainable: False makes it a buffer: saved and loaded, not trained.

    Example:
        ```python
        self.weight = nn.Parameter((out_features, in_features), init=nn.init.kaiming_uniform())
        ```
    """

    __slots__ = ("_shape", "_dtype", "init", "data", "trainable")

    def __init__(self, shape_or_value, dtype="float32", init=None, trainable: bool = True):
        if isinstance(shape_or_value, np.ndarray):
            self.data = shape_or_value
            self._shape = tuple(int(d) for d in shape_or_value.shape)
            self._dtype = _dt.from_numpy_dtype(shape_or_value.dtype)
        else:
            self.data = None
            self._shape = tuple(check_dim(d) for d in shape_or_value)
            if not all(isinstance(d, int) for d in self._shape):
                raise ShapeError(f"parameter shapes must be static, got {self._shape}")
            self._dtype = _dt.canonical_dtype(dtype)
        self.init = _init.resolve(init, "nn.Parameter") if init is not None else _init.normal(0.02)
        self.trainable = trainable

    @property
    def value(self):
        return current_builder().param_value(self)

    @property
    def builder(self):
        return current_builder()

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def materialize(self, name: str, seed: int) -> np.ndarray:
        """The initial value: the fixed ``data`` if any, else the initialiser's draw."""
        want = _dt.to_numpy_dtype(self._dtype)
        if self.data is not None:
            return np.asarray(self.data, dtype=want)
        try:
            value = np.asarray(self.init(self._shape, param_rng(seed, name), self._dtype))
        except GraphforgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's initialiser failed: say which parameter
            raise ConfigError(f"the initialiser {self.init!r} of parameter {name!r} {self._shape} failed: "
                              f"{type(exc).__name__}: {exc}",
                              hint="an initialiser is called as init(shape, rng, dtype) and returns an array") from None
        if value.shape != self._shape:
            raise ShapeError(f"the initialiser of parameter {name!r} returned shape {value.shape}, "
                             f"expected {self._shape}")
        return value.astype(want, copy=False)  # an initialiser may compute in float64

    def __repr__(self) -> str:
        kind = "Parameter" if self.trainable else "Buffer"
        return f"{kind}({_dt.short_name(self._dtype)}[{','.join(map(str, self._shape))}])"


def Buffer(shape_or_value, dtype="float32", init=None) -> Parameter:
    """A non-trainable state tensor (e.g. BatchNorm running statistics): saved, loaded and updated
    through ``update:`` outputs, never by the optimizer.

    Args:
        shape_or_value: a shape, or a NumPy array fixing its value (e.g. a positional-encoding table).
        dtype: the dtype when a shape is given.
        init: an ``nn.init`` initialiser; default ``nn.init.zeros()``.

    Returns:
        A ``Parameter`` with ``trainable=False``.

    Example:
        ```python
        self.positions = nn.Buffer(sinusoidal_table)      # (seq, d_model) array
        ```
    """
    return Parameter(shape_or_value, dtype, init if init is not None else _init.zeros(), trainable=False)
