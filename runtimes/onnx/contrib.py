"""onnxruntime contrib kernels (``com.microsoft`` domain) for graphforge's fused ops, when an export
asks for them (``to_onnx(..., contrib_ops=True)``; ``graphforge compile --contrib-ops``).

A portable export (the default) is standard ONNX only. For a file that only onnxruntime will run,
these lowerings take over from the standard ones where they apply (each says when):

* ``attention`` (float32, static head count and size) → ``Attention`` for self-attention whose
  q/k/v are head-split ``linear`` projections of one input with stored weights (the three weights
  packed into one; ``causal`` is its ``unidirectional``), else ``MultiHeadAttention`` with q/k/v
  as (B, S, H·D) — the transposes around either cancel against the model's own head split/merge
  in onnxruntime's transpose optimiser; a mask becomes an additive ``attention_bias`` of 0/−inf.
  At the default opset onnxruntime 1.32 has no kernel for the standard ``Attention``, so the portable
  export spells attention out in MatMul/Softmax nodes. Self-attention (unmasked or with a key-padding
  mask) whose q/k/v are int8 projections of one quantized input (``quantize_dynamic``'s or
  ``quantize_static``'s form, the input uint8) → ``QAttention`` (integer projections
  and attention in one kernel; the packed weight, bias and scales are ``Concat`` nodes over the stored
  values, folded when onnxruntime loads the file).
* not ``SkipLayerNormalization``: onnxruntime 1.32's CPU kernel for it measured 2–6× slower than
  the Add and the LayerNormalization it stands for, so a residual ``layer_norm(a + b)`` keeps the
  standard lowering, which also stops onnxruntime from fusing the pair at load time
  (``nn_ops._layer_norm``; docs/serving.md §11).
* ``linear`` with a fused GELU (either flavour) and a bias → MatMul + ``BiasGelu`` / ``FastGelu`` (bias
  add and GELU in one kernel); ``gelu(approximate="tanh")`` → ``FastGelu``.

The exporter asks :func:`contrib_lowering` for each node before its standard lowering and adds the
``com.microsoft`` opset import when a contrib node was emitted. Results agree with the portable
export within float32 rounding (``tests/runtimes/test_onnx_contrib.py``: 1e-4).
"""
from __future__ import annotations

import math

import numpy as np

from graphforge.ir.dims import is_static

__all__ = ["DOMAIN", "contrib_lowering", "CONTRIB_OPS"]

DOMAIN = "com.microsoft"


def _f32(node) -> bool:
    return all(v.type.dtype == "float32" for v in list(node.inputs[:3]) + list(node.outputs))


# ---- attention -> MultiHeadAttention ------------------------------------------------------------------

def _attention_applies(node) -> bool:
    q, k, v = (i.type for i in node.inputs[:3])
    if not _f32(node) or q.rank != 4 or k.rank != 4 or v.rank != 4:
        return False
    heads, d, dv = q.shape[1], q.shape[3], v.shape[3]
    return all(is_static(x) for x in (heads, d, dv)) and k.shape[1] == heads and v.shape[1] == heads


def _bsh(ctx, x: str, heads: int, d: int) -> str:
    """(B, H, S, D) → (B, S, H·D)."""
    return ctx.op("Reshape", [ctx.transpose(x, [0, 2, 1, 3]), ctx.ints([0, 0, heads * d])])


def _head_split_source(value):
    """The (B, S, H·D) value that ``value`` splits into heads — ``transpose(reshape(p, (B, S, H, D)),
    (0, 2, 1, 3))`` — else None."""
    t = value.producer
    if t is None or t.op != "transpose" or list(t.attrs.get("perm", ())) != [0, 2, 1, 3]:
        return None
    r = t.inputs[0].producer
    if r is None or r.op != "reshape" or r.inputs[0].type.rank != 3:
        return None
    if list(r.inputs[0].type.shape[:2]) != list(r.outputs[0].type.shape[:2]):
        return None  # the reshape must only split the feature axis into heads
    return r.inputs[0]


def _head_split_projection(value):
    """The ``linear`` whose output ``value`` is, split into heads (:func:`_head_split_source`), when
    its weight and bias are parameters and it fuses no activation; else None."""
    source = _head_split_source(value)
    lin = source.producer if source is not None else None
    if lin is None or lin.op != "linear" or lin.attrs.get("activation", "none") != "none":
        return None
    if any(p.producer is not None for p in lin.inputs[1:]):
        return None  # a computed weight or bias: not a parameter to pack
    return lin


def _packed_projections(node):
    """For self-attention whose q, k and v are three head-split projections of one 3-D input ``x``
    with equal head sizes: ``(x, [linear_q, linear_k, linear_v])``; else None."""
    lins = [_head_split_projection(v) for v in node.inputs[:3]]
    if any(lin is None for lin in lins):
        return None
    x = lins[0].inputs[0]
    if any(lin.inputs[0] is not x for lin in lins) or len({len(lin.inputs) for lin in lins}) != 1:
        return None
    if len({v.type.shape[3] for v in node.inputs[:3]}) != 1:
        return None
    return x, lins


def _packed_attention(ctx, node, heads: int, head_size: int):
    """``Attention(x, [Wq Wk Wv], [bq bk bv])``: the three projections and the attention in one
    kernel (onnxruntime's BERT ``Attention``), when q/k/v are projections of one input whose
    weights are stored parameters; None otherwise. The three ``linear`` lowerings already emitted
    are left unread and dropped by the exporter, their parameters with them."""
    found = _packed_projections(node)
    if found is None:
        return None
    x, lins = found
    names = [[ctx.driver.name_of(p) for p in lin.inputs[1:]] for lin in lins]
    stored = [[ctx.stored_params.get(n) for n in row] for row in names]
    if any(e is None for row in stored for e in row):
        return None  # parameters fed as graph inputs: no packed initializer to write
    weights = [np.asarray(row[0][0]) for row in stored]
    weights = [w.T if lin.attrs.get("transpose_b", True) else w for w, lin in zip(weights, lins)]
    dtype = stored[0][0][1]
    packed_w = ctx.const(np.ascontiguousarray(np.concatenate(weights, axis=1)), dtype)
    if len(stored[0]) > 1:
        packed_b = ctx.const(np.concatenate([np.asarray(row[1][0]) for row in stored]), dtype)
    else:
        packed_b = ctx.const(np.zeros(3 * heads * head_size, np.float32), dtype)
    ctx.relaid_params.update(n for row in names for n in row)
    return ctx.driver.name_of(x), packed_w, packed_b


# ops a stored constant may pass through on its way to a quantized projection (dequantized biases,
# float16-stored scales: quantize_dynamic's and quantize_other_params's forms)
_CONSTANT_OPS = frozenset({"constant", "cast", "mul", "add", "sub", "reshape", "dequantize_linear"})


def _constant(ctx, value):
    """The array ``value`` holds when it is computed from stored parameters and constants only
    (evaluated with the op references); None otherwise."""
    from .elementwise import static_array

    array = static_array(ctx, value)  # a stored parameter or a constant node
    node = value.producer
    if array is not None or node is None or node.op not in _CONSTANT_OPS or node.regions:
        return array
    args = [_constant(ctx, v) for v in node.inputs]
    if any(a is None for a in args):
        return None
    from graphforge.ops.evaluate import evaluate_node

    return evaluate_node(node, args)[value.index]


def _operands(node, op: str, count: int = 2):
    return list(node.inputs) if node is not None and node.op == op and len(node.inputs) == count else None


def _dynamic_projection(value):
    """``quantize_dynamic``'s form of a linear projection — ``cast(matmul_integer(xq, w, xz, wz)) *
    (xs * ws) [+ b]`` with ``xq, xs, xz = dynamic_quantize_linear(x)`` — as ``(the
    dynamic_quantize_linear node, (xq, xs, xz), w, ws, wz, b or None)``; else None."""
    bias, y = None, value
    add = _operands(value.producer, "add")
    if add is not None:
        y, bias = add if add[1].type.rank == 1 else add[::-1]
        if bias.type.rank != 1:
            return None
    mul = _operands(y.producer, "mul")
    if mul is None:
        return None
    cast, scale = mul if mul[0].producer is not None and mul[0].producer.op == "cast" else mul[::-1]
    acc = _operands(cast.producer, "cast", 1)
    mm = _operands(acc[0].producer, "matmul_integer", 4) if acc is not None else None
    scales = _operands(scale.producer, "mul")
    if mm is None or scales is None:
        return None
    xq, w, xz, wz = mm
    dql = xq.producer
    if dql is None or dql.op != "dynamic_quantize_linear" or xz.producer is not dql or w.type.rank != 2:
        return None
    xs, ws = scales if scales[0].producer is dql else scales[::-1]
    if xs.producer is not dql or (xq.index, xs.index, xz.index) != (0, 1, 2):
        return None
    return dql, (xq, xs, xz), w, ws, wz, bias


def _static_projection(value):
    """``quantize_static``'s form of a linear projection — ``linear(dequantize_linear(xq, xs, xz),
    dequantize_linear(w, ws, wz, axis=1) [, b])`` with ``xq = quantize_linear(x, xs, xz)``, uint8 — as
    ``(the quantize_linear node, (xq, xs, xz), w, ws, wz, b or None)``; else None."""
    lin = value.producer
    if (lin is None or lin.op != "linear" or lin.attrs.get("transpose_b", True)
            or lin.attrs.get("activation", "none") != "none"):
        return None
    x_dq, w_dq = (v.producer for v in lin.inputs[:2])
    if x_dq is None or w_dq is None or x_dq.op != "dequantize_linear" or w_dq.op != "dequantize_linear":
        return None
    xq, xs, xz = (list(x_dq.inputs) + [None])[:3]
    q = xq.producer
    if q is None or q.op != "quantize_linear" or xz is None or xq.type.dtype != "uint8":
        return None
    if any(list(v.type.shape) not in ([], [1]) for v in (xs, xz)):
        return None  # QAttention takes one input scale and zero point
    w, ws, wz = (list(w_dq.inputs) + [None])[:3]
    if wz is None or w.type.rank != 2 or w_dq.attrs.get("block_size", 0):
        return None
    if ws.type.rank and w_dq.attrs.get("axis") != 1:
        return None  # per-column scales are along the output axis of the (in, out) weight
    return q, (xq, xs, xz), w, ws, wz, (lin.inputs[2] if len(lin.inputs) > 2 else None)


def _quantized_packed_attention(ctx, node, heads: int, head_size: int):
    """``QAttention(xq, [Wq Wk Wv], [bq bk bv], xs, [sq sk sv], -, xz)``: onnxruntime's integer
    self-attention, when q/k/v are int8 projections of one quantized input — ``quantize_dynamic``'s
    form (:func:`_dynamic_projection`) or ``quantize_static``'s (:func:`_static_projection`) — with
    stored int8 weights (zero points 0) and per-column or per-tensor scales; None otherwise. Same
    arithmetic as the three projections: int32 products scaled by ``xs · ws`` plus the float bias.
    The packed weight, bias and scales are ``Concat`` nodes over the projections' own stored values
    (int8 biases and float16 scales dequantized the way they are), which onnxruntime folds into
    initializers when it loads the file: the file stores nothing twice."""
    sources = [_head_split_source(v) for v in node.inputs[:3]]
    found = None
    for match in (_dynamic_projection, _static_projection):
        found = [match(s) if s is not None else None for s in sources]
        if all(f is not None for f in found):
            break
    if any(f is None for f in found) or len({id(f[0]) for f in found}) != 1:
        return None
    xq, xs, xz = found[0][1]
    if xq.type.rank != 3:
        return None
    hidden = heads * head_size
    scales = []
    for *_, w, ws, wz, bias in found:
        wv, sv, zv = (_constant(ctx, v) for v in (w, ws, wz))
        if any(a is None for a in (wv, sv, zv)) or wv.dtype != np.int8 or np.any(zv != 0):
            return None
        if wv.shape != (found[0][2].type.shape[0], hidden) or sv.size not in (1, hidden):
            return None
        if bias is not None and (_constant(ctx, bias) is None or tuple(bias.type.shape) != (hidden,)):
            return None
        scales.append(sv)
    name = ctx.driver.name_of
    weight = ctx.op("Concat", [name(f[2]) for f in found], axis=1)
    bias = ctx.op("Concat", [name(f[5]) if f[5] is not None else ctx.const(np.zeros(hidden, np.float32))
                             for f in found], axis=0)
    values = np.concatenate([np.asarray(sv, np.float32).reshape(-1) for sv in scales])
    if np.all(values == values[0]):
        scale = ctx.const(values[0], "float32")  # one scale for every column: the per-tensor kernel
    elif all(sv.size == hidden and f[3].type.rank == 1 for sv, f in zip(scales, found)):
        scale = ctx.op("Concat", [name(f[3]) for f in found], axis=0)
    else:  # scalars that differ: one column vector
        scale = ctx.const(np.concatenate([np.broadcast_to(np.asarray(sv, np.float32).reshape(-1), (hidden,))
                                          for sv in scales]), "float32")
    return [name(xq), weight, bias, name(xs), scale, "", name(xz)]


def _key_padding_shape(mask_type, batch, sk):
    """The 4-D shape of a boolean mask that only masks keys — (B|1, 1, 1, Sk) after broadcasting to
    (B, H, Sq, Sk) — else None."""
    if mask_type.dtype != "bool":
        return None
    shape = [1] * (4 - len(mask_type.shape)) + list(mask_type.shape)
    if shape[1:3] != [1, 1] or shape[3] != sk or shape[0] not in (1, batch):
        return None
    return shape


def _mask_index(ctx, mask, shape, batch, sk) -> str:
    """A key-padding mask of 4-D ``shape`` as QAttention's raw 2-D ``mask_index``: (B, Sk) int32, 1 =
    attend."""
    if len(ctx.in_types[3].shape) < 4:
        mask = ctx.op("Unsqueeze", [mask, ctx.ints(list(range(4 - len(ctx.in_types[3].shape))))])
    mask = ctx.op("Squeeze", [mask, ctx.ints([1, 2])])
    mask = ctx.expand(mask, [shape[0], sk], [batch, sk])
    return ctx.op("Cast", [mask], to=6)  # INT32


def _attention_bias(ctx, mask, mask_shape, sq, sk) -> str:
    """A boolean mask → the (B|1, H|1, Sq, Sk) additive bias both kernels take: 0 where attended,
    −inf elsewhere (a fully masked row is NaN, as the reference's)."""
    shape4 = [1] * (4 - len(mask_shape)) + list(mask_shape)
    if len(mask_shape) < 4:
        mask = ctx.op("Unsqueeze", [mask, ctx.ints(list(range(4 - len(mask_shape))))])
    mask = ctx.expand(mask, shape4, shape4[:2] + [sq, sk])
    return ctx.op("Where", [mask, ctx.scalar(0.0, "float32"), ctx.scalar(-np.inf, "float32")])


def _attention(ctx, args, attrs):
    from .nn_ops import _broadcast, _causal

    qt, kt, vt = ctx.in_types[:3]
    heads, d, dv = int(qt.shape[1]), int(qt.shape[3]), int(vt.shape[3])
    sq, sk = qt.shape[2], kt.shape[2]
    mask = args[3] if len(args) > 3 else None
    mask_shape = list(ctx.in_types[3].shape) if mask is not None else None
    scale = attrs.get("scale")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(d)
    packed = _packed_attention(ctx, ctx.node, heads, d) if hasattr(ctx, "driver") else None
    batch = qt.shape[0]
    padding = _key_padding_shape(ctx.in_types[3], batch, sk) if mask is not None else None
    quantized = (_quantized_packed_attention(ctx, ctx.node, heads, d)
                 if packed is None and (mask is None or padding is not None) and hasattr(ctx, "driver") else None)
    if quantized is not None:
        # int8 self-attention; a key-padding mask is QAttention's raw (B, Sk) mask_index (it takes no
        # additive bias): a row whose keys are all masked averages them, where the reference gives NaN
        if padding is not None:
            quantized[5] = _mask_index(ctx, mask, padding, batch, sk)
        out = ctx.op("QAttention", quantized, domain=DOMAIN, num_heads=heads, scale=scale,
                     unidirectional=1 if attrs.get("causal") else None)
    elif packed is not None:
        # self-attention: causal is the kernel's own ``unidirectional`` (Sq == Sk), a mask its
        # attention_bias (input 5, after the absent mask_index and past)
        inputs = list(packed)
        if mask is not None:
            inputs += ["", "", _attention_bias(ctx, mask, mask_shape, sq, sk)]
        out = ctx.op("Attention", inputs, domain=DOMAIN, num_heads=heads, scale=scale,
                     unidirectional=1 if attrs.get("causal") else None)
    else:
        if attrs.get("causal"):
            tri = _causal(ctx, sq, sk)
            mask = tri if mask is None else ctx.op("And", [mask, tri])
            mask_shape = _broadcast(mask_shape or [], [sq, sk])
        inputs = [_bsh(ctx, args[0], heads, d), _bsh(ctx, args[1], heads, d), _bsh(ctx, args[2], heads, dv)]
        if mask is not None:
            inputs += ["", "", _attention_bias(ctx, mask, mask_shape, sq, sk)]  # (bias, key_padding_mask) absent
        out = ctx.op("MultiHeadAttention", inputs, domain=DOMAIN, num_heads=heads, scale=scale)
    out = ctx.op("Reshape", [out, ctx.ints([0, 0, heads, dv])])
    return [ctx.transpose(out, [0, 2, 1, 3])]


# ---- linear + GELU -> MatMul + BiasGelu / FastGelu ------------------------------------------------

# GELU flavour (the ``approximate`` attribute of the activation op linear fuses) -> contrib kernel
_GELU = {"none": "BiasGelu", "tanh": "FastGelu"}


def _gelu_kernel(activation: str) -> str | None:
    from graphforge.ops.linalg import activation_op

    act = activation_op(activation) if activation != "none" else None
    if act is None or act[0] != "gelu":
        return None
    return _GELU.get(act[1].get("approximate", "none"))


def _linear_gelu_applies(node) -> bool:
    return (_gelu_kernel(node.attrs.get("activation", "none")) is not None and len(node.inputs) == 3
            and _f32(node) and node.inputs[2].type.rank == 1 and node.inputs[0].type.rank >= 2)


def _linear_gelu(ctx, args, attrs):
    x, w, b = args
    wt = (ctx.transposed_param(w) or ctx.transpose(w, [1, 0])) if attrs.get("transpose_b", True) else w
    y = ctx.op("MatMul", [x, wt])
    return [ctx.op(_gelu_kernel(attrs["activation"]), [y, b], domain=DOMAIN)]


def _fast_gelu_applies(node) -> bool:
    # onnxruntime's FastGelu rejects a 0-D input ("expected to have 1 or more dimensions")
    return node.attrs.get("approximate") == "tanh" and _f32(node) and node.inputs[0].type.rank >= 1


def _fast_gelu(ctx, args, attrs):
    return [ctx.op("FastGelu", [args[0]], domain=DOMAIN)]


# op -> (applies(node), lowering(ctx, args, attrs) -> names | None)
CONTRIB_OPS = {
    "attention": (_attention_applies, _attention),
    "linear": (_linear_gelu_applies, _linear_gelu),
    "gelu": (_fast_gelu_applies, _fast_gelu),
}


def contrib_lowering(node):
    """The contrib lowering for ``node`` (an IR node) when one applies, else None."""
    entry = CONTRIB_OPS.get(node.op)
    if entry is None or not entry[0](node):
        return None
    return entry[1]
