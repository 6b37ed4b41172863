"""Convolution and pooling layers (NCHW): Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d (output size 1) and GlobalAvgPool2d, with PyTorch's parameter layout and init."""
from __future__ import annotations

from .. import ops
from ..errors import ShapeError
from . import init as _init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d"]


def _pair(v, name):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ShapeError(f"{name} must be an int or a pair (h, w), got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _check_groups(in_channels, out_channels, groups, what):
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ShapeError(f"{what}: in_channels={in_channels} and out_channels={out_channels} must both be "
                         f"divisible by groups={groups}")


class Conv2d(Module):
    """2-D convolution; weight (out, in/groups, kh, kw), kaiming-uniform(a=sqrt(5)) init and a
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias, like PyTorch. ``padding`` may be "same" or "valid".

    Args:
        in_channels: channels of the NCHW input.
        out_channels: channels of the output.
        kernel_size: an int or ``(kh, kw)``.
        stride: an int or a pair.
        padding: an int, a pair, ``"same"`` or ``"valid"``.
        dilation: an int or a pair.
        groups: split the channels into this many independent groups.
        bias: add a learned bias.
        dtype: the parameters' dtype.

    Example:
        ```python
        conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)   # (N, 1, 8, 8) -> (N, 8, 8, 8)
        ```
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        _check_groups(in_channels, out_channels, groups, "Conv2d")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
        self.padding = padding
        shape = (out_channels, in_channels // groups) + self.kernel_size
        fan_in = (in_channels // groups) * self.kernel_size[0] * self.kernel_size[1]
        self.weight = Parameter(shape, dtype, init=_init.kaiming_uniform())
        self.bias = Parameter((out_channels,), dtype, init=_init.uniform_fan_in(fan_in)) if bias else None

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, groups={self.groups}, bias={self.bias is not None}")


class ConvTranspose2d(Module):
    """Transposed 2-D convolution; weight (in, out/groups, kh, kw) (PyTorch layout and init).

    Args:
        in_channels: channels of the NCHW input.
        out_channels: channels of the output.
        kernel_size: an int or ``(kh, kw)``.
        stride: an int or a pair (the upsampling factor).
        padding: an int or a pair, removed from the output's borders.
        output_padding: extra size on one side of the output (to pick among sizes a stride allows).
        groups: independent channel groups.
        bias: add a learned bias.
        dilation: an int or a pair.
        dtype: the parameters' dtype.

    Example:
        ```python
        up = nn.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)   # doubles H and W
        ```
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, dtype: str = "float32"):
        super().__init__()
        _check_groups(in_channels, out_channels, groups, "ConvTranspose2d")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
        self.padding, self.output_padding = padding, output_padding
        shape = (in_channels, out_channels // groups) + self.kernel_size
        fan_in = (out_channels // groups) * self.kernel_size[0] * self.kernel_size[1]  # PyTorch: weight.size(1) * k
        self.weight = Parameter(shape, dtype, init=_init.kaiming_uniform())
        self.bias = Parameter((out_channels,), dtype, init=_init.uniform_fan_in(fan_in)) if bias else None

    def forward(self, x):
        return ops.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                    self.groups, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, output_padding={self.output_padding!r}")


class MaxPool2d(Module):
    """2-D max pooling over NCHW input (``gf.max_pool2d``): a ``kernel_size`` window every ``stride``
    (default: ``kernel_size``), ``padding`` on each side, ``ceil_mode`` rounds the output size up."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def forward(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """2-D average pooling over NCHW input (``gf.avg_pool2d``): ``kernel_size``, ``stride`` (default:
    ``kernel_size``), ``padding``, ``ceil_mode`` as in :class:`MaxPool2d`; ``count_include_pad``
    counts padded zeros in the divisor (PyTorch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x):
        return ops.global_avg_pool2d(x)


class AdaptiveAvgPool2d(GlobalAvgPool2d):
    """PyTorch's AdaptiveAvgPool2d; only ``output_size`` 1 (global average pooling) is supported."""

    def __init__(self, output_size=1):
        super().__init__()
        if _pair(output_size, "output_size") != (1, 1):
            raise ShapeError(f"AdaptiveAvgPool2d supports output_size=1 only, got {output_size!r}",
                             hint="use AvgPool2d with an explicit kernel and stride for other sizes")
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size!r}"


# ---- 1-D and 3-D layers: the same registry ops (conv2d, conv_transpose2d, max_pool2d, avg_pool2d)
# over one or three spatial axes, with PyTorch's names, weight layouts and init ----------------------

def _ntuple(v, n, name):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ShapeError(f"{name} must be an int or {n} values, got {v!r}")
        return tuple(int(e) for e in v)
    return (int(v),) * n


def _fan(shape):
    k = 1
    for d in shape[2:]:
        k *= d
    return k


class _ConvNd(Module):
    _n = 2
    _what = "Conv"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        _check_groups(in_channels, out_channels, groups, self._what)
        n = self._n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size")
        self.stride, self.dilation = _ntuple(stride, n, "stride"), _ntuple(dilation, n, "dilation")
        self.padding = padding
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(shape, dtype, init=_init.kaiming_uniform())
        fan_in = (in_channels // groups) * _fan(shape)
        self.bias = Parameter((out_channels,), dtype, init=_init.uniform_fan_in(fan_in)) if bias else None

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, groups={self.groups}, bias={self.bias is not None}")


class Conv1d(_ConvNd):
    """1-D convolution (N, C, W); weight (out, in/groups, k) (PyTorch layout and init).

    Args:
        in_channels: channels of the (N, C, W) input.
        out_channels: channels of the output.
        kernel_size: an int or a 1-tuple.
        stride: an int or a 1-tuple.
        padding: an int, a 1-tuple, 2 values (begins, then ends), ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or a 1-tuple.
        groups: split the channels into this many independent groups.
        bias: add a learned bias.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: channels not divisible by ``groups``, or a ``kernel_size``, ``stride`` or ``dilation``
            with the wrong number of values.
    """
    _n, _what = 1, "Conv1d"


class Conv3d(_ConvNd):
    """3-D convolution (N, C, D, H, W); weight (out, in/groups, kd, kh, kw) (PyTorch layout and init).

    Args:
        in_channels: channels of the (N, C, D, H, W) input.
        out_channels: channels of the output.
        kernel_size: an int or ``(kd, kh, kw)``.
        stride: an int or ``(d, h, w)``.
        padding: an int, ``(d, h, w)``, 6 values (begins, then ends), ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or ``(d, h, w)``.
        groups: split the channels into this many independent groups.
        bias: add a learned bias.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: channels not divisible by ``groups``, or a ``kernel_size``, ``stride`` or ``dilation``
            with the wrong number of values.
    """
    _n, _what = 3, "Conv3d"


class _ConvTransposeNd(Module):
    _n = 2
    _what = "ConvTranspose"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, dtype: str = "float32"):
        super().__init__()
        _check_groups(in_channels, out_channels, groups, self._what)
        n = self._n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size")
        self.stride, self.dilation = _ntuple(stride, n, "stride"), _ntuple(dilation, n, "dilation")
        self.padding, self.output_padding = padding, output_padding
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight = Parameter(shape, dtype, init=_init.kaiming_uniform())
        fan_in = (out_channels // groups) * _fan(shape)  # PyTorch: weight.size(1) * prod(kernel)
        self.bias = Parameter((out_channels,), dtype, init=_init.uniform_fan_in(fan_in)) if bias else None

    def forward(self, x):
        return ops.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                    self.groups, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, output_padding={self.output_padding!r}")


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution; weight (in, out/groups, k) (PyTorch layout and init).

    Args:
        in_channels: channels of the (N, C, W) input.
        out_channels: channels of the output.
        kernel_size: an int or a 1-tuple.
        stride: an int or a 1-tuple (the upsampling factor).
        padding: an int or a 1-tuple, removed from the output's borders.
        output_padding: extra size on one side of the output (to pick among sizes a stride allows).
        groups: independent channel groups.
        bias: add a learned bias.
        dilation: an int or a 1-tuple.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: channels not divisible by ``groups``, or a ``kernel_size``, ``stride`` or ``dilation``
            with the wrong number of values.
    """
    _n, _what = 1, "ConvTranspose1d"


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-D convolution; weight (in, out/groups, kd, kh, kw) (PyTorch layout and init).

    Args:
        in_channels: channels of the (N, C, D, H, W) input.
        out_channels: channels of the output.
        kernel_size: an int or ``(kd, kh, kw)``.
        stride: an int or ``(d, h, w)`` (the upsampling factor).
        padding: an int or ``(d, h, w)``, removed from the output's borders.
        output_padding: extra size on one side of the output (to pick among sizes a stride allows).
        groups: independent channel groups.
        bias: add a learned bias.
        dilation: an int or ``(d, h, w)``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: channels not divisible by ``groups``, or a ``kernel_size``, ``stride`` or ``dilation``
            with the wrong number of values.
    """
    _n, _what = 3, "ConvTranspose3d"


class _MaxPoolNd(Module):
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return ops.nn_ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.dilation,
                                     _n=self._n)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}"


class MaxPool1d(_MaxPoolNd):
    """Max pooling over (N, C, W) (PyTorch's argument order: kernel, stride, padding, dilation, ceil_mode).

    Args:
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: ``kernel_size``.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        dilation: the spacing between kernel elements, an int or a 1-tuple.
        ceil_mode: round the output size up.
    """
    _n = 1


class MaxPool3d(_MaxPoolNd):
    """Max pooling over (N, C, D, H, W) (``gf.max_pool3d``; PyTorch's argument order).

    Args:
        kernel_size: the window size, an int or ``(kd, kh, kw)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: ``kernel_size``.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        dilation: the spacing between kernel elements, an int or ``(d, h, w)``.
        ceil_mode: round the output size up.
    """
    _n = 3


class _AvgPoolNd(Module):
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return ops.nn_ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                     self.count_include_pad, _n=self._n)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Average pooling over (N, C, W) (``gf.avg_pool1d``).

    Args:
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: ``kernel_size``.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).
    """
    _n = 1


class AvgPool3d(_AvgPoolNd):
    """Average pooling over (N, C, D, H, W) (``gf.avg_pool3d``).

    Args:
        kernel_size: the window size, an int or ``(kd, kh, kw)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: ``kernel_size``.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).
    """
    _n = 3


__all__ += ["Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose3d", "MaxPool1d", "MaxPool3d", "AvgPool1d",
            "AvgPool3d"]
