"""Native ONNX ``LSTM`` / ``GRU`` / ``RNN`` for the scans of ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``.

The layers tag the ``scan`` of each layer and direction with ``recurrence="lstm"|"gru"|"rnn_tanh"|
"rnn_relu"`` (``graphforge/nn/recurrent.py``): its body is that layer's step, its interface is
``consts = (W_hh, b_hh?)``, ``carry = (h, c)`` or ``(h,)``, ``xs = (x @ W_ih^T + b_ih, mask?)`` and
``ys = (h,)``. :func:`lower_native` turns such a scan into one ONNX recurrent node: it reads past the
scan's operands to the ``linear`` that projects the layer input (the exporter then drops that
projection, the recurrent op computes it), re-packs the weights into ONNX's gate order (LSTM
``i, o, f, c`` from PyTorch's ``i, f, g, o``; GRU ``z, r, h`` from ``r, z, n``, with
``linear_before_reset=1`` — PyTorch's GRU), stores them as initializers (a ``Gather`` over the rows
when the weight is a run-time input), sets ``direction="reverse"`` for a reverse scan and feeds the
``lengths`` of the padding path as ``sequence_lens`` (ONNX's semantics are the layer's: padded
outputs are zero, the final state is the last real step's, the reverse direction starts there).

Whether the native node is emitted is the exporter's ``native_ops`` rule (``LSTM``/``GRU``/``RNN``
are in ``kernels.COMPOSITE_OPS``: ``native_ops=False`` keeps the ``Scan``, ``True`` or a set naming
the op forces the native node) and, by default, :func:`prefer_native`, the per-case choice measured by
``benchmarks/bench_lstm.py`` (part ``onnx``). Anything that does not fit the interface above (a
graph rewritten by passes, float64, a dynamic hidden size) returns None: the caller lowers the
``Scan``."""
from __future__ import annotations

import numpy as np

__all__ = ["GATE_ORDER", "ONNX_OPS", "prefer_native", "lower_native"]

ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}
GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
"""PyTorch gate block -> ONNX gate block: ONNX's k-th block is PyTorch's ``GATE_ORDER[mode][k]``."""


def prefer_native(mode: str, seq, batch, hidden: int) -> bool:
    """The default choice between the native op and the ``Scan`` for one layer and direction.

    From ``bench_lstm.py --part onnx_cases`` (onnxruntime on CPU, one layer, input 64; a loaded
    2-core VM, see docs/benchmarks.md): the native ``LSTM`` won every case (1.6-3x); the native
    ``GRU`` won at batch 1 and 8 (1.3-4.7x) but lost at batch 32 (0.6-0.7x); the native ``RNN``
    (no optimised kernel) won only at batch 1 (1.4x) and lost 2-3x from batch 8. So: LSTM always;
    GRU for a static batch <= 8, RNN for a static batch of 1; a symbolic batch takes the ``Scan``
    for GRU and RNN (their batch-32 result). ``native_ops`` overrides this."""
    del seq, hidden
    if mode == "lstm":
        return True
    if not isinstance(batch, int):
        return False
    return batch <= (8 if mode == "gru" else 1)


def _strip(value, ops=("unsqueeze", "cast", "reshape", "squeeze")):
    while value.producer is not None and value.producer.op in ops:
        value = value.producer.inputs[0]
    return value


def _lengths(mask):
    """The (batch,) integer ``lengths`` a padding mask ``arange(seq)[:, None, None] < lengths[None, :, None]``
    was built from, or None for any other mask."""
    node = mask.producer
    if node is None or node.op != "less" or len(node.inputs) != 2:
        return None
    steps, lengths = _strip(node.inputs[0]), _strip(node.inputs[1])
    if steps.producer is None or steps.producer.op != "arange":
        return None
    t = lengths.type
    if len(t.shape) != 1 or not t.dtype.startswith(("int", "uint")):
        return None
    return lengths


def _is_zero(value) -> bool:
    """``value`` is all zeros by construction (``gf.zeros``: a constant, or a broadcast one)."""
    if value.producer is not None and value.producer.op == "broadcast_to":
        value = value.producer.inputs[0]
    node = value.producer
    if node is None or node.op != "constant":
        return False
    array = node.attrs.get("value")
    return array is not None and not np.any(np.asarray(array))


def _packed(ctx, name: str, order, rows: int) -> str:
    """``name`` (G·H, K) or (G·H,) with its gate blocks in ONNX order and a leading direction axis."""
    blocks = np.concatenate([np.arange(g * rows, (g + 1) * rows) for g in order])
    stored = ctx.stored_params.get(name)
    if stored is not None:
        array, dtype = stored
        ctx.relaid_params.add(name)
        return ctx.const(np.ascontiguousarray(np.asarray(array)[blocks])[None], dtype)
    gathered = ctx.op("Gather", [name, ctx.const(blocks.astype(np.int64))], axis=0)
    return ctx.op("Unsqueeze", [gathered, ctx.ints([0])])


def _bias(ctx, b_ih, b_hh, order, hidden: int, dtype: str):
    """ONNX's B (1, 2·G·H) = [Wb, Rb] in ONNX gate order; "" when the layer has no biases."""
    if b_ih is None and b_hh is None:
        return ""
    g = len(order)
    blocks = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in order])
    stored = [ctx.stored_params.get(b) if b is not None else (np.zeros(g * hidden, np.float32), dtype)
              for b in (b_ih, b_hh)]
    if all(e is not None for e in stored):  # both known at export time: one initializer, no Concat
        ctx.relaid_params.update(b for b in (b_ih, b_hh) if b is not None)
        return ctx.const(np.concatenate([np.asarray(e[0])[blocks] for e in stored])[None], dtype)
    parts = []
    for b in (b_ih, b_hh):
        if b is None:
            parts.append(ctx.const(np.zeros((1, g * hidden), dtype=np.float32), dtype))
        else:
            parts.append(_packed(ctx, b, order, hidden))
    return ctx.op("Concat", parts, axis=1)


def lower_native(ctx, args, attrs):
    """The ONNX names of the tagged scan's results ``[h, (c,) ys]`` computed by one native recurrent
    node, or None when this scan is not exported natively (see the module docstring)."""
    mode = attrs.get("recurrence") or ""
    op_type = ONNX_OPS.get(mode)
    if op_type is None or not ctx.native(op_type):
        return None
    node = ctx.node
    nc, nk = int(attrs.get("num_consts", 0)), int(attrs.get("num_carry", 0))
    want_k = 2 if mode == "lstm" else 1
    consts, init, xs = node.inputs[:nc], node.inputs[nc:nc + nk], node.inputs[nc + nk:]
    if nk != want_k or nc not in (1, 2) or len(xs) not in (1, 2) or len(node.outputs) != nk + 1:
        return None
    g = len(GATE_ORDER[mode])
    h_type = init[0].type
    if h_type.dtype != "float32" or len(h_type.shape) != 2 or not isinstance(h_type.shape[1], int):
        return None
    hidden = h_type.shape[1]
    w_hh = consts[0]
    if tuple(w_hh.type.shape) != (g * hidden, hidden) or (nc == 2 and tuple(consts[1].type.shape) != (g * hidden,)):
        return None
    proj = xs[0].producer
    if (proj is None or proj.op != "linear" or not proj.attrs.get("transpose_b", True)
            or proj.attrs.get("activation", "none") not in ("none", None) or len(proj.inputs) not in (2, 3)):
        return None
    x, w_ih = proj.inputs[0], proj.inputs[1]
    if len(x.type.shape) != 3 or x.type.dtype != "float32" or len(w_ih.type.shape) != 2 \
            or w_ih.type.shape[0] != g * hidden:
        return None
    seq_lens = ""
    if len(xs) == 2:
        lengths = _lengths(xs[1])
        if lengths is None:
            return None
        xs_lens = [lengths]
    else:
        xs_lens = []
    seq, batch = x.type.shape[0], x.type.shape[1]
    if ctx.native_ops is None and not prefer_native(mode, seq, batch, hidden):
        return None
    name_of = ctx.driver.name_of
    names = [name_of(v) for v in [x, w_ih, w_hh] + list(proj.inputs[2:]) + list(consts[1:]) + xs_lens]
    if any(n is None for n in names):
        return None
    x_n, w_ih_n, w_hh_n = names[:3]
    rest = names[3:]
    b_ih_n = rest.pop(0) if len(proj.inputs) == 3 else None
    b_hh_n = rest.pop(0) if nc == 2 else None
    if xs_lens:
        len_n = rest.pop(0)
        seq_lens = len_n if xs_lens[0].type.dtype == "int32" else ctx.op("Cast", [len_n], to=6)  # INT32
    order = GATE_ORDER[mode]
    w = _packed(ctx, w_ih_n, order, hidden)
    r = _packed(ctx, w_hh_n, order, hidden)
    b = _bias(ctx, b_ih_n, b_hh_n, order, hidden, "float32")
    # zero initial states are ONNX's default: leave the inputs empty (no Expand/Unsqueeze per call)
    states = ["" if _is_zero(v) else ctx.op("Unsqueeze", [a, ctx.ints([0])])
              for v, a in zip(init, args[nc:nc + nk])]

    direction = "reverse" if attrs.get("reverse", False) else "forward"
    extra = {}
    if mode == "gru":
        extra["linear_before_reset"] = 1
    elif mode != "lstm":
        extra["activations"] = ["Tanh" if mode == "rnn_tanh" else "Relu"]
    inputs = [x_n, w, r, b, seq_lens] + states
    while not inputs[-1]:  # trailing optional inputs left out
        inputs.pop()
    outs = ctx.op(op_type, inputs, outputs=1 + nk, hidden_size=hidden,
                  direction=direction, **extra)
    y, finals = outs[0], outs[1:]
    ys = ctx.op("Squeeze", [y, ctx.ints([1])])
    return [ctx.op("Squeeze", [f, ctx.ints([0])]) for f in finals] + [ys]
