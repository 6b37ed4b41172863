"""Random numbers inside the graph: ``random_uniform(key, like)``, from the same counter-based hash as
``dropout`` (docs/ARCHITECTURE.md), so every back end draws the same bits for the same key.

For the flat C-order index ``i`` (uint32, mod 2^32) ``h = hash(i, key)`` is dropout's hash and the
value is ``((h >> 9) + 0.5) / 2^23``: 2^23 equally spaced values strictly inside (0, 1), so
``log(u)`` and ``log(1 - u)`` are finite (Gumbel noise, inverse CDFs). Used by ``nn.generate`` for
temperature / top-k sampling."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError
from ..ir.types import TensorType
from ..trace.tensor import Tensor, apply
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation

__all__ = ["random_uniform", "counter_hash"]


def counter_hash(n: int, key: int) -> np.ndarray:
    """Dropout's hash of the indices ``0..n-1`` under ``key`` (uint32 values in uint64 words)."""
    m32 = np.uint64(0xFFFFFFFF)
    i = np.arange(n, dtype=np.uint64) & m32
    h = (i + np.uint64((int(key) * 0x9E3779B9) & 0xFFFFFFFF)) & m32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & m32
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & m32
    h ^= h >> np.uint64(16)
    return h


def _rule(ts, attrs):
    key, like = ts
    if key.dtype != "uint32" or key.rank != 0:
        raise DTypeError(f"random_uniform: the key must be a uint32 scalar, got {key}",
                         hint="use builder.rng_key() or gf.constant(np.uint32(k))")
    if not _dt.is_float(attrs["dtype"]):
        raise DTypeError(f"random_uniform: dtype must be a float type, got {attrs['dtype']}")
    return [TensorType(like.shape, attrs["dtype"])]


def _ref(xs, attrs, env=None):
    shape = xs[1].shape
    n = int(np.prod(shape, dtype=np.int64))
    bits = (counter_hash(n, int(xs[0])) >> np.uint64(9)).astype(np.float64)
    # (2b + 1) / 2^24 has 24 significant bits: exact in float32 and float64; half types round
    return [((bits + 0.5) * 2.0 ** -23).reshape(shape).astype(_dt.to_numpy_dtype(attrs["dtype"]))]


_KEY = TensorType((), "uint32")
register_op(OpDef(
    name="random_uniform", family="random", num_inputs=(2, 2), attrs={"dtype": Attr("dtype", "float32")},
    type_rule=_rule, reference=_ref, flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE, nondiff_inputs=(0, 1),
    random=True,
    doc="((hash(i, key) >> 9) + 0.5) / 2^23 with dropout's counter-based hash, shaped like the second "
        "input (only its shape is read): uniform in (0, 1).",
    samples=[
        Sample([_KEY, TensorType((4, 5), "float32")], domain=[np.array(3, np.uint32), "any"]),
        Sample([_KEY, TensorType(("batch", 7), "int64")], attrs={"dtype": "float64"}, bind={"batch": 3},
               domain=[np.array(123456789, np.uint32), "int:0:9"], note="symbolic batch"),
        Sample([_KEY, TensorType((), "float32")], domain=[np.array(0, np.uint32), "any"], note="scalar"),
    ],
))


def random_uniform(key, like, dtype="float32"):
    """Uniform values in (0, 1), shaped like ``like`` (a Tensor, whose values are not read, or a shape
    of ints / symbolic dims), from a uint32 scalar ``key``: the same key gives the same values on
    every back end."""
    if not isinstance(like, Tensor):
        like = _creation.zeros(like, "bool")
    return apply("random_uniform", key, like, dtype=dtype)
