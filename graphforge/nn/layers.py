"""Core layers: Linear, Flatten, Identity and activation modules."""
from __future__ import annotations

from .. import ops
from . import init as _init
from .module import Module
from .parameter import Parameter

__all__ = ["Linear", "Flatten", "Identity", "ReLU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Tanh",
           "Softplus", "Softmax", "LogSoftmax"]


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight (out_features, in_features), PyTorch's init.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        bias: add a learned bias.
        dtype: the parameters' dtype.

    Example:
        ```python
        fc = nn.Linear(784, 128)      # x: (batch, 784) -> (batch, 128)
        ```
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter((out_features, in_features), dtype, init=_init.kaiming_uniform())
        self.bias = Parameter((out_features,), dtype, init=_init.uniform_fan_in(in_features)) if bias else None

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flattens axes ``start_axis`` .. ``end_axis`` into one (``gf.flatten``); ``nn.Flatten()`` keeps the batch axis."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x):
        return ops.flatten(x, self.start_axis, self.end_axis)


class Identity(Module):
    """Returns its input unchanged (a placeholder layer, as in PyTorch)."""

    def forward(self, x):
        return x


def _activation(name: str, fn, doc: str):
    def forward(self, x):
        return fn(self, x)
    return type(name, (Module,), {"forward": forward, "__doc__": doc})


ReLU = _activation("ReLU", lambda self, x: ops.relu(x), "max(x, 0)")
Sigmoid = _activation("Sigmoid", lambda self, x: ops.sigmoid(x), "1 / (1 + exp(-x))")
Tanh = _activation("Tanh", lambda self, x: ops.tanh(x), "tanh(x)")
SiLU = _activation("SiLU", lambda self, x: ops.silu(x), "x * sigmoid(x)")
Softplus = _activation("Softplus", lambda self, x: ops.softplus(x), "log(1 + exp(x))")


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere (``gf.leaky_relu``)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)


class GELU(Module):
    """Gaussian error linear unit; ``approximate="tanh"`` for the tanh spelling (``gf.gelu``)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return ops.gelu(x, self.approximate)


class Softmax(Module):
    """Softmax over ``axis`` (``gf.softmax``)."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return ops.softmax(x, self.axis)


class LogSoftmax(Module):
    """Log-softmax over ``axis`` (``gf.log_softmax``), computed stably."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return ops.log_softmax(x, self.axis)
