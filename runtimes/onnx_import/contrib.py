"""Importers for onnxruntime's ``com.microsoft`` contrib ops: the ones graphforge's own contrib export
writes (``runtimes/onnx/contrib.py``: ``Attention``, ``QAttention``, ``MultiHeadAttention``,
``BiasGelu``, ``FastGelu``) and the ones onnxruntime's load-time fusions and transformer optimizer
write into a model (``SkipLayerNormalization``, ``FusedMatMul``, ``Gelu``; for quantized files
``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat``, float-output ``QGemm``), so that
``gf.from_onnx`` / ``graphforge show`` / ``graphforge optimize`` read files meant for onnxruntime only.

Each becomes standard graphforge ops with onnxruntime's semantics. An attention kernel with no mask,
or with a mask made from a boolean one — graphforge's own ``attention_bias`` (0 / −inf), or
``mask_index`` (a raw (B, Sk) mask or (B,) key lengths) — becomes the registry's ``attention`` op, at
any sequence length; a query whose keys are all masked is NaN there, where onnxruntime's −10000 mask
filter averages them. Any other additive ``attention_bias`` goes through the standard ONNX
``Attention`` importer (``nn_attention.py``: matmul/softmax, static sequence lengths, a fully masked
row 0). What these kernels accept and graphforge does not express — other ``mask_index`` forms, a
past key/value cache, rotary embedding inside the kernel, ``present`` outputs — is refused by name
(``UnsupportedOpError``)."""
from __future__ import annotations

import numpy as np
import onnx

from .importer import attrs_of, importer, unsupported
from .nn_attention import _attention as _standard_attention

__all__: list[str] = []

DOMAIN = "com.microsoft"


def _refuse_inputs(ctx, node, names: dict[int, str]) -> None:
    for i, what in names.items():
        if ctx.has(node, i):
            unsupported(node, f"the {what} input (input {i}) is not supported")


def _refuse_extra_outputs(node, first: int = 1) -> None:
    if any(o for o in node.output[first:]):
        unsupported(node, "its present key/value (or other extra) outputs are not supported")


def _import_time_array(ctx, value):
    """``value``'s array when the import knows it: an initializer (imported as a stored parameter) or
    a Constant (a constant node); else None."""
    from graphforge.passes.rewrite import constant_array

    array = constant_array(ctx.graph, value)
    return ctx.graph.params.get(value.name) if array is None and value.producer is None else array


def _bool_mask_of(ctx, bias):
    """The boolean mask (True = attend) an additive bias was made from — ``where(mask, 0, f)`` with
    ``f`` −inf or onnxruntime's −10000 mask filter or lower — else None."""
    node = bias.producer
    if node is None or node.op != "where" or node.inputs[0].type.dtype != "bool":
        return None
    zero, fill = (_import_time_array(ctx, v) for v in node.inputs[1:3])
    if zero is None or fill is None or np.any(zero != 0) or np.any(fill > -1e4):
        return None
    return node.inputs[0]


def _sdpa(ctx, node, q, k, v, heads: int, attrs: dict, bias=None):
    """Scaled dot-product attention over (B, S, H·D) q, k, v. A bias made from a boolean mask (the
    form graphforge's export and ``mask_index`` give) and no bias at all are the registry's
    ``attention`` op, at any sequence length; any other additive bias goes through the standard
    ``Attention`` importer, run on a node built for it (static sequence lengths)."""
    keep = _bool_mask_of(ctx, bias) if bias is not None else None
    if bias is None or keep is not None:
        if not all(isinstance(t.type.shape[-1], int) for t in (q, k, v)):
            unsupported(node, "symbolic hidden sizes")
        qh, kh, vh = (_split_heads(ctx, t, heads) for t in (q, k, v))
        scale = float(attrs["scale"]) if attrs.get("scale") else None
        y = ctx.emit("attention", [qh, kh, vh] + ([keep] if keep is not None else []), scale=scale,
                     causal=bool(int(attrs.get("unidirectional", 0))))
        b, h, s, d = y.type.shape
        return ctx.emit("reshape", [ctx.emit("transpose", [y], perm=[0, 2, 1, 3])], shape=[b, s, h * d])
    names = []
    for i, value in enumerate((q, k, v, bias)):
        name = f"{node.name or node.op_type}:{i}:contrib"
        ctx.values[name] = value
        names.append(name)
    extra = {"scale": float(attrs["scale"])} if attrs.get("scale") else {}
    std = onnx.helper.make_node("Attention", names, [node.output[0]], name=node.name, q_num_heads=heads,
                                kv_num_heads=heads, is_causal=int(attrs.get("unidirectional", 0)), **extra)
    return _standard_attention(ctx, std)[0]


def _split_heads(ctx, x, heads: int):
    """(B, S, H·D) → (B, H, S, D)."""
    b, s, hidden = x.type.shape
    y = ctx.emit("reshape", [x], shape=[b, s, heads, hidden // heads])
    return ctx.emit("transpose", [y], perm=[0, 2, 1, 3])


def _heads(node, attrs) -> int:
    heads = int(attrs.get("num_heads", 0))
    if heads <= 0:
        unsupported(node, "num_heads must be positive")
    if int(attrs.get("do_rotary", 0)):
        unsupported(node, "rotary embedding inside the attention kernel (do_rotary=1) is not supported")
    return heads


def _split_qkv(ctx, node, qkv, attrs):
    """The (B, S, Hq + Hk + Hv) projection split into q, k, v (``qkv_hidden_sizes`` or thirds)."""
    sizes = [int(s) for s in attrs.get("qkv_hidden_sizes", [])] or None
    total = qkv.type.shape[-1]
    if sizes is None:
        if not isinstance(total, int) or total % 3:
            unsupported(node, f"a packed q/k/v width of {total} is not three equal parts")
        sizes = [total // 3] * 3
    if sizes[0] != sizes[1]:
        unsupported(node, f"q and k hidden sizes differ ({sizes[0]} vs {sizes[1]})")
    return ctx.emit_n("split", [qkv], sizes=sizes, axis=-1)


def _mask_index_bias(ctx, node, i: int, batch, sk, attrs):
    """``mask_index`` (input ``i``) as the additive (B, 1, 1, Sk) bias onnxruntime makes of it: 0 where a
    key is attended, ``mask_filter_value`` (−10000) elsewhere. The raw 2-D (B, Sk) mask (non-zero =
    attend) and 1-D key lengths (B) are read; other forms are refused."""
    m = ctx.input(node, i)
    shape = list(m.type.shape)
    if len(shape) == 2 and shape[1] == sk:
        keep = ctx.emit("not_equal", [m, ctx.scalar(0, m.type.dtype)])
    elif len(shape) == 1 and shape[0] == batch and isinstance(sk, int):
        positions = ctx.materialize(np.arange(sk, dtype=np.int64).reshape(1, sk), "key_position")
        keep = ctx.emit("less", [positions, ctx.emit("unsqueeze", [ctx.cast(m, "int64")], axes=[1])])
    else:
        unsupported(node, f"a mask_index of shape {tuple(shape)} (only (batch, keys) raw masks and (batch,) key "
                          "lengths are supported)")
    fill = float(attrs.get("mask_filter_value", -10000.0))
    keep = ctx.emit("unsqueeze", [keep], axes=[1, 2])
    return ctx.emit("where", [keep, ctx.scalar(0.0, "float32"), ctx.scalar(fill, "float32")])


def _joined(ctx, a, b):
    return b if a is None else a if b is None else ctx.emit("add", [a, b])


@importer(f"{DOMAIN}::Attention")
def _attention(ctx, node):
    """BERT ``Attention(input, weights, bias, mask_index, past, attention_bias)``: q/k/v from one packed
    projection, then attention; ``unidirectional`` is causal."""
    a = attrs_of(node)
    heads = _heads(node, a)
    _refuse_inputs(ctx, node, {4: "past", 6: "past_sequence_length"})
    _refuse_extra_outputs(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    qkv = ctx.emit("matmul", [x, w])
    if ctx.has(node, 2):
        qkv = ctx.emit("add", [qkv, ctx.input(node, 2)])
    q, k, v = _split_qkv(ctx, node, qkv, a)
    bias = _mask_index_bias(ctx, node, 3, x.type.shape[0], x.type.shape[1], a) if ctx.has(node, 3) else None
    bias = _joined(ctx, bias, ctx.input(node, 5) if ctx.has(node, 5) else None)
    return [_sdpa(ctx, node, q, k, v, heads, a, bias)]


@importer(f"{DOMAIN}::QAttention")
def _qattention(ctx, node):
    """Integer ``QAttention(input, weight, bias, input_scale, weight_scale, mask_index, input_zero_point,
    weight_zero_point, past)``: the packed projection as an integer product rescaled in float (per
    tensor or per column), then attention."""
    a = attrs_of(node)
    heads = _heads(node, a)
    _refuse_inputs(ctx, node, {8: "past"})
    _refuse_extra_outputs(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    acc = _int_product(ctx, x, w, *(ctx.input(node, i) if ctx.has(node, i) else None for i in (6, 7)))
    scale = ctx.emit("mul", [ctx.input(node, 3), ctx.input(node, 4)])
    qkv = ctx.emit("add", [ctx.emit("mul", [ctx.cast(acc, "float32"), scale]), ctx.input(node, 2)])
    q, k, v = _split_qkv(ctx, node, qkv, a)
    bias = _mask_index_bias(ctx, node, 5, x.type.shape[0], x.type.shape[1], a) if ctx.has(node, 5) else None
    return [_sdpa(ctx, node, q, k, v, heads, a, bias)]


@importer(f"{DOMAIN}::MultiHeadAttention")
def _multi_head_attention(ctx, node):
    """``MultiHeadAttention(query, key, value, bias, key_padding_mask, attention_bias)`` on separate
    (B, S, H·D) q/k/v; ``bias`` is the packed q/k/v projection bias."""
    a = attrs_of(node)
    heads = _heads(node, a)
    _refuse_inputs(ctx, node, {4: "key_padding_mask", 6: "past_key", 7: "past_value"})
    _refuse_extra_outputs(node)
    if not (ctx.has(node, 1) and ctx.has(node, 2)):
        unsupported(node, "packed q/k/v in the query input is not supported (key and value must be given)")
    q, k, v = (ctx.input(node, i) for i in range(3))
    if any(len(t.type.shape) != 3 for t in (q, k, v)):
        unsupported(node, "only (batch, sequence, hidden) query, key and value are supported")
    if ctx.has(node, 3):
        widths = [t.type.shape[-1] for t in (q, k, v)]
        bq, bk, bv = ctx.emit_n("split", [ctx.input(node, 3)], sizes=widths, axis=0)
        q, k, v = (ctx.emit("add", [t, b]) for t, b in ((q, bq), (k, bk), (v, bv)))
    return [_sdpa(ctx, node, q, k, v, heads, a, ctx.input(node, 5) if ctx.has(node, 5) else None)]


def _gelu(ctx, node, approximate: str):
    x = ctx.input(node, 0)
    if ctx.has(node, 1):
        x = ctx.emit("add", [x, ctx.input(node, 1)])
    return [ctx.emit("gelu", [x], approximate=approximate)]


@importer(f"{DOMAIN}::BiasGelu")
def _bias_gelu(ctx, node):
    """``BiasGelu(A, B)``: the exact (erf) GELU of ``A + B``."""
    return _gelu(ctx, node, "none")


@importer(f"{DOMAIN}::FastGelu")
def _fast_gelu(ctx, node):
    """``FastGelu(X[, bias])``: the tanh-approximated GELU of ``X (+ bias)``."""
    return _gelu(ctx, node, "tanh")


@importer(f"{DOMAIN}::Gelu")
def _ms_gelu(ctx, node):
    return [ctx.emit("gelu", [ctx.input(node, 0)], approximate="none")]


@importer(f"{DOMAIN}::SkipLayerNormalization")
def _skip_layer_norm(ctx, node):
    """``SkipLayerNormalization(input, skip, gamma, beta, bias)``: layer norm over the last axis of
    ``input + skip (+ bias)``; output 3 is that sum (mean and inverse std dev outputs are refused)."""
    a = attrs_of(node)
    if any(o for o in node.output[1:3]):
        unsupported(node, "its mean / inverse standard deviation outputs are not supported")
    s = ctx.emit("add", [ctx.input(node, 0), ctx.input(node, 1)])
    if ctx.has(node, 4):
        s = ctx.emit("add", [s, ctx.input(node, 4)])
    ins = [s, ctx.input(node, 2)] + ([ctx.input(node, 3)] if ctx.has(node, 3) else [])
    y = ctx.emit("layer_norm", ins, axis=-1, eps=float(a.get("epsilon", 1e-12)))
    return [y, None, None, s][:len(node.output)]


@importer(f"{DOMAIN}::FusedMatMul")
def _fused_matmul(ctx, node):
    """``FusedMatMul(A, B)``: ``alpha * op(A) @ op(B)``, op a transpose of the last two axes when
    ``transA`` / ``transB``; the batch-transposing variants are refused."""
    a = attrs_of(node)
    if int(a.get("transBatchA", 0)) or int(a.get("transBatchB", 0)):
        unsupported(node, "transBatchA / transBatchB are not supported")
    x, y = ctx.input(node, 0), ctx.input(node, 1)

    def t(v, flag):
        if not int(a.get(flag, 0)):
            return v
        rank = len(v.type.shape)
        if rank < 2:
            unsupported(node, f"{flag} on a rank-{rank} input")
        return ctx.emit("transpose", [v], perm=list(range(rank - 2)) + [rank - 1, rank - 2])

    out = ctx.emit("matmul", [t(x, "transA"), t(y, "transB")])
    alpha = float(a.get("alpha", 1.0))
    return [out if alpha == 1.0 else ctx.emit("mul", [out, ctx.scalar(alpha, out.type.dtype)])]


# ---- onnxruntime's integer-matmul fusions (what a session makes of a quantized file) ----------------

def _rescaled(ctx, acc, scale, bias):
    y = ctx.emit("mul", [ctx.cast(acc, "float32"), scale])
    return ctx.emit("add", [y, bias]) if bias is not None else y


def _optional(ctx, node, i):
    return ctx.input(node, i) if ctx.has(node, i) else None


def _single_zero_point(ctx, zp):
    """A per-column zero point whose values are all the same (symmetric weights: all 0) as one scalar;
    anything else unchanged."""
    if zp is None or not zp.type.shape:
        return zp
    array = _import_time_array(ctx, zp)
    if array is None or array.size == 0 or np.any(array != array.reshape(-1)[0]):
        return zp
    return ctx.scalar(array.reshape(-1)[0], zp.type.dtype)


def _int_product(ctx, a, b, a_zp, b_zp):
    b_zp = _single_zero_point(ctx, b_zp)
    if a_zp is None and b_zp is not None:
        a_zp = ctx.scalar(0, a.type.dtype)
    return ctx.emit("matmul_integer", [a, b] + [z for z in (a_zp, b_zp) if z is not None])


@importer(f"{DOMAIN}::DynamicQuantizeMatMul")
def _dynamic_quantize_matmul(ctx, node):
    """``DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias)``: A quantized per call (uint8,
    ``dynamic_quantize_linear``), the integer product rescaled by ``a_scale * b_scale`` (per tensor or
    per column), plus the bias."""
    aq, a_scale, a_zp = ctx.emit_n("dynamic_quantize_linear", [ctx.input(node, 0)])
    acc = _int_product(ctx, aq, ctx.input(node, 1), a_zp, _optional(ctx, node, 3))
    scale = ctx.emit("mul", [a_scale, ctx.input(node, 2)])
    return [_rescaled(ctx, acc, scale, _optional(ctx, node, 4))]


@importer(f"{DOMAIN}::MatMulIntegerToFloat")
def _matmul_integer_to_float(ctx, node):
    """``MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias)``."""
    acc = _int_product(ctx, ctx.input(node, 0), ctx.input(node, 1), _optional(ctx, node, 4), _optional(ctx, node, 5))
    scale = ctx.emit("mul", [ctx.input(node, 2), ctx.input(node, 3)])
    return [_rescaled(ctx, acc, scale, _optional(ctx, node, 6))]


@importer(f"{DOMAIN}::QGemm")
def _qgemm(ctx, node):
    """``QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp)`` with a float output (no
    ``y_scale``): ``alpha * (A - a_zp)(B - b_zp) * a_scale * b_scale + C``, C an int32 bias at scale
    ``a_scale * b_scale``; ``transA`` / ``transB`` transpose A / B. A quantized output is refused."""
    a = attrs_of(node)
    if ctx.has(node, 7):
        unsupported(node, "a quantized output (y_scale) is not supported")
    x, w = ctx.input(node, 0), ctx.input(node, 3)
    if int(a.get("transA", 0)):
        x = ctx.emit("transpose", [x], perm=[1, 0])
    if int(a.get("transB", 0)):
        w = ctx.emit("transpose", [w], perm=[1, 0])
    acc = _int_product(ctx, x, w, ctx.input(node, 2), ctx.input(node, 5))
    scale = ctx.emit("mul", [ctx.input(node, 1), ctx.input(node, 4)])
    alpha = float(a.get("alpha", 1.0))
    if alpha != 1.0:
        scale = ctx.emit("mul", [scale, ctx.scalar(alpha, "float32")])
    bias = _optional(ctx, node, 6)
    if bias is not None and bias.type.dtype == "int32":  # C at the product's scale: before the rescale
        acc, bias = ctx.emit("add", [acc, bias]), None
    return [_rescaled(ctx, acc, scale, bias)]
