"""Parameter initialisers (PyTorch's defaults), deterministic in a NumPy Generator.

One convention: **every function here is a factory** that returns an initialiser, an object
called as ``init(shape, rng, dtype) -> np.ndarray``::

    nn.Parameter((128, 784), init=nn.init.kaiming_uniform())   # PyTorch's Linear/Conv weight
    nn.Parameter((128,), init=nn.init.zeros())
    nn.Parameter((16,), init=nn.init.normal(std=0.02))

A factory whose arguments all have defaults may also be passed uncalled (``init=nn.init.zeros``
means ``nn.init.zeros()``); one that needs an argument (``constant``, ``uniform_fan_in``) raises
a ``ConfigError`` naming it. Invalid arguments (a negative ``std``, ``low > high``) are a
``ConfigError`` when the factory is called, naming the argument. A custom initialiser is any
callable ``(shape, rng, dtype) -> array``; its result is cast to the parameter's dtype and its
shape checked.

``nn.Parameter``'s default (no ``init``) is ``normal(std=0.02)``; ``nn.Buffer``'s is ``zeros()``.
Fan-in/fan-out follow PyTorch: for a weight of rank >= 2, ``fan_in = shape[1] * prod(shape[2:])``
and ``fan_out = shape[0] * prod(shape[2:])`` (see :func:`fans`).
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import numpy as np

from .. import dtypes as _dt
from ..errors import ConfigError

__all__ = ["Initializer", "fans", "zeros", "ones", "constant", "normal", "uniform", "trunc_normal",
           "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "uniform_fan_in",
           "resolve"]


class Initializer:
    """What a factory returns: ``init(shape, rng, dtype="float32") -> np.ndarray`` (cast to ``dtype``).
    Its ``repr`` is the call that made it, e.g. ``nn.init.normal(std=0.02, mean=0.0)``.

    Built by the factories only: ``fn`` is the drawing function ``(shape, rng) -> array`` and
    ``text`` the ``repr``.

    Example:
        ```python
        init = nn.init.normal(std=0.02)
        w = init((3, 4), np.random.default_rng(0), "float32")   # float32 array of shape (3, 4)
        ```
    """

    __slots__ = ("_fn", "_text")

    def __init__(self, fn: Callable, text: str):
        self._fn, self._text = fn, text

    def __call__(self, shape, rng=None, dtype: str = "float32") -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        rng = rng if rng is not None else np.random.default_rng(0)
        return np.asarray(self._fn(shape, rng)).astype(_dt.to_numpy_dtype(dtype), copy=False)

    def __repr__(self) -> str:
        return self._text


def _factory(fn: Callable) -> Callable:
    """Mark ``fn`` as an initialiser factory, so a Parameter given it uncalled can tell."""
    @functools.wraps(fn)
    def make(*args, **kwargs) -> Initializer:
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"nn.init.{fn.__name__}: {exc}",
                              hint=f"its signature is nn.init.{fn.__name__}{inspect.signature(fn)}") from None
        bound.apply_defaults()
        text = ", ".join(f"{k}={v!r}" for k, v in bound.arguments.items())
        return Initializer(fn(*bound.args, **bound.kwargs), f"nn.init.{fn.__name__}({text})")

    make._gf_init_factory = True
    return make


def resolve(init, where: str = "a parameter") -> Callable:
    """The initialiser ``init`` stands for (what ``nn.Parameter`` does with its ``init``).

    Args:
        init: an initialiser, a factory passed uncalled (called with its defaults), or any callable
            ``(shape, rng, dtype) -> array``.
        where: names the parameter in error messages.

    Returns:
        A callable ``(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: a factory that needs an argument was passed uncalled (naming it), or ``init``
            is not callable.

    Example:
        ```python
        nn.init.resolve(nn.init.zeros)          # same as nn.init.zeros()
        ```
    """
    if getattr(init, "_gf_init_factory", False):
        required = [p.name for p in inspect.signature(init).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if required:
            raise ConfigError(f"{where}: init=nn.init.{init.__name__} is a factory that needs the argument "
                              f"{required[0]!r}", hint=f"call it: init=nn.init.{init.__name__}({required[0]}=...)")
        return init()
    if not callable(init):
        raise ConfigError(f"{where}: init must be an initialiser such as nn.init.normal(0.02), got "
                          f"{type(init).__name__} {init!r}",
                          hint="pass init=nn.init.<name>(...) or a function (shape, rng, dtype) -> array")
    return init


def _number(fn: str, name: str, value, *, low: float | None = None, strict: bool = False) -> float:
    """``value`` as a float, ConfigError naming ``fn``'s argument ``name`` when it is not valid."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"nn.init.{fn}: {name} must be a number, got {value!r}") from None
    if math.isnan(x) or (low is not None and (x <= low if strict else x < low)):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ConfigError(f"nn.init.{fn}: {name} must be {bound}, got {value!r}")
    return x


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, as PyTorch computes them (a helper, not a factory).

    Args:
        shape: the weight's shape: rank >= 2 gives ``(shape[1] * receptive, shape[0] * receptive)``
            (``receptive`` = product of ``shape[2:]``); rank 1 gives ``(n, n)``; a scalar ``(1, 1)``.

    Returns:
        ``(fan_in, fan_out)`` as ints.

    Raises:
        ValueError: a dim is not an integer (shapes here are concrete).

    Example:
        ```python
        nn.init.fans((64, 3, 3, 3))    # (27, 576)
        ```
    """
    if len(shape) < 2:
        n = int(shape[0]) if shape else 1
        return n, n
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


@_factory
def zeros():
    """All zeros (PyTorch's bias init in attention and norms; ``nn.Buffer``'s default).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: called with arguments (it takes none).

    Example:
        ```python
        bias = nn.Parameter((128,), init=nn.init.zeros())
        nn.init.zeros()((2, 3), np.random.default_rng(0))   # array of shape (2, 3), all 0.0
        ```
    """
    return lambda shape, rng: np.zeros(shape)


@_factory
def ones():
    """All ones (norm scales, running variances).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: called with arguments (it takes none).

    Example:
        ```python
        scale = nn.Parameter((64,), init=nn.init.ones())
        ```
    """
    return lambda shape, rng: np.ones(shape)


@_factory
def constant(value: float):
    """Every element equal to ``value``.

    Args:
        value: the fill value (a number).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((4,), init=nn.init.constant(0.5))
        ```
    """
    v = _number("constant", "value", value)
    return lambda shape, rng: np.full(shape, v)


@_factory
def normal(std: float = 1.0, mean: float = 0.0):
    """N(mean, std²). ``normal(0.02)`` is ``nn.Parameter``'s default; ``normal(1.0)`` is Embedding's.

    Args:
        std: the standard deviation (>= 0).
        mean: the mean.

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((16, 8), init=nn.init.normal(std=0.02))
        ```
    """
    s, m = _number("normal", "std", std, low=0.0), _number("normal", "mean", mean)
    return lambda shape, rng: rng.normal(m, s, size=shape)


@_factory
def uniform(low: float = 0.0, high: float = 1.0):
    """U(low, high): uniform on ``[low, high)``.

    Args:
        low: the lower bound.
        high: the upper bound (>= ``low``).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((8,), init=nn.init.uniform(-0.1, 0.1))
        ```
    """
    lo, hi = _number("uniform", "low", low), _number("uniform", "high", high)
    if lo > hi:
        raise ConfigError(f"nn.init.uniform: low must be <= high, got low={low!r}, high={high!r}")
    return lambda shape, rng: rng.uniform(lo, hi, size=shape)


@_factory
def trunc_normal(std: float = 1.0, mean: float = 0.0, a: float = -2.0, b: float = 2.0):
    """N(mean, std²) redrawn until inside ``[a, b]`` (absolute bounds, like PyTorch's ``trunc_normal_``).

    Args:
        std: the standard deviation (>= 0).
        mean: the mean.
        a: the lower bound.
        b: the upper bound (> ``a``).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((768,), init=nn.init.trunc_normal(std=0.02, a=-0.04, b=0.04))   # ViT-style
        ```
    """
    s, m = _number("trunc_normal", "std", std, low=0.0), _number("trunc_normal", "mean", mean)
    lo, hi = _number("trunc_normal", "a", a), _number("trunc_normal", "b", b)
    if lo >= hi:
        raise ConfigError(f"nn.init.trunc_normal: a must be < b, got a={a!r}, b={b!r}")

    def draw(shape, rng):
        out = rng.normal(m, s, size=shape)
        bad = (out < lo) | (out > hi)
        while bad.any():  # rejection sampling; each pass redraws only the rejected elements
            out[bad] = rng.normal(m, s, size=int(bad.sum()))
            bad = (out < lo) | (out > hi)
        return out
    return draw


def _fan_in(fn: str, fan_in, shape) -> int:
    fi = fans(shape)[0] if fan_in is None else fan_in
    if fi <= 0:
        raise ConfigError(f"nn.init.{fn}: fan_in must be > 0, got {fi} (shape {shape})")
    return fi


@_factory
def kaiming_uniform(a: float = math.sqrt(5), fan_in: int | None = None):
    """PyTorch's default for Linear/Conv weights: U(-b, b) with ``b = sqrt(6 / ((1 + a²) fan_in))``
    (``a = sqrt(5)`` gives ``b = 1/sqrt(fan_in)``).

    Args:
        a: the negative slope of the rectifier that follows (>= 0).
        fan_in: None: from the weight's shape (see :func:`fans`); else this number (> 0).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        w = nn.Parameter((128, 784), init=nn.init.kaiming_uniform())   # |w| <= 1/sqrt(784)
        ```
    """
    a = _number("kaiming_uniform", "a", a, low=0.0)
    if fan_in is not None:
        _number("kaiming_uniform", "fan_in", fan_in, low=0.0, strict=True)

    def draw(shape, rng):
        bound = math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / _fan_in("kaiming_uniform", fan_in, shape))
        return rng.uniform(-bound, bound, size=shape)
    return draw


@_factory
def kaiming_normal(a: float = 0.0, fan_in: int | None = None):
    """He init: N(0, 2 / ((1 + a²) fan_in)) (``a = 0``: for ReLU networks).

    Args:
        a: the negative slope of the rectifier that follows (>= 0).
        fan_in: None: from the weight's shape (see :func:`fans`); else this number (> 0).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((64, 3, 3, 3), init=nn.init.kaiming_normal())   # conv weight, fan_in = 27
        ```
    """
    a = _number("kaiming_normal", "a", a, low=0.0)
    if fan_in is not None:
        _number("kaiming_normal", "fan_in", fan_in, low=0.0, strict=True)

    def draw(shape, rng):
        std = math.sqrt(2.0 / ((1 + a * a) * _fan_in("kaiming_normal", fan_in, shape)))
        return rng.normal(0.0, std, size=shape)
    return draw


@_factory
def xavier_uniform(gain: float = 1.0):
    """Glorot: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Args:
        gain: the scale factor (>= 0).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((256, 256), init=nn.init.xavier_uniform())
        ```
    """
    g = _number("xavier_uniform", "gain", gain, low=0.0)

    def draw(shape, rng):
        fi, fo = fans(shape)
        bound = g * math.sqrt(6.0 / max(fi + fo, 1))
        return rng.uniform(-bound, bound, size=shape)
    return draw


@_factory
def xavier_normal(gain: float = 1.0):
    """Glorot: N(0, gain² * 2 / (fan_in + fan_out)).

    Args:
        gain: the scale factor (>= 0).

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((256, 256), init=nn.init.xavier_normal(gain=1.0))
        ```
    """
    g = _number("xavier_normal", "gain", gain, low=0.0)

    def draw(shape, rng):
        fi, fo = fans(shape)
        return rng.normal(0.0, g * math.sqrt(2.0 / max(fi + fo, 1)), size=shape)
    return draw


@_factory
def uniform_fan_in(fan_in: int):
    """PyTorch's Linear/Conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
        fan_in: the fan-in of the layer's weight (>= 0; 0 gives zeros). Required.

    Returns:
        An ``Initializer``: ``init(shape, rng, dtype) -> np.ndarray``.

    Raises:
        ConfigError: an argument is not a number or out of range (named).

    Example:
        ```python
        nn.Parameter((128,), init=nn.init.uniform_fan_in(784))   # Linear(784, 128)'s bias
        ```
    """
    fi = _number("uniform_fan_in", "fan_in", fan_in, low=0.0)
    bound = 1.0 / math.sqrt(fi) if fi > 0 else 0.0
    return lambda shape, rng: rng.uniform(-bound, bound, size=shape)
