"""Importers of ONNX's recurrent ops ``LSTM``, ``GRU`` and ``RNN`` into a ``gf.scan`` per direction.

Everything ONNX's operator defines is read: ``direction`` (forward / reverse / bidirectional),
``layout`` (0: time-major, 1: batch-major), ``sequence_lens`` (padding: past a sequence's length its
state is held and its outputs are 0; the reverse direction starts at the last real step), initial
states, peepholes ``P`` (LSTM), ``clip`` (gate pre-activations clipped to [-clip, clip]),
``activations`` with ``activation_alpha``/``activation_beta``, ``input_forget`` (LSTM) and
``linear_before_reset`` (GRU). Gate orders are ONNX's: LSTM ``i, o, f, c``, GRU ``z, r, h``.
The input projection of every step is one matmul over the sequence before the loop, like
``nn.LSTM``'s."""
from __future__ import annotations

from graphforge import ops
from graphforge.trace.tensor import Tensor

from .importer import attrs_of, importer, unsupported

__all__ = ["ACTIVATIONS"]


def _act(name: str, alpha, beta):
    """ONNX's recurrent activation ``name`` as a function of a Tensor (alpha/beta per ONNX's table)."""
    n = name.lower()
    if n == "sigmoid":
        return ops.sigmoid
    if n == "tanh":
        return ops.tanh
    if n == "relu":
        return ops.relu
    if n == "leakyrelu":
        a = 0.01 if alpha is None else alpha
        return lambda x: ops.where(x >= 0, x, x * a)
    if n == "thresholdedrelu":
        a = 1.0 if alpha is None else alpha
        return lambda x: ops.where(x > a, x, x * 0.0)
    if n == "scaledtanh":
        a, b = (1.0 if alpha is None else alpha), (1.0 if beta is None else beta)
        return lambda x: ops.tanh(x * b) * a
    if n == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda x: ops.clip(x * a + b, 0.0, 1.0)
    if n == "elu":
        a = 1.0 if alpha is None else alpha
        return lambda x: ops.where(x >= 0, x, (ops.exp(ops.minimum(x, 0.0)) - 1.0) * a)
    if n == "softsign":
        return lambda x: x / (ops.abs(x) + 1.0)
    if n == "softplus":
        return ops.softplus
    if n == "affine":
        a, b = (1.0 if alpha is None else alpha), (0.0 if beta is None else beta)
        return lambda x: x * a + b
    return None


ACTIVATIONS = ("Sigmoid", "Tanh", "Relu", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
               "Softsign", "Softplus", "Affine")
_DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def _cell(op: str, acts, clip, lbr: bool, input_forget: bool):
    """``step(xw_t, state, r, rb, p) -> new state`` for one direction (ONNX's equations)."""
    def c(x):
        return x if clip is None else ops.clip(x, -clip, clip)

    if op == "LSTM":
        f, g, h = acts

        def step(xw, state, r, rb, p):
            hp, cp = state
            gates = xw + ops.linear(hp, r, rb)
            i, o, fg, cc = ops.split(gates, 4, -1)
            if p is not None:
                pi, po, pf = p
                i, fg = i + pi * cp, fg + pf * cp
            it = f(c(i))
            ft = (1.0 - it) if input_forget else f(c(fg))
            ct = ft * cp + it * g(c(cc))
            if p is not None:
                o = o + po * ct
            return f(c(o)) * h(ct), ct
        return step
    if op == "GRU":
        f, g = acts

        def step(xw, hp, r, rb, p):
            xz, xr, xh = ops.split(xw, 3, -1)
            rz, rr, rh = ops.split(r, 3, 0)
            bz, br, bh = (None, None, None) if rb is None else ops.split(rb, 3, 0)
            z = f(c(xz + ops.linear(hp, rz, bz)))
            rt = f(c(xr + ops.linear(hp, rr, br)))
            if lbr:
                ht = g(c(xh + rt * ops.linear(hp, rh, bh)))
            else:
                ht = g(c(xh + ops.linear(rt * hp, rh, bh)))
            return ht + z * (hp - ht)
        return step
    (f,) = acts

    def step(xw, hp, r, rb, p):
        return f(c(xw + ops.linear(hp, r, rb)))
    return step


def _native_tag(op: str, acts, clip, lbr: bool, input_forget: bool, peep, alphas, betas) -> str:
    """The scan's ``recurrence`` tag when this direction is ONNX's op with nothing but its defaults
    that matter (activations, no clip, no peepholes, no coupled gates; GRU with
    ``linear_before_reset``), in ONNX's gate order; "" otherwise."""
    if clip is not None or input_forget or peep is not None or alphas or betas:
        return ""
    acts = [a.lower() for a in acts]
    if op == "LSTM" and acts == ["sigmoid", "tanh", "tanh"]:
        return "lstm_onnx"
    if op == "GRU" and lbr and acts == ["sigmoid", "tanh"]:
        return "gru_onnx"
    if op == "RNN" and acts in (["tanh"], ["relu"]):
        return f"rnn_{acts[0]}"
    return ""


@importer("LSTM", "GRU", "RNN")
def _recurrent(ctx, node):
    from graphforge.ops.control_flow import scan

    op = node.op_type
    a = attrs_of(node)
    hidden = int(a["hidden_size"]) if "hidden_size" in a else None
    direction = _str(a.get("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        unsupported(node, f"direction {direction!r}")
    layout = int(a.get("layout", 0))
    clip = float(a["clip"]) if a.get("clip") is not None else None
    names = [_str(s) for s in a.get("activations", [])] or None
    num_dirs = 2 if direction == "bidirectional" else 1
    per_dir = len(_DEFAULTS[op])
    names = names or _DEFAULTS[op] * num_dirs
    if len(names) == per_dir and num_dirs == 2:
        names = names * 2
    alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
    acts = []
    for k, n in enumerate(names):
        fn = _act(n, alphas[k] if k < len(alphas) else None, betas[k] if k < len(betas) else None)
        if fn is None:
            unsupported(node, f"activation {n!r} (supported: {', '.join(ACTIVATIONS)})")
        acts.append(fn)
    lbr = bool(a.get("linear_before_reset", 0))
    input_forget = bool(a.get("input_forget", 0))

    b = ctx.builder
    with b.activate(), b.provenance(ctx.node_name, ""):
        T = lambda v: Tensor(v, b)  # noqa: E731
        x = T(ctx.input(node, 0))
        w, r = T(ctx.input(node, 1)), T(ctx.input(node, 2))
        hidden = hidden or r.shape[-1]
        if layout == 1:
            x = ops.transpose(x, [1, 0, 2])                              # time-major inside
        seq, batch, dt = x.shape[0], x.shape[1], x.dtype
        bias = T(ctx.input(node, 3)) if ctx.has(node, 3) else None
        lens = T(ctx.input(node, 4)) if ctx.has(node, 4) else None
        h0 = T(ctx.input(node, 5)) if ctx.has(node, 5) else None
        c0 = T(ctx.input(node, 6)) if op == "LSTM" and ctx.has(node, 6) else None
        peep = T(ctx.input(node, 7)) if op == "LSTM" and ctx.has(node, 7) else None
        if layout == 1:
            h0 = None if h0 is None else ops.transpose(h0, [1, 0, 2])
            c0 = None if c0 is None else ops.transpose(c0, [1, 0, 2])
        mask = None
        if lens is not None:
            steps = ops.unsqueeze(ops.arange(seq), [1, 2])
            mask = ops.less(steps, ops.unsqueeze(ops.cast(lens, "int64"), [0, 2]))      # (seq, batch, 1)
        zeros = ops.zeros((batch, hidden), dt)

        def pick(t, d):
            return None if t is None else ops.squeeze(ops.slice(t, [d], [d + 1], [0]), [0])

        ys, hs, cs = [], [], []
        for d in range(num_dirs):
            reverse = direction == "reverse" or d == 1
            wd, rd = pick(w, d), pick(r, d)
            bd = pick(bias, d)
            wb, rb = (None, None) if bd is None else ops.split(bd, 2, 0)
            xw = ops.linear(x, wd, wb)                                   # (seq, batch, G·H): one matmul
            pd = pick(peep, d)
            p = None if pd is None else ops.split(pd, 3, 0)
            step = _cell(op, acts[d * per_dir:(d + 1) * per_dir], clip, lbr, input_forget)
            hd = pick(h0, d) if h0 is not None else zeros
            state = (hd, pick(c0, d) if c0 is not None else zeros) if op == "LSTM" else hd

            def body(carry, xs, step=step, rd=rd, rb=rb, p=p):
                new = step(xs[0], carry, rd, rb, p)
                if mask is not None:
                    m = xs[1]
                    new = tuple(ops.where(m, n, o) for n, o in zip(new, carry)) if op == "LSTM" \
                        else ops.where(m, new, carry)
                hh = new[0] if op == "LSTM" else new
                return new, (hh if mask is None else ops.where(xs[1], hh, 0.0))

            final, y = scan(body, state, (xw,) if mask is None else (xw, mask), reverse=reverse)
            tag = _native_tag(op, names[d * per_dir:(d + 1) * per_dir], clip, lbr, input_forget, pd, alphas, betas)
            if tag:  # the body is ONNX's plain op: it may export natively again (runtimes/onnx/recurrent.py)
                y.value.producer.attrs["recurrence"] = tag
            ys.append(y)
            hs.append(final[0] if op == "LSTM" else final)
            if op == "LSTM":
                cs.append(final[1])
        y = ops.stack(ys, 1)                                             # (seq, dirs, batch, H)
        y_h, y_c = ops.stack(hs, 0), (ops.stack(cs, 0) if cs else None)  # (dirs, batch, H)
        if layout == 1:
            y = ops.transpose(y, [2, 0, 1, 3])                           # (batch, seq, dirs, H)
            y_h = ops.transpose(y_h, [1, 0, 2])
            y_c = None if y_c is None else ops.transpose(y_c, [1, 0, 2])
        outs = [y, y_h] + ([y_c] if op == "LSTM" else [])
    return [t.value for t in outs[:len(node.output)]]
