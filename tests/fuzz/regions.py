"""Random control flow for the fuzzer: ``scan``, ``cond`` and ``while_loop`` nodes whose bodies are
random chains of smooth, bounded ops (tanh, sin, sigmoid after an add or mul with the step's input).

The bodies are drawn once and traced with the public API (``gf.scan``/``gf.cond``/``gf.while_loop``)
into the float32 graph and its float64 twin alike; the concrete value comes from the float64 node's
NumPy reference. Predicates are exact (a bool leaf, an integer counter), so float32 and float64 take
the same branch and trip count; every while_loop is bounded, so gradients exist.
"""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.ir.dims import resolve_shape
from graphforge.ir.types import TensorType
from graphforge.ops import control_flow, elementwise
from graphforge.ops.evaluate import evaluate_node
from graphforge.trace.tensor import Tensor

__all__ = ["REGION_OPS", "try_region_op"]

REGION_OPS = ("cond", "scan", "while_loop")
_UNARY = ("tanh", "sin", "sigmoid")
_BINARY = ("add", "mul", "none")


def _chain(gen) -> list[tuple[str, str]]:
    return [(gen.c.choice(_UNARY), gen.c.choice(_BINARY)) for _ in range(gen.c.int(1, 3))]


def _apply(steps, v, x):
    for unary, binary in steps:
        if binary == "add":
            v = v + x
        elif binary == "mul":
            v = v * x
        v = getattr(elementwise, unary)(v)
    return v


def _float_entries(gen, min_rank=0):
    out = []
    for e in gen.pool:
        t = e.v32.type
        if t.dtype != "float32" or len(t.shape) < min_rank:
            continue
        x = e.concrete
        if x.size == 0 or not np.all(np.isfinite(x)) or np.abs(x).max() > 10.0:
            continue
        out.append(e)
    return out


def _emit_both(gen, build, entries):
    """``build(builder, values) -> [Tensor]`` traced in both graphs; returns (outs32, outs64, node64)."""
    outs = []
    for b, vals in ((gen.b32, [e.v32 for e in entries]), (gen.b64, [e.v64 for e in entries])):
        with b.activate():
            res = build([Tensor(v, b) for v in vals])
        outs.append([t.value for t in res])
    node64 = outs[1][0].producer
    return outs[0], outs[1], node64


def try_region_op(gen, op: str) -> bool:
    from .gen import Entry

    if op == "scan":
        xs = [e for e in _float_entries(gen, 1) if resolve_shape(e.v32.type.shape[:1], gen.env)[0] >= 1]
        if not xs:
            return False
        x = gen.c.choice(xs)
        slice_t = TensorType(x.v32.type.shape[1:], "float32")
        init = gen.leaf(slice_t, "unit")
        carry_steps, y_steps = _chain(gen), _chain(gen)
        reverse, remat = gen.c.coin(50), gen.c.coin(30)

        def build(vals):
            c, ys = control_flow.scan(lambda c, xt: (_apply(carry_steps, c, xt), _apply(y_steps, xt, c)),
                                      vals[0], vals[1], reverse=reverse, remat=remat)
            return [c, ys]
        entries = [init, x]
    elif op == "cond":
        cands = _float_entries(gen)
        if not cands:
            return False
        x = gen.c.choice(cands)
        pred = gen.leaf(TensorType((), "bool"), "bool")
        then_steps, else_steps = _chain(gen), _chain(gen)

        def build(vals):
            out = control_flow.cond(vals[0], lambda u: _apply(then_steps, u, u), lambda u: _apply(else_steps, u, u),
                                    vals[1])
            return [out]
        entries = [pred, x]
    else:
        cands = _float_entries(gen)
        if not cands:
            return False
        x = gen.c.choice(cands)
        trips = gen.c.int(0, 3)
        bound = trips + gen.c.int(0, 2)
        steps = _chain(gen)

        def build(vals):
            from graphforge.ops.creation import constant
            i0 = constant(np.array(0, np.int64))
            _, v = control_flow.while_loop(lambda s: s[0] < trips, lambda s: (s[0] + 1, _apply(steps, s[1], s[1])),
                                           (i0, vals[0]), max_iterations=bound)
            return [v]
        entries = [x]
    outs32, outs64, node64 = _emit_both(gen, build, entries)
    args = [e.concrete.astype(np.float64) if e.concrete.dtype.kind == "f" else e.concrete for e in entries]
    with np.errstate(all="ignore"):
        # the node's own operands (a counter constant included) in the float64 twin's order
        concrete_in = []
        for v in node64.inputs:
            producer = v.producer
            if producer is not None and producer.op == "constant":
                concrete_in.append(np.asarray(producer.attrs["value"]))
            else:
                concrete_in.append(args[[e.v64 for e in entries].index(v)])
        results = evaluate_node(node64, concrete_in, gen.env)
    depth = 1 + max(e.depth for e in entries)
    for a, b in zip(outs32, outs64):
        val = results[b.index]
        if not _dt.is_float(a.type.dtype):
            continue
        gen.pool.append(Entry(a, b, np.asarray(val), False, False, depth=depth))
    gen.ops.append(op)
    return True
