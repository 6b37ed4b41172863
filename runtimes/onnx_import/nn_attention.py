"""Importer for the ONNX ``Attention`` op (opset 23+), composed of matmul/softmax/where, following onnx's
reference semantics: 3-D or 4-D inputs, KV cache (past/present), grouped-query heads, boolean or additive
masks (padded to the total KV length), top-left/bottom-right causal frontier, softcap, sliding windows,
``nonpad_kv_seqlen``, ``qk_matmul_output_mode`` 0–3 and ``softmax_precision``. Fully masked rows give 0.
Plain attention (none of those extras) becomes the registry's ``attention`` op."""
from __future__ import annotations

import numpy as np


from .importer import attrs_of, ImportContext, importer, onnx_dtype, unsupported

__all__: list[str] = []



def _heads(ctx, x, n):
    b, s, hidden = x.type.shape
    y = ctx.emit("reshape", [x], shape=[b, s, n, hidden // n])
    return ctx.emit("transpose", [y], perm=[0, 2, 1, 3])


def _plain(ctx, node, a, q, k) -> bool:
    """True when the node is plain scaled-dot-product attention: the registry's ``attention`` op.

    That is: no mask / KV cache / padding lengths, as many kv heads as query heads, no softcap,
    window, extra outputs or softmax precision. (Its causal mask is top-left aligned, as ONNX's
    without a cache.)"""
    extra_in = any(ctx.has(node, i) for i in range(3, 7))
    extra_out = any(o for o in node.output[1:])
    fancy = (float(a.get("softcap", 0.0) or 0.0) != 0.0 or int(a.get("qk_matmul_output_mode", 0)) != 0
             or int(a.get("left_window_size", -1)) >= 0 or int(a.get("right_window_size", -1)) >= 0
             or a.get("softmax_precision") is not None)
    # float16 stays composed: the JAX lowering of `attention` asks XLA:CPU for an F16 dot_general with
    # F32 accumulation, which it rejects (reported to the JAX back end's owner)
    return (q.type.dtype != "float16" and not extra_in and not extra_out and not fancy
            and q.type.shape[1] == k.type.shape[1])


@importer("Attention")
def _attention(ctx: ImportContext, node):
    a = attrs_of(node)
    e = ctx.emit
    q, k, v = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    dt = q.type.dtype
    rank = len(q.type.shape)
    if rank == 3:
        q = _heads(ctx, q, int(a["q_num_heads"]))
        k = _heads(ctx, k, int(a["kv_num_heads"]))
        v = _heads(ctx, v, int(a["kv_num_heads"]))
    if _plain(ctx, node, a, q, k):
        scale = a.get("scale")
        y = e("attention", [q, k, v], scale=None if scale is None else float(scale),
              causal=bool(int(a.get("is_causal", 0))))
        if rank == 3:
            b, h, s, d = y.type.shape
            y = e("reshape", [e("transpose", [y], perm=[0, 2, 1, 3])], shape=[b, s, h * d])
        return [y]
    past_k = ctx.input(node, 4) if ctx.has(node, 4) else None
    past_v = ctx.input(node, 5) if ctx.has(node, 5) else None
    nonpad = ctx.need_const(node, 6, "nonpad_kv_seqlen").reshape(-1) if ctx.has(node, 6) else None
    if past_k is not None:
        k = e("concat", [past_k, k], axis=2)
        v = e("concat", [past_v, v], axis=2)
    present_k, present_v = k, v
    sq, skv = q.type.shape[2], k.type.shape[2]
    batch = q.type.shape[0]
    if not isinstance(sq, int) or not isinstance(skv, int):
        unsupported(node, "symbolic sequence lengths")
    scale = a.get("scale")
    scale = 1.0 / np.sqrt(q.type.shape[3]) if scale is None else float(scale)
    root = np.sqrt(scale)
    npdt = np.dtype(dt) if dt != "bfloat16" else np.dtype(np.float32)
    ninf = -np.inf

    # ---- the additive bias: mask (run time) + causal / window / padding (static) -----------------
    mask = None
    if ctx.has(node, 3):
        mask = ctx.input(node, 3)
        if mask.type.dtype == "bool":
            mask = e("where", [mask, ctx.scalar(0, dt), ctx.scalar(ninf, dt)])
        pad_w = skv - mask.type.shape[-1]
        if pad_w > 0:
            mrank = len(mask.type.shape)
            mask = e("pad", [mask], pads=[0] * (2 * mrank - 1) + [pad_w], value=ninf)
    ctx.require((4, sq, skv), np.dtype(npdt).itemsize, "the static attention bias")
    static = np.zeros((sq, skv), npdt)
    i_idx, j_idx = np.arange(sq)[:, None], np.arange(skv)[None, :]
    if nonpad is not None and past_k is None:
        offset = (nonpad - sq).reshape(-1, 1, 1, 1)
    else:
        offset = past_k.type.shape[2] if past_k is not None else 0
    if int(a.get("is_causal", 0)):
        static = static + np.where(j_idx <= i_idx + offset, 0, ninf).astype(npdt)
    left, right = int(a.get("left_window_size", -1)), int(a.get("right_window_size", -1))
    if left >= 0 or right >= 0:
        diff = (i_idx + offset) - j_idx
        allowed = np.ones(np.shape(diff), bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        static = static + np.where(allowed, 0, ninf).astype(npdt)
    if nonpad is not None:
        if not isinstance(batch, int):
            unsupported(node, "nonpad_kv_seqlen with a symbolic batch")
        pm = (np.arange(skv)[None, :] < nonpad[:, None]).reshape(-1, 1, 1, skv)
        static = static + np.where(pm, 0, ninf).astype(npdt)
    static = static.astype(npdt)
    has_static = bool(np.any(static != 0))
    bias = None
    if mask is not None:
        bias = mask
        if has_static:
            bias = e("add", [bias, ctx.cast(ctx.materialize(static, "attention_bias"), dt)])
    elif has_static:
        bias = ctx.cast(ctx.materialize(static, "attention_bias"), dt)

    # ---- grouped-query heads --------------------------------------------------------------------
    qh, kh = q.type.shape[1], k.type.shape[1]
    if qh != kh:
        if qh % kh:
            unsupported(node, f"{qh} query heads are not a multiple of {kh} kv heads")
        reps = qh // kh

        def rep(t):
            b, h, s, d = t.type.shape
            t = e("broadcast_to", [e("unsqueeze", [t], axes=[2])], shape=[b, h, reps, s, d])
            return e("reshape", [t], shape=[b, h * reps, s, d])
        k, v = rep(k), rep(v)

    r = ctx.scalar(root, dt)
    kt = e("transpose", [k], perm=[0, 1, 3, 2])
    qk = e("matmul", [e("mul", [q, r]), e("mul", [kt, r])])
    softcap = a.get("softcap")
    if softcap is not None and float(softcap) > 0:
        c = ctx.scalar(float(softcap), dt)
        qk = e("mul", [e("tanh", [e("div", [qk, c])]), c])
    scores = e("add", [qk, bias]) if bias is not None else qk
    mode = int(a.get("qk_matmul_output_mode", 0))
    qk_out = scores if mode == 2 else qk
    sp = a.get("softmax_precision")
    s_in = ctx.cast(scores, onnx_dtype(int(sp))) if sp is not None else scores
    probs = e("softmax", [s_in], axis=-1)
    if bias is not None:  # rows whose bias is all -inf give 0, not NaN
        if bias is mask or mask is not None:
            row_masked = e("equal", [e("max", [bias], axes=[-1], keepdims=True), ctx.scalar(ninf, dt)])
            probs = e("where", [row_masked, ctx.scalar(0, probs.type.dtype), probs])
        else:
            rm = np.isneginf(np.max(static, axis=-1, keepdims=True))
            if rm.any():
                probs = e("where", [ctx.materialize(rm, "attention_row_masked"), ctx.scalar(0, probs.type.dtype), probs])
    if mode == 3:
        qk_out = probs
    probs = ctx.cast(probs, dt)
    qk_out = ctx.cast(qk_out, dt)
    y = e("matmul", [probs, v])
    if rank == 3:
        b, h, s, d = y.type.shape
        y = e("reshape", [e("transpose", [y], perm=[0, 2, 1, 3])], shape=[b, s, h * d])
    return [y, present_k, present_v, qk_out]


@importer("RotaryEmbedding")
def _rotary_embedding(ctx, node):
    """ONNX RotaryEmbedding (opset 23) onto ``rotary_embedding`` (graphforge/ops/rotary.py)."""
    a = attrs_of(node)
    ins = [ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)]
    if ctx.has(node, 3):
        ins.append(ctx.cast(ctx.input(node, 3), "int64"))
    return [ctx.emit("rotary_embedding", ins, interleaved=bool(a.get("interleaved", 0)),
                     rotary_embedding_dim=int(a.get("rotary_embedding_dim", 0)), num_heads=int(a.get("num_heads", 0)))]
