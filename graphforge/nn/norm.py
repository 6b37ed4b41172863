"""Normalisation layers: BatchNorm2d (running statistics as buffers, updated in training mode
through ``update:<buffer>`` graph outputs) and LayerNorm."""
from __future__ import annotations

from .. import ops
from ..errors import ShapeError
from ..trace.builder import current_builder
from ..trace.tensor import Tensor
from . import init as _init
from .module import Module
from .parameter import Buffer, Parameter

__all__ = ["BatchNorm2d", "LayerNorm"]


class BatchNorm2d(Module):
    """Batch normalisation over the channel axis of NCHW input (PyTorch's parameters and buffers).

    Training mode normalises with the batch statistics and records the new running statistics as
    state updates (``builder.state_updates``), which become graph outputs ``update:<buffer>``;
    eval mode uses the running statistics.

    Args:
        num_features: the channel count C.
        eps: added to the variance.
        momentum: weight of the batch statistics in the running ones (PyTorch's meaning).
        affine: learn a scale (``weight``) and shift (``bias``).
        track_running_stats: keep ``running_mean``/``running_var`` buffers (else eval mode uses batch statistics).
        dtype: the parameters' dtype.

    Example:
        ```python
        bn = nn.BatchNorm2d(16)
        ```
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: str = "float32"):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter((num_features,), dtype, init=_init.ones) if affine else None
        self.bias = Parameter((num_features,), dtype, init=_init.zeros) if affine else None
        if track_running_stats:
            self.running_mean = Buffer((num_features,), dtype, init=_init.zeros)
            self.running_var = Buffer((num_features,), dtype, init=_init.ones)
        else:
            self.running_mean = self.running_var = None

    def _check(self, x):
        if x.ndim != 4:
            raise ShapeError(f"BatchNorm2d expects NCHW input (rank 4), got {x.type}",
                             hint="use it after a Conv2d; add a batch axis with x.unsqueeze(0)")

    def forward(self, x):
        self._check(x)
        builder = current_builder()
        c = self.num_features
        use_batch = self.training or not self.track_running_stats
        if not self.track_running_stats:
            mean, var = ops.zeros((c,), x.dtype), ops.ones((c,), x.dtype)
        else:
            mean, var = self._state(builder, self.running_mean), self._state(builder, self.running_var)
        if not use_batch:
            return ops.batch_norm(x, mean, var, self.weight, self.bias, False, self.momentum, self.eps)
        y, new_mean, new_var = ops.batch_norm(x, mean, var, self.weight, self.bias, True, self.momentum, self.eps)
        if self.track_running_stats and self.training:
            builder.state_updates[self._name(builder, self.running_mean)] = new_mean.value
            builder.state_updates[self._name(builder, self.running_var)] = new_var.value
        return y

    @staticmethod
    def _name(builder, buffer) -> str:
        buffer.value  # registers a buffer met outside gf.trace's module walk  # noqa: B018
        return builder.param_names[id(buffer)]

    def _state(self, builder, buffer):
        """The buffer's current value: an earlier call in this trace may already have updated it."""
        name = self._name(builder, buffer)
        if self.training and name in builder.state_updates:
            return Tensor(builder.state_updates[name], builder)
        return buffer

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dims (PyTorch's parameters).

    Args:
        normalized_shape: an int or a tuple: the trailing dims normalised over.
        eps: added to the variance.
        elementwise_affine: learn a per-element scale (``weight``).
        bias: with ``elementwise_affine``, learn a shift too.
        dtype: the parameters' dtype.

    Example:
        ```python
        norm = nn.LayerNorm(128)
        ```
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype: str = "float32"):
        super().__init__()
        shape = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(int(d) for d in normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(shape, dtype, init=_init.ones) if elementwise_affine else None
        self.bias = Parameter(shape, dtype, init=_init.zeros) if elementwise_affine and bias else None

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[max(x.ndim - k, 0):]) != self.normalized_shape or x.ndim < k:
            raise ShapeError(f"LayerNorm({', '.join(map(str, self.normalized_shape))}) expects input whose trailing "
                             f"dims are {self.normalized_shape}, got {x.type}",
                             hint="declare LayerNorm with the input's last dim(s)")
        return ops.layer_norm(x, -k, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
