"""Neural-network ops: convolution, pooling, normalisation, dropout, embedding, attention.

The contract every back end lowers is in docs/ARCHITECTURE.md ("nn ops"): layout NCHW, 2-D attrs
``[h, w]``, ``pads`` ``[top, left, bottom, right]``. Gradients are graphs: conv2d's input gradient is a
``conv_transpose2d`` and its weight gradient a ``conv2d`` over transposed tensors; max_pool2d's is the
native ``max_pool2d_grad`` op (first maximum of a window takes its cotangent), avg_pool2d's a
gather/scatter_add formulation over constant window indices.
``layer_norm`` and ``attention`` are composite ops with a ``decompose`` into primitives.
The op definitions live in the private parts ``_nn_conv``, ``_nn_pool``, ``_nn_norm`` and
``_nn_attention`` (imported here, so importing this module registers every nn op); dropout,
embedding and the functional API are here.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError, UnsupportedOpError
from ..ir.types import TensorType
from ..trace.builder import current_builder
from ..trace.tensor import Tensor, apply
from . import _nn_attention, _nn_conv, _nn_norm, _nn_pool  # noqa: F401  (register their ops)
from ._nn_common import F32, F64, _fmt, _zero
from ._shapes import require_float
from .common import elementwise_flops
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, random as _random, shape_ops as _shape_ops

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm",
           "conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "max_pool1d", "max_pool3d", "avg_pool1d",
           "avg_pool3d",
           "layer_norm", "dropout", "dropout_mask", "embedding", "attention", "scaled_dot_product_attention",
           "resolve_padding"]


# ---- dropout --------------------------------------------------------------------------------

def dropout_mask(shape, key: int, p: float) -> np.ndarray:
    """The documented counter-based keep mask (bool, C order), bit-exact across back ends."""
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

def _tuple_of(v, name, n=2):
    """An int or an n-sequence of ints -> a list of n ints (one per spatial axis)."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            what = "a pair (h, w)" if n == 2 else f"{n} values (one per spatial axis)"
            raise ShapeError(f"{name} must be an int or {what}, got {v!r}")
        return [int(e) for e in v]
    return [int(v)] * n


def _pair_of(v, name):
    return _tuple_of(v, name, 2)


def resolve_padding(padding, kernel, dilation=None, stride=None) -> list[int]:
    """Explicit pads (the begins of every spatial axis, then the ends: ``[top, left, bottom, right]``
    in 2-D) from an int, one value per axis, begins+ends, "valid" or "same" (PyTorch semantics:
    stride 1, the odd extra pad goes to the end). The spatial rank is ``len(kernel)``.

    Args:
        padding: see above.
        kernel: the kernel size per spatial axis.
        dilation: one per spatial axis.
        stride: one per spatial axis.
    """
    n = len(kernel)
    dilation = [1] * n if dilation is None else list(dilation)
    stride = [1] * n if stride is None else list(stride)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * n)
        if padding == "same":
            if list(stride) != [1] * n:
                raise ShapeError("padding='same' is not supported for strided convolutions (PyTorch semantics)",
                                 hint="give explicit pads, e.g. padding=(k // 2, k // 2)")
            pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
            return [lo for lo, _ in pads] + [hi for _, hi in pads]
        raise ShapeError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (list, tuple)):
        if len(padding) == n:
            return [int(p) for p in padding] * 2
        if len(padding) == 2 * n:
            return [int(p) for p in padding]
        what = "(ph, pw) or 4 (top, left, bottom, right)" if n == 2 else f"(one per axis) or {2 * n} (begins, ends)"
        raise ShapeError(f"padding must have {n} {what} entries, got {padding!r}")
    p = int(padding)
    return [p] * (2 * n)


def _nsp_of(w, default=2):
    rank = len(w.shape) if hasattr(w, "shape") else default + 2
    return rank - 2 if rank in (3, 4, 5) else default


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """Convolution (N, C, *spatial) with 1-3 spatial axes — the weight's rank picks it; ``w`` is
    (out, in/groups, *kernel); padding an int, one per axis, begins+ends ((top, left, bottom, right)
    in 2-D), "same" or "valid".

    Args:
        x: an (N, C, *spatial) Tensor.
        w: the weight.
        b: None or the (out,) bias.
        stride: an int or one per spatial axis.
        padding: see above.
        dilation: an int or one per spatial axis.
        groups: independent channel groups.
    """
    n = _nsp_of(w)
    strides, dilations = _tuple_of(stride, "stride", n), _tuple_of(dilation, "dilation", n)
    kernel = [int(k) for k in w.shape[2:]] if len(w.shape) == n + 2 else [1] * n
    pads = resolve_padding(padding, kernel, dilations, strides)
    args = (x, w) if b is None else (x, w, b)
    return apply("conv2d", *args, strides=strides, pads=pads, dilations=dilations, groups=groups)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution (N, C, W); ``w`` is (out, in/groups, k). The ``conv2d`` op over one axis.

    Args:
        x: an (N, C, W) Tensor.
        w: the (out, in/groups, k) weight.
        b: None or the (out,) bias.
        stride: an int or a 1-tuple.
        padding: an int, a 1-tuple, a (begin, end) pair, ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or a 1-tuple.
        groups: independent channel groups.

    Returns:
        The (N, out, W_out) Tensor.

    Raises:
        ShapeError: a badly formed ``padding``, or ``"same"`` with a stride other than 1.
    """
    return conv2d(x, w, b, stride, padding, dilation, groups)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """3-D convolution (N, C, D, H, W); ``w`` is (out, in/groups, kd, kh, kw). The ``conv2d`` op over
    three axes.

    Args:
        x: an (N, C, D, H, W) Tensor.
        w: the (out, in/groups, kd, kh, kw) weight.
        b: None or the (out,) bias.
        stride: an int or one per spatial axis ``(sd, sh, sw)``.
        padding: an int, one per spatial axis, 6 values (the three begins, then the three ends),
            ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: an int or one per spatial axis.
        groups: independent channel groups.

    Returns:
        The (N, out, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: a badly formed ``padding``, or ``"same"`` with a stride other than 1.
    """
    return conv2d(x, w, b, stride, padding, dilation, groups)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """Transposed convolution (PyTorch argument order); ``w`` is (in, out/groups, *kernel) with 1-3
    spatial axes (the weight's rank picks it).

    Args:
        x: an (N, C, *spatial) Tensor.
        w: the weight.
        b: None or the bias.
        stride: an int or one per spatial axis.
        padding: an int or one per spatial axis.
        output_padding: an int or one per spatial axis.
        groups: channel groups.
        dilation: an int or one per spatial axis.
    """
    n = _nsp_of(w)
    strides, dilations = _tuple_of(stride, "stride", n), _tuple_of(dilation, "dilation", n)
    if isinstance(padding, str):
        raise ShapeError("conv_transpose2d takes explicit padding (an int or a tuple), not a string")
    args = (x, w) if b is None else (x, w, b)
    return apply("conv_transpose2d", *args, strides=strides, pads=resolve_padding(padding, [1] * n),
                 output_padding=_tuple_of(output_padding, "output_padding", n), dilations=dilations, groups=groups)


conv_transpose1d = conv_transpose3d = conv_transpose2d


def _pool_args(kernel_size, stride, padding, n=2, dilation=1):
    kernel = _tuple_of(kernel_size, "kernel_size", n)
    strides = kernel if stride is None else _tuple_of(stride, "stride", n)
    return kernel, strides, resolve_padding(padding, kernel), _tuple_of(dilation, "dilation", n)


def _spatial_of(x, n):
    # max_pool2d/avg_pool2d stay 2-D (a rank-3 input is an error, not a silent 1-D pool);
    # max_pool1d/3d and the importer name the spatial rank
    return 2 if n is None else n


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1, *, _n=None):
    """2-D max pooling (NCHW; max_pool1d/max_pool3d for the other ranks); ``stride`` defaults to the
    kernel size.

    Args:
        x: an (N, C, *spatial) Tensor.
        kernel_size: an int or one per spatial axis.
        stride: an int or one per spatial axis.
        padding: an int or one per spatial axis.
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or one per spatial axis.
    """
    kernel, strides, pads, dil = _pool_args(kernel_size, stride, padding, _spatial_of(x, _n), dilation)
    return apply("max_pool2d", x, kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil_mode, dilations=dil)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               *, _n=None):
    """2-D average pooling (NCHW; avg_pool1d/avg_pool3d for the other ranks); ``stride`` defaults to the
    kernel size.

    Args:
        x: an (N, C, H, W) Tensor.
        kernel_size: an int or ``(kh, kw)``.
        stride: an int or ``(sh, sw)``; None: the kernel size.
        padding: an int, ``(ph, pw)`` or 4 values (top, left, bottom, right).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).
    """
    kernel, strides, pads, dil = _pool_args(kernel_size, stride, padding, _spatial_of(x, _n))
    return apply("avg_pool2d", x, kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad, dilations=dil)


def max_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1):
    """1-D max pooling over (N, C, W) input (the ``max_pool2d`` op over one axis);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, W) Tensor.
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: the kernel size.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or a 1-tuple.

    Returns:
        The pooled (N, C, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride``, ``padding`` or ``dilation`` with the wrong number of values.
    """
    return max_pool2d(x, kernel_size, stride, padding, ceil_mode, dilation, _n=1)


def max_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, dilation=1):
    """3-D max pooling over (N, C, D, H, W) input (the ``max_pool2d`` op over three axes);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, D, H, W) Tensor.
        kernel_size: the window size, an int or ``(d, h, w)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: the kernel size.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        ceil_mode: round the output size up.
        dilation: the spacing between kernel elements, an int or ``(d, h, w)``.

    Returns:
        The pooled (N, C, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride``, ``padding`` or ``dilation`` with the wrong number of values.
    """
    return max_pool2d(x, kernel_size, stride, padding, ceil_mode, dilation, _n=3)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """1-D average pooling over (N, C, W) input (the ``avg_pool2d`` op over one axis);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, W) Tensor.
        kernel_size: the window size, an int or a 1-tuple.
        stride: the step between windows, an int or a 1-tuple; None: the kernel size.
        padding: an int or a 1-tuple (the same on both sides), or 2 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).

    Returns:
        The pooled (N, C, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride`` or ``padding`` with the wrong number of values.
    """
    return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, _n=1)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """3-D average pooling over (N, C, D, H, W) input (the ``avg_pool2d`` op over three axes);
    ``stride`` defaults to the kernel size.

    Args:
        x: an (N, C, D, H, W) Tensor.
        kernel_size: the window size, an int or ``(d, h, w)``.
        stride: the step between windows, an int or ``(d, h, w)``; None: the kernel size.
        padding: an int or ``(d, h, w)`` (the same on both sides), or 6 values (begins, then ends).
        ceil_mode: round the output size up.
        count_include_pad: count the padded zeros in each window's divisor (PyTorch's default).

    Returns:
        The pooled (N, C, D_out, H_out, W_out) Tensor.

    Raises:
        ShapeError: ``kernel_size``, ``stride`` or ``padding`` with the wrong number of values.
    """
    return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, _n=3)


def global_avg_pool2d(x):
    """Mean over H and W, keeping them as size 1: (N, C, H, W) -> (N, C, 1, 1).

    Args:
        x: an NCHW Tensor.
    """
    return apply("global_avg_pool2d", x)


def _const_like(value, n, like):
    return _creation.full((n,), value, like.dtype)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation over axis 1 (PyTorch's argument order). Eval returns ``y``; training
    returns ``(y, new_running_mean, new_running_var)`` (batch statistics; momentum as in PyTorch).

    Args:
        x: an (N, C, ...) Tensor.
        running_mean: (C,) running mean.
        running_var: (C,) running variance.
        weight: None or the (C,) scale.
        bias: None or the (C,) shift.
        training: use batch statistics.
        momentum: weight of the batch statistics in the new running ones.
        eps: added to the variance.
    """
    c = x.shape[1] if len(x.shape) >= 2 else 1
    if weight is None:
        weight = _const_like(1.0, c, x)
    if bias is None:
        bias = _const_like(0.0, c, x)
    return apply("batch_norm", x, weight, bias, running_mean, running_var, eps=eps, momentum=momentum,
                 training=training)


def layer_norm(x, normalized_shape_or_axis=-1, weight=None, bias=None, eps: float = 1e-5):
    """Layer normalisation. The second argument is a first normalised ``axis`` (an int, default -1)
    or PyTorch's ``normalized_shape`` (a tuple/list: the trailing dims to normalise over).

    Args:
        x: the input Tensor.
        normalized_shape_or_axis: see above.
        weight: None or the scale.
        bias: None or the shift.
        eps: added to the variance.
    """

    rank = len(x.shape)
    spec = normalized_shape_or_axis
    if isinstance(spec, (list, tuple)):
        shape = tuple(spec)
        if tuple(x.shape[rank - len(shape):]) != shape or len(shape) > rank or not shape:
            raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of "
                             f"{getattr(x, 'type', x.shape)}", hint="normalized_shape must equal x.shape[-k:]")
        axis = -len(shape)
    else:
        axis = int(spec)
        if not -rank <= axis < rank and rank and x.shape[-1] == axis:
            axis = -1  # PyTorch's int normalized_shape (e.g. layer_norm(x, 512))
    if weight is None and bias is not None:
        weight = _creation.ones(tuple(x.shape[axis % rank:]), x.dtype)
    args = [x] + ([weight] if weight is not None else []) + ([bias] if bias is not None else [])
    return apply("layer_norm", *args, axis=axis, eps=eps)


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


def attention(q, k, v, mask=None, scale: float | None = None, causal: bool = False):
    """Scaled dot-product attention on (B, H, S, D) tensors (rank-3 (B, S, D) means one head);
    ``mask`` is bool, True = attend, broadcastable to (B, H, Sq, Sk).

    Args:
        q: the queries.
        k: the keys.
        v: the values.
        mask: see above.
        scale: None: ``1/sqrt(D)``.
        causal: mask out future positions.
    """

    if q.ndim == 3 and k.ndim == 3 and v.ndim == 3:
        if mask is not None and mask.ndim == 3:
            mask = _shape_ops.unsqueeze(mask, 1)
        out = attention(_shape_ops.unsqueeze(q, 1), _shape_ops.unsqueeze(k, 1), _shape_ops.unsqueeze(v, 1), mask, scale, causal)
        return _shape_ops.squeeze(out, 1)
    args = (q, k, v) if mask is None else (q, k, v, mask)
    return apply("attention", *args, scale=None if scale is None else float(scale), causal=causal)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None):
    """PyTorch's spelling of :func:`attention` (a bool ``attn_mask``, True = attend).

    Args:
        query: the queries.
        key: the keys.
        value: the values.
        attn_mask: see above.
        dropout_p: attention dropout (0 outside training).
        is_causal: mask out future positions.
        scale: None: ``1/sqrt(D)``.
    """
    if dropout_p:
        raise UnsupportedOpError("scaled_dot_product_attention: dropout_p > 0 is not supported by the fused op",
                                 ops=["attention"], hint="apply gf.dropout to the attention weights computed "
                                 "explicitly, or use nn.MultiheadAttention(dropout=p) in training mode")
    return attention(query, key, value, attn_mask, scale, is_causal)
