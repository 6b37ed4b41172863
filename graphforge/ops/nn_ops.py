"""Neural-network ops: convolution, pooling, normalisation, dropout, embedding, attention.

The contract every back end lowers is in docs/ARCHITECTURE.md ("nn ops"): layout NCHW, 2-D attrs
``[h, w]``, ``pads`` ``[top, left, bottom, right]``. Gradients are graphs: conv2d's input gradient is a
``conv_transpose2d`` and its weight gradient a ``conv2d`` over transposed tensors; max_pool2d's is the
native ``max_pool2d_grad`` op (first maximum of a window takes its cotangent), avg_pool2d's a
gather/scatter_add formulation over constant window indices.
``layer_norm`` and ``attention`` are composite ops with a ``decompose`` into primitives.
Each nn op sits with its public function in its family module: ``nn_conv`` (conv2d/conv_transpose2d,
conv1d/conv3d, resolve_padding), ``nn_pool`` (max/avg pools, global_avg_pool2d), ``nn_norm``
(batch_norm, layer_norm) and ``nn_attention`` (attention, scaled_dot_product_attention); dropout and
embedding are here. This module imports them all (so importing it registers every nn op) and
re-exports their public names, so ``graphforge.ops.nn_ops.conv2d`` and friends keep working.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.types import TensorType
from ..trace.builder import current_builder
from ..trace.tensor import Tensor, apply
from ._nn_common import F32, F64, _fmt, _zero
from ._shapes import require_float
from .common import elementwise_flops
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import random as _random, shape_ops as _shape_ops
# the nn families (each registers its ops on import); their public functions are re-exported here
from .nn_attention import attention, scaled_dot_product_attention
from .nn_conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, resolve_padding
from .nn_norm import batch_norm, layer_norm
from .nn_pool import avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool2d, max_pool1d, max_pool2d, max_pool3d

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm",
           "conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "max_pool1d", "max_pool3d", "avg_pool1d",
           "avg_pool3d",
           "layer_norm", "dropout", "dropout_mask", "embedding", "attention", "scaled_dot_product_attention",
           "resolve_padding"]


# ---- dropout --------------------------------------------------------------------------------

def dropout_mask(shape, key: int, p: float) -> np.ndarray:
    """The documented counter-based keep mask (bool, C order), bit-exact across back ends.

    Args:
        shape: the mask's shape (a tuple of ints).
        key: the dropout key (a uint32 value, what ``nn.Dropout`` feeds the ``dropout`` op).
        p: the drop probability in [0, 1]; about a fraction ``p`` of the entries are False.

    Returns:
        A bool NumPy array of ``shape``: True where the ``dropout`` op keeps (and rescales) an element.

    Example:
        ```python
        keep = gf.dropout_mask((2, 3), key=7, p=0.5)   # the mask gf's dropout applies with that key
        ```
    """
    h = _random.counter_hash(int(np.prod(shape, dtype=np.int64)), key)
    return ((h >> np.uint64(8)) >= np.uint64(round(p * 2 ** 24))).reshape(shape)


def _dropout_rule(ts, attrs):
    x, key = ts
    require_float(x, "dropout's input")
    if key.dtype != "uint32" or key.rank != 0:
        raise DTypeError(f"dropout: the key must be a uint32 scalar, got {_fmt(key)}",
                         hint="use builder.rng_key() (what nn.Dropout does) or gf.constant(np.uint32(k))")
    if not 0.0 <= attrs["p"] <= 1.0:
        raise ShapeError(f"dropout: p must be in [0, 1], got {attrs['p']}")
    return [x]


def _dropout_ref(xs, attrs, env=None):
    x, key = xs
    p = attrs["p"]
    keep = dropout_mask(x.shape, int(key), p)
    with np.errstate(all="ignore"):
        scaled = x / np.asarray(1.0 - p, dtype=x.dtype)
    return [np.where(keep, scaled, np.zeros((), x.dtype)).astype(x.dtype)]


def _dropout_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None]
    # where(keep, g / (1 - p), 0) is the op itself applied to g with the same key.
    return [apply("dropout", g, inputs[1], p=attrs["p"]), None]


_KEY = TensorType((), "uint32")
register_op(OpDef(
    name="dropout", family="nn", num_inputs=(2, 2), attrs={"p": Attr("float", 0.5)},
    type_rule=_dropout_rule, reference=_dropout_ref, flops=elementwise_flops(2), vjp=_dropout_vjp,
    nondiff_inputs=(1,), random=True,
    doc="where(keep, x / (1 - p), 0) with the counter-based hash mask of docs/ARCHITECTURE.md.",
    samples=[
        Sample([TensorType((4, 5), F32), _KEY], attrs={"p": 0.3}, domain=["any", "int:0:1000"]),
        Sample([TensorType(("batch", 3, 4), F32), _KEY], attrs={"p": 0.5}, bind={"batch": 2},
               domain=["any", np.array(7, np.uint32)], note="symbolic batch"),
        Sample([TensorType((3, 3), F64), _KEY], attrs={"p": 0.1}, domain=["any", np.array(123456789, np.uint32)]),
    ],
))


# ---- embedding ------------------------------------------------------------------------------

def _embedding_rule(ts, attrs):
    table, idx = ts
    if table.rank != 2:
        raise ShapeError(f"embedding: the table must be (num_embeddings, dim), got {_fmt(table)}")
    if not _dt.is_int(idx.dtype):
        raise DTypeError(f"embedding: indices must be integers, got {_fmt(idx)}",
                         hint="pass int64/int32 token ids (cast with x.astype('int64')); the table comes first")
    return [TensorType(tuple(idx.shape) + (table.shape[1],), table.dtype)]


def _embedding_ref(xs, attrs, env=None):
    table, idx = xs
    v = table.shape[0]
    if idx.size and (idx.min() < -v or idx.max() >= v):
        raise IndexError(f"embedding index out of range [{-v}, {v}): min {idx.min()}, max {idx.max()}")
    return [np.take(table, np.where(idx < 0, idx + v, idx), axis=0)]


def _embedding_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None]
    table, idx = inputs
    return [_shape_ops.scatter_add(_shape_ops.broadcast_to(_zero(table), table.shape), idx, g, 0), None]


register_op(OpDef(
    name="embedding", family="nn", num_inputs=(2, 2), type_rule=_embedding_rule, reference=_embedding_ref,
    flops=lambda i, o, a: 0, vjp=_embedding_vjp, nondiff_inputs=(1,),
    decompose=lambda inputs, a: [apply("gather", inputs[0], inputs[1], axis=0)],
    doc="table[indices] -> indices.shape + (dim,); negative indices wrap (like gather).",
    samples=[
        Sample([TensorType((6, 4), F32), TensorType((2, 3), "int64")], domain=["any", "int:0:6"]),
        Sample([TensorType((5, 3), F32), TensorType(("batch", "seq"), "int32")], bind={"batch": 2, "seq": 3},
               domain=["any", "int:0:5"], note="symbolic batch and seq"),
        Sample([TensorType((4, 2), F64), TensorType((5,), "int64")], domain=["any", np.array([0, 3, 3, -1, 1])],
               note="repeated and negative indices"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def dropout(x, p: float = 0.5, key=None):
    """Inverted dropout with the counter-based mask. ``key`` is a uint32 scalar Tensor; None draws
    a fresh per-site key from the graph's ``rng`` input. ``p == 0`` returns ``x`` (no node)."""
    if p == 0:
        return x
    if key is None:
        builder = x.builder if isinstance(x, Tensor) else None
        builder = builder or current_builder()
        key = Tensor(builder.rng_key(), builder)
    return apply("dropout", x, key, p=float(p))


def embedding(table, indices):
    """Rows of ``table`` (num_embeddings, dim) at integer ``indices``. PyTorch's order
    ``embedding(indices, table)`` is also accepted (told apart by the dtypes)."""
    if isinstance(table, Tensor) and not _dt.is_float(table.dtype) and isinstance(indices, Tensor) \
            and _dt.is_float(indices.dtype):
        table, indices = indices, table
    return apply("embedding", table, indices)
