"""Native ONNX ``LSTM`` / ``GRU`` / ``RNN`` for the scans of ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``.

The layers tag the ``scan`` of each layer and direction with ``recurrence="lstm"|"gru"|"rnn_tanh"|
"rnn_relu"`` (``graphforge/nn/recurrent.py``): its body is that layer's step, its interface is
``consts = (W_hh, b_hh?)``, ``carry = (h, c)`` or ``(h,)``, ``xs = (x @ W_ih^T + b_ih, mask?)`` and
``ys = (h,)``. :func:`lower_native` turns such a scan into one ONNX recurrent node: it reads past the
scan's operands to the ``linear`` that projects the layer input (the exporter then drops that
projection, the recurrent op computes it), re-packs the weights into ONNX's gate order (LSTM
``i, o, f, c`` from PyTorch's ``i, f, g, o``; GRU ``z, r, h`` from ``r, z, n``, with
``linear_before_reset=1`` — PyTorch's GRU), stores them as initializers (a ``Gather`` over the rows
when the weight is a run-time input), sets ``direction="reverse"`` for a reverse scan (the two
directions of a bidirectional layer become one ``direction="bidirectional"`` node when the reverse
scan's inputs are known by then) and feeds the ``lengths`` of the padding path as ``sequence_lens``
(ONNX's semantics are the layer's: padded outputs are zero, the final state is the last real
step's, the reverse direction starts there).

Whether the native node is emitted is the exporter's ``native_ops`` rule (``LSTM``/``GRU``/``RNN``
are in ``kernels.COMPOSITE_OPS``: ``native_ops=False`` keeps the ``Scan``, ``True`` or a set naming
the op forces the native node) and, by default, :func:`prefer_native`, the per-case choice measured by
``benchmarks/bench_lstm.py`` (part ``onnx``). Anything that does not fit the interface above (a
graph rewritten by passes, float64, a dynamic hidden size) returns None: the caller lowers the
``Scan``."""
from __future__ import annotations

import numpy as np

__all__ = ["GATE_ORDER", "ONNX_OPS", "prefer_native", "lower_native"]

ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm_onnx": "LSTM",
            "gru_onnx": "GRU"}
# (``*_onnx``: scans imported from ONNX's own ops keep ONNX's gate order, runtimes/onnx_import/recurrent.py)
GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,), "lstm_onnx": (0, 1, 2, 3),
              "gru_onnx": (0, 1, 2)}
"""PyTorch gate block -> ONNX gate block: ONNX's k-th block is PyTorch's ``GATE_ORDER[mode][k]``."""


def prefer_native(mode: str, seq, batch, hidden: int) -> bool:
    """The default choice between the native op and the ``Scan`` for one layer and direction.

    From ``bench_lstm.py --part onnx_cases`` (onnxruntime on CPU, one layer, input 64, batch 1-32;
    three runs on a loaded 2-core VM, docs/sequence_models.md): the native ``LSTM`` won every case
    (1.15-26x); ``GRU`` and ``RNN`` were about a tie (0.6-1.3x, outliers both ways), the native
    ``GRU`` ahead more often at batch <= 8, the ``RNN``'s ``Scan`` ahead at batch 32. So: LSTM
    always; GRU for a static batch <= 8, RNN for a static batch of 1; a symbolic batch takes the
    ``Scan`` for GRU and RNN. ``native_ops`` overrides this."""
    del seq, hidden
    if mode.startswith("lstm"):
        return True
    if not isinstance(batch, int):
        return False
    return batch <= (8 if mode.startswith("gru") else 1)


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


def _packed(ctx, names, order, rows: int) -> str:
    """The weights ``names`` (one per direction; each (G·H, K) or (G·H,)) with their gate blocks in
    ONNX order, stacked on a leading direction axis: one initializer when all are stored
    parameters, else ``Gather`` + ``Unsqueeze`` (+ ``Concat``) at run time."""
    blocks = np.concatenate([np.arange(g * rows, (g + 1) * rows) for g in order])
    stored = [ctx.stored_params.get(n) for n in names]
    if all(e is not None for e in stored):
        ctx.relaid_params.update(names)
        return ctx.const(np.stack([np.asarray(e[0])[blocks] for e in stored]), stored[0][1])
    parts = [ctx.op("Unsqueeze", [ctx.op("Gather", [n, ctx.const(blocks.astype(np.int64))], axis=0), ctx.ints([0])])
             for n in names]
    return parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=0)


def _bias(ctx, pairs, order, hidden: int, dtype: str):
    """ONNX's B (dirs, 2·G·H) = [Wb, Rb] per direction in ONNX gate order; "" without biases."""
    if all(b_ih is None and b_hh is None for b_ih, b_hh in pairs):
        return ""
    g = len(order)
    blocks = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in order])
    zero = (np.zeros(g * hidden, np.float32), dtype)
    flat = [b for pair in pairs for b in pair]
    stored = [zero if b is None else ctx.stored_params.get(b) for b in flat]
    if all(e is not None for e in stored):  # known at export time: one initializer, no Concat
        ctx.relaid_params.update(b for b in flat if b is not None)
        rows = [np.concatenate([np.asarray(stored[2 * d + k][0])[blocks] for k in (0, 1)]) for d in range(len(pairs))]
        return ctx.const(np.stack(rows), dtype)
    parts = []
    for b_ih, b_hh in pairs:
        halves = [ctx.const(np.zeros((1, g * hidden), np.float32), dtype) if b is None else _packed(ctx, [b], order, hidden)
                  for b in (b_ih, b_hh)]
        parts.append(ctx.op("Concat", halves, axis=1))
    return parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=0)


def _analyse(ctx, node):
    """The pieces of one tagged scan the native op needs (a dict of Values and ONNX names), or None
    when its interface is not the tagged layer's or a name is not known yet."""
    attrs = node.attrs
    mode = attrs.get("recurrence") or ""
    nc, nk = int(attrs.get("num_consts", 0)), int(attrs.get("num_carry", 0))
    consts, init, xs = node.inputs[:nc], node.inputs[nc:nc + nk], node.inputs[nc + nk:]
    if nk != (2 if ONNX_OPS[mode] == "LSTM" else 1) or nc not in (1, 2) or len(xs) not in (1, 2) \
            or len(node.outputs) != nk + 1:
        return None
    g = len(GATE_ORDER[mode])
    h_type = init[0].type
    if h_type.dtype != "float32" or len(h_type.shape) != 2 or not isinstance(h_type.shape[1], int):
        return None
    hidden = h_type.shape[1]
    if tuple(consts[0].type.shape) != (g * hidden, hidden) or (nc == 2 and tuple(consts[1].type.shape) != (g * hidden,)):
        return None
    proj = xs[0].producer
    if (proj is None or proj.op != "linear" or not proj.attrs.get("transpose_b", True)
            or proj.attrs.get("activation", "none") not in ("none", None) or len(proj.inputs) not in (2, 3)):
        return None
    x, w_ih = proj.inputs[0], proj.inputs[1]
    if len(x.type.shape) != 3 or x.type.dtype != "float32" or len(w_ih.type.shape) != 2 \
            or w_ih.type.shape[0] != g * hidden:
        return None
    lengths = None
    if len(xs) == 2:
        lengths = _lengths(xs[1])
        if lengths is None:
            return None
    name_of = ctx.driver.name_of
    b_ih = proj.inputs[2] if len(proj.inputs) == 3 else None
    b_hh = consts[1] if nc == 2 else None
    values = {"x": x, "w_ih": w_ih, "w_hh": consts[0], "b_ih": b_ih, "b_hh": b_hh, "lengths": lengths}
    names = {k: (None if v is None else name_of(v)) for k, v in values.items()}
    if any(names[k] is None for k, v in values.items() if v is not None):
        return None
    states = []
    for v in init:
        n = "" if _is_zero(v) else name_of(v)
        if n is None:
            return None
        states.append(n)
    return {"mode": mode, "hidden": hidden, "values": values, "names": names, "states": states,
            "reverse": bool(attrs.get("reverse", False)), "nk": nk}


def _sibling(ctx, node, mine):
    """The reverse-direction scan of the same bidirectional layer (same mode, input, lengths and
    size, later in the block), analysed, or None."""
    n = node.next
    while n is not None:
        if n.op == "scan" and n.attrs.get("recurrence") == mine["mode"] and n.attrs.get("reverse", False):
            other = _analyse(ctx, n)
            if other is not None and other["hidden"] == mine["hidden"] \
                    and other["values"]["x"] is mine["values"]["x"] \
                    and other["values"]["lengths"] is mine["values"]["lengths"] \
                    and (other["values"]["b_ih"] is None) == (mine["values"]["b_ih"] is None) \
                    and (other["values"]["b_hh"] is None) == (mine["values"]["b_hh"] is None):
                return n, other
            return None
        n = n.next
    return None


def lower_native(ctx, args, attrs):
    """The ONNX names of the tagged scan's results ``[h, (c,) ys]`` computed by a native recurrent
    node, or None when this scan is not exported natively (see the module docstring). The forward
    scan of a bidirectional layer emits one ``direction="bidirectional"`` node for both
    directions when its reverse sibling's inputs are known; the sibling then takes its half."""
    del args
    node = ctx.node
    pending = ctx.__dict__.setdefault("recurrent_pending", {})
    if id(node) in pending:
        return pending.pop(id(node))
    mode = attrs.get("recurrence") or ""
    op_type = ONNX_OPS.get(mode)
    if op_type is None or not ctx.native(op_type):
        return None
    mine = _analyse(ctx, node)
    if mine is None:
        return None
    x = mine["values"]["x"]
    if ctx.native_ops is None and not prefer_native(mode, x.type.shape[0], x.type.shape[1], mine["hidden"]):
        return None
    parts = [mine]
    sibling = None if mine["reverse"] else _sibling(ctx, node, mine)
    if sibling is not None:
        parts.append(sibling[1])
    hidden, nk, order = mine["hidden"], mine["nk"], GATE_ORDER[mode]
    names = [p["names"] for p in parts]
    w = _packed(ctx, [n["w_ih"] for n in names], order, hidden)
    r = _packed(ctx, [n["w_hh"] for n in names], order, hidden)
    b = _bias(ctx, [(n["b_ih"], n["b_hh"]) for n in names], order, hidden, "float32")
    seq_lens = names[0]["lengths"] or ""
    if seq_lens and mine["values"]["lengths"].type.dtype != "int32":
        seq_lens = ctx.op("Cast", [seq_lens], to=6)  # INT32: ONNX's sequence_lens type
    states = []
    for k in range(nk):  # zero initial states are ONNX's default: left out
        got = [p["states"][k] for p in parts]
        if not any(got):
            states.append("")
            continue
        if not all(got):  # one direction starts from zeros, the other not: spell the zeros out
            like = next(n for n in got if n)
            got = [n or ctx.op("Mul", [like, ctx.const(np.zeros((), np.float32))]) for n in got]
        ups = [ctx.op("Unsqueeze", [n, ctx.ints([0])]) for n in got]
        states.append(ups[0] if len(ups) == 1 else ctx.op("Concat", ups, axis=0))
    direction = "bidirectional" if len(parts) == 2 else ("reverse" if mine["reverse"] else "forward")
    extra = {}
    if ONNX_OPS[mode] == "GRU":
        extra["linear_before_reset"] = 1
    elif ONNX_OPS[mode] == "RNN":
        extra["activations"] = ["Tanh" if mode == "rnn_tanh" else "Relu"] * len(parts)
    inputs = [names[0]["x"], w, r, b, seq_lens] + states
    while not inputs[-1]:  # trailing optional inputs left out
        inputs.pop()
    outs = ctx.op(op_type, inputs, outputs=1 + nk, hidden_size=hidden, direction=direction, **extra)
    y, finals = outs[0], outs[1:]
    if len(parts) == 1:
        return [ctx.op("Squeeze", [f, ctx.ints([0])]) for f in finals] + [ctx.op("Squeeze", [y, ctx.ints([1])])]
    # Y (seq, 2, batch, H), Y_h/Y_c (2, batch, H): direction 0 for this scan, 1 for its sibling
    halves = []
    for d in range(2):  # a Gather at a scalar index drops the direction axis
        at = ctx.const(np.array(d, np.int64))
        halves.append([ctx.op("Gather", [f, at], axis=0) for f in finals] + [ctx.op("Gather", [y, at], axis=1)])
    pending[id(sibling[0])] = halves[1]
    return halves[0]
