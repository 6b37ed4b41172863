"""Control flow: ``cond``, ``scan`` and ``while_loop`` — ops that own regions — and their tracing API
(``gf.cond``, ``gf.scan``, ``gf.while_loop``, ``gf.fori_loop``).

The capture rule is explicit (docs/control_flow.md): a region reads only its own arguments. The
tracing API captures automatically — an outer tensor (or parameter) a body touches becomes an extra
operand of the op and an argument of the region — so users write bodies as ordinary closures.

* ``cond(pred, *operands)``: regions ``(then, else)`` on the operands; both yield the same types.
* ``scan(*consts, *init, *xs)``: attrs ``num_consts``, ``num_carry``, ``length``, ``reverse``,
  ``remat``; region ``body(consts, carry, x slices) -> (new carry, y slices)``; results
  ``final carry + ys`` (each y stacked along a new leading axis of ``length``).
* ``while_loop(*consts, *init)``: attrs ``num_consts``, ``max_iterations`` (-1: unbounded); regions
  ``cond(consts, carry) -> bool scalar`` and ``body(consts, carry) -> carry``.

Gradients: cond → a cond of the branch VJPs; scan → a reverse scan over saved per-step residuals
(``remat=True`` saves only the carries and recomputes each step); a while_loop with
``max_iterations`` → the VJP of the equivalent bounded scan with a done flag. An unbounded
while_loop cannot be differentiated (typed error suggesting ``max_iterations``).
"""
from __future__ import annotations

import inspect
import numbers

import numpy as np

from .. import dtypes as _dt
from ..errors import BackendError, GraphforgeError, ShapeError, TraceError, UnsupportedOpError
from ..ir.dims import dim_sub, resolve_dim, resolve_shape
from ..ir.graph import YIELD, Block, Node, Value
from ..ir.types import TensorType
from ..trace.builder import Builder, current_builder, user_location
from ..trace.pytree import tree_flatten, tree_paths, tree_unflatten
from ..trace.tensor import SymDim, Tensor, as_value
from ._region_ad import block_vjp, copy_region, inline_region, is_float_type, trace_regions, zeros_value
from .evaluate import evaluate_block
from .registry import Attr, OpDef, RegionSig, Sample, lookup_op, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, elementwise as _elementwise, linalg as _linalg

__all__ = ["cond", "scan", "while_loop", "fori_loop"]


# ---- type rules -------------------------------------------------------------------------------------

def _types(ts) -> str:
    return ", ".join(map(str, ts)) or "nothing"


def _check_args(what: str, sig: RegionSig, want: list[TensorType]) -> None:
    if list(sig.args) != list(want):
        raise ShapeError(f"the {what} region takes ({_types(sig.args)}) but the operands are ({_types(want)})")


def _cond_type(in_types, attrs, regions):
    if not in_types:
        raise ShapeError("cond needs a predicate")
    pred, ops = in_types[0], list(in_types[1:])
    if pred.shape != ():
        raise ShapeError(f"the predicate of cond must be a scalar, got {pred}")
    then, other = regions
    _check_args("then", then, ops)
    _check_args("else", other, ops)
    if len(then.results) != len(other.results):
        raise ShapeError(f"the then branch yields {len(then.results)} values ({_types(then.results)}), the else "
                         f"branch {len(other.results)} ({_types(other.results)})")
    for i, (a, b) in enumerate(zip(then.results, other.results)):
        if a != b:
            raise ShapeError(f"output {i} of the else branch is {b}, the then branch gives {a} (both branches "
                             "must return the same types)")
    return list(then.results)


def _scan_split(in_types, attrs):
    nc, nk = attrs.get("num_consts", 0), attrs["num_carry"]
    if nc < 0 or nk < 0 or nc + nk > len(in_types):
        raise ShapeError(f"scan has {len(in_types)} operands, fewer than num_consts={nc} + num_carry={nk}")
    return in_types[:nc], in_types[nc:nc + nk], in_types[nc + nk:]


def _scan_type(in_types, attrs, regions):
    consts, carry, xs = _scan_split(in_types, attrs)
    length = attrs["length"]
    if isinstance(length, int) and length < 0:
        raise ShapeError(f"scan length must be >= 0, got {length}")
    slices = []
    for i, x in enumerate(xs):
        if not x.shape:
            raise ShapeError(f"scanned input {i} is a scalar {x}; xs need a leading axis of the length {length}")
        if x.shape[0] != length:
            raise ShapeError(f"scanned input {i} is {x}: its leading axis should be the scan length {length}")
        slices.append(TensorType(x.shape[1:], x.dtype))
    (body,) = regions
    _check_args("body", body, list(consts) + list(carry) + slices)
    results = list(body.results)
    if len(results) < len(carry):
        raise ShapeError(f"the scan body yields {len(results)} values, fewer than its {len(carry)} carries")
    for i, (a, b) in enumerate(zip(carry, results)):
        if a != b:
            raise ShapeError(f"carry {i} changes type in the scan body: it enters as {a} and the body returns {b}")
    return list(carry) + [TensorType((length,) + tuple(y.shape), y.dtype) for y in results[len(carry):]]


def _while_type(in_types, attrs, regions):
    nc = attrs.get("num_consts", 0)
    if nc < 0 or nc > len(in_types):
        raise ShapeError(f"while_loop has {len(in_types)} operands, fewer than num_consts={nc}")
    if attrs.get("max_iterations", -1) < -1:
        raise ShapeError(f"max_iterations must be >= 0 (or -1: unbounded), got {attrs['max_iterations']}")
    carry = list(in_types[nc:])
    cond_r, body = regions
    _check_args("cond", cond_r, list(in_types))
    _check_args("body", body, list(in_types))
    if len(cond_r.results) != 1 or cond_r.results[0] != TensorType((), "bool"):
        raise ShapeError(f"the cond region of while_loop must yield one bool scalar, it yields ({_types(cond_r.results)})")
    if len(body.results) != len(carry):
        raise ShapeError(f"the while_loop body yields {len(body.results)} values for {len(carry)} carries")
    for i, (a, b) in enumerate(zip(carry, body.results)):
        if a != b:
            raise ShapeError(f"carry {i} changes type in the while_loop body: it enters as {a} and the body "
                             f"returns {b}")
    return carry


# ---- references (NumPy loops) --------------------------------------------------------------------------

def _truth(pred: np.ndarray) -> bool:
    return bool(np.asarray(pred) != 0)


def _cond_ref(args, attrs, env, regions):
    then, other = regions
    return evaluate_block(then if _truth(args[0]) else other, list(args[1:]), env)


def _scan_ref(args, attrs, env, regions):
    (body,) = regions
    nc, nk = attrs.get("num_consts", 0), attrs["num_carry"]
    consts, carry, xs = list(args[:nc]), list(args[nc:nc + nk]), list(args[nc + nk:])
    length = resolve_dim(attrs["length"], env) if isinstance(attrs["length"], str) else attrs["length"]
    steps = range(length - 1, -1, -1) if attrs.get("reverse", False) else range(length)
    ys: list = [None] * length
    for t in steps:
        outs = evaluate_block(body, consts + carry + [x[t] for x in xs], env)
        carry, ys[t] = list(outs[:nk]), outs[nk:]
    y_types = body.results[nk:]
    stacked = []
    for j, v in enumerate(y_types):
        if length:
            stacked.append(np.stack([ys[t][j] for t in range(length)]))
        else:
            stacked.append(np.zeros((0,) + resolve_shape(v.type.shape, env), _dt.to_numpy_dtype(v.type.dtype)))
    return carry + stacked


def _while_ref(args, attrs, env, regions):
    cond_r, body = regions
    nc = attrs.get("num_consts", 0)
    consts, carry = list(args[:nc]), list(args[nc:])
    limit = attrs.get("max_iterations", -1)
    i = 0
    while (limit < 0 or i < limit) and _truth(evaluate_block(cond_r, consts + carry, env)[0]):
        carry = evaluate_block(body, consts + carry, env)
        i += 1
    return carry


def _no_flops(ins, outs, attrs):
    # The op itself computes nothing; gf.summary adds trip count x the regions' nodes.
    return 0


# ---- VJPs ---------------------------------------------------------------------------------------------

def _builder_of(tensors) -> Builder:
    for t in tensors:
        if isinstance(t, Tensor):
            return t.builder
    return current_builder()


def _vals(tensors) -> list[Value]:
    return [t.value for t in tensors]


def _cond_vjp(inputs, outputs, cotangents, attrs, *, node):
    builder = _builder_of(inputs)
    pred, ops = inputs[0].value, _vals(inputs[1:])
    live = [i for i, c in enumerate(cotangents) if c is not None and is_float_type(outputs[i].value.type)]
    cots = [cotangents[i].value for i in live]
    diff = [i for i, v in enumerate(ops) if is_float_type(v.type)]
    if not diff:
        return [None] * len(inputs)
    then, other = node.regions
    arg_types = [v.type for v in ops] + [c.type for c in cots]

    def branch(region):
        def body(args):
            result_cots: list = [None] * len(region.results)
            for k, i in enumerate(live):
                result_cots[i] = args[len(ops) + k]
            got = block_vjp(builder, region, args[:len(ops)], result_cots)
            return [got[i] if got[i] is not None else zeros_value(builder, ops[i].type) for i in diff]
        return body

    n = len(arg_types)
    blocks, captured = trace_regions(builder, [arg_types, arg_types], [branch(then), branch(other)], n)
    outs = builder.emit("cond", [pred] + ops + cots + captured, {}, regions=blocks)
    result: list = [None] * len(inputs)
    for k, i in enumerate(diff):
        result[1 + i] = outs[k]
    return result


def _redirect(builder: Builder, old: list[Value], new: list[Value]) -> None:
    for o, n in zip(old, new):
        builder.graph.replace_all_uses_with(o, n)


def _scan_vjp(inputs, outputs, cotangents, attrs, *, node):
    builder = _builder_of(inputs)
    nc, nk = attrs.get("num_consts", 0), attrs["num_carry"]
    length, reverse, remat = attrs["length"], attrs.get("reverse", False), attrs.get("remat", False)
    ins = _vals(inputs)
    consts, init, xs = ins[:nc], ins[nc:nc + nk], ins[nc + nk:]
    (body,) = node.regions
    ny = len(body.results) - nk

    # 1. The forward scan again, also stacking each step's residuals: the carry entering the step
    #    and (unless remat) every value the body computes; it replaces the original node.
    aug = copy_region(body)
    term = aug.terminator
    carry_args = aug.arguments[nc:nc + nk]
    # (constants are not saved: they are the same every step)
    saved_nodes = [] if remat else [n for n in aug if n is not term and n.outputs and not n.regions
                                    and n.op != "constant"]
    residuals = list(carry_args) + [o for n in saved_nodes for o in n.outputs]
    new_term = Node(YIELD, list(term.inputs) + residuals, None, [], scope=term.scope, loc=term.loc)
    aug.erase(term)
    aug.append(new_term)
    with builder.inserting_after(node):
        with builder.provenance(node.scope, node.loc):
            # (it also stacks residuals: no longer the tagged layer's interface)
            fwd = builder.emit("scan", ins, {k: v for k, v in attrs.items() if k != "recurrence"}, regions=[aug])
    _redirect(builder, list(node.outputs), fwd[:nk + ny])
    stacked = fwd[nk + ny:]

    # Index the original body's values: residual k stands for orig_values[k].
    orig_carry = body.arguments[nc:nc + nk]
    orig_nodes = [] if remat else [n for n in body if n.op != "yield" and n.outputs and not n.regions
                                   and n.op != "constant"]
    orig_values = list(orig_carry) + [o for n in orig_nodes for o in n.outputs]

    # 2. The reverse scan: carries are the carry cotangents and the const cotangent sums.
    dc = [i for i, v in enumerate(consts) if is_float_type(v.type)]
    dh = [i for i, v in enumerate(init) if is_float_type(v.type)]
    dx = [i for i, v in enumerate(xs) if is_float_type(v.type)]
    if not (dc or dh or dx):
        return [None] * len(inputs)
    h_cot0 = [cotangents[i].value if cotangents[i] is not None else zeros_value(builder, init[i].type) for i in dh]
    c_cot0 = [zeros_value(builder, consts[i].type) for i in dc]
    y_live = [j for j in range(ny) if cotangents[nk + j] is not None and is_float_type(outputs[nk + j].value.type)]
    y_cots = [cotangents[nk + j].value for j in y_live]
    b_consts = list(consts)
    b_carry = h_cot0 + c_cot0
    b_xs = list(xs) + list(stacked) + y_cots
    slice_of = lambda v: TensorType(v.type.shape[1:], v.type.dtype)  # noqa: E731
    arg_types = ([v.type for v in b_consts] + [v.type for v in b_carry] + [slice_of(v) for v in b_xs])
    block = Block(None, [Value(t, kind="arg") for t in arg_types])
    with builder.tracing_region(block, 0) as frame:
        a = list(block.arguments)
        a_consts, a = a[:len(b_consts)], a[len(b_consts):]
        a_hcot, a = a[:len(dh)], a[len(dh):]
        a_ccot, a = a[:len(dc)], a[len(dc):]
        a_x, a = a[:len(xs)], a[len(xs):]
        a_res, a_ycot = a[:len(stacked)], a[len(stacked):]
        saved = {id(o): r for o, r in zip(orig_values, a_res)}
        carry_in = a_res[:nk]
        result_cots: list = [None] * (nk + ny)
        for k, i in enumerate(dh):
            result_cots[i] = a_hcot[k]
        for k, j in enumerate(y_live):
            result_cots[nk + j] = a_ycot[k]
        got = block_vjp(builder, body, a_consts + carry_in + a_x, result_cots, saved)
        g_consts, g_carry, g_x = got[:nc], got[nc:nc + nk], got[nc + nk:]
        # A weight's per-step cotangent ``aᵀ b`` (a ``linear``/``matmul`` weight) is not summed in the
        # carry step by step: the loop stacks ``a`` and ``b`` and one matmul after it sums them all.
        # (a bias's per-step cotangent, a sum over the batch rows, likewise: one sum after the loop)
        outer = {k: f for k, i in enumerate(dc) if (f := _per_step_factors(g_consts[i])) is not None}
        new_h = [g_carry[i] if g_carry[i] is not None else zeros_value(builder, init[i].type) for i in dh]
        new_c = [a_ccot[k] if g_consts[i] is None else builder.emit1("add", [a_ccot[k], g_consts[i]])
                 for k, i in enumerate(dc) if k not in outer]
        x_out = [g_x[i] if g_x[i] is not None else zeros_value(builder, slice_of(xs[i])) for i in dx]
        # each per-step value stacked once: a factor is often dx itself (or the same op on the same
        # values), or a slice of a stacked input (a saved residual) that is there already
        sliced = a_x + a_res + a_ycot
        stacked_ys = list(x_out)
        where = {}  # id(factor) -> ("y", index in stacked_ys) or ("x", its stacked-input argument)
        for f in outer.values():
            for v in f:
                j = _find(v, stacked_ys)
                if j is None and (i := _find(v, sliced, by_op=False)) is not None:
                    where[id(v)] = ("x", sliced[i])
                    continue
                if j is None:
                    stacked_ys.append(v)
                    j = len(stacked_ys) - 1
                where[id(v)] = ("y", j)
        builder.emit_yield(new_h + new_c + stacked_ys)
    for k, i in enumerate(dc):
        if k in outer:
            _erase_unused(g_consts[i].producer)
    drop = {id(a_ccot[k]) for k in outer}
    block.arguments[:] = [a for a in block.arguments if id(a) not in drop]
    kept = [k for k in range(len(dc)) if k not in outer]
    for k in outer:  # the zero start of a sum that is no longer carried
        _erase_unused(c_cot0[k].producer)
    b_carry = h_cot0 + [c_cot0[k] for k in kept]
    # Stacked inputs the reverse body never reads are not passed, and the forward loop stops
    # stacking the residuals nobody reads any more (most of the body's values, for an LSTM).
    read_after = {id(ref) for kind, ref in where.values() if kind == "x"}  # factors read after the loop
    unused = {j for j, a in enumerate(sliced) if not a.uses and id(a) not in read_after}
    # A carry whose new value the body also yields as a y (an RNN's h) entered each step as that y
    # of the step before: its stack is the ys shifted by one step, the initial carry first, so the
    # forward loop does not stack it a second time.
    shifted = {k: _shifted_ys(builder, fwd[nk + j], init[k], reverse, length)
               for k, j in _carries_yielded_as_ys(body, nk) if len(xs) + k not in unused}
    for k, v in shifted.items():
        b_xs[len(xs) + k] = v
    dead = {j - len(xs) for j in unused if len(xs) <= j < len(xs) + len(stacked)} | set(shifted)
    if unused:
        block.arguments[:] = [a for a in block.arguments if not any(a is sliced[j] for j in unused)]
        b_xs = [v for j, v in enumerate(b_xs) if j not in unused]
        sliced = [v for j, v in enumerate(sliced) if j not in unused]
    if dead:
        renamed = _drop_stacked_residuals(builder, fwd[0].producer, nk + ny, dead)
        b_xs = [renamed.get(id(v), v) for v in b_xs]
    captured = frame.captured
    bwd = builder.emit("scan", captured + b_consts + b_carry + b_xs,
                       {"num_consts": len(captured) + len(b_consts), "num_carry": len(b_carry), "length": length,
                        "reverse": not reverse, "remat": remat}, regions=[block])
    result: list = [None] * len(inputs)
    for k, i in enumerate(dh):
        result[nc + i] = bwd[k]
    for j, k in enumerate(kept):
        result[dc[k]] = bwd[len(dh) + j]
    for k, i in enumerate(dx):
        result[nc + nk + i] = bwd[len(b_carry) + k]
    stacks = bwd[len(b_carry):]

    def stack_of(v):
        kind, ref = where[id(v)]
        return stacks[ref] if kind == "y" else b_xs[next(j for j, a in enumerate(sliced) if a is ref)]
    for k, f in outer.items():
        flat = [builder.emit1("reshape", [stack_of(v)], {"shape": [-1, v.type.shape[-1]]}) for v in f]
        if len(f) == 1:  # sum_t sum_rows(x_t) = one sum over the stacked rows
            result[dc[k]] = builder.emit1("sum", flat, {"axes": [0], "keepdims": False})
        else:            # sum_t a_tᵀ b_t = one matmul of the stacked factors
            ta = builder.emit1("transpose", [flat[0]], {"perm": [1, 0]})
            result[dc[k]] = builder.emit1("matmul", [ta, flat[1]])
    return result


def _carries_yielded_as_ys(body: Block, nk: int) -> list[tuple[int, int]]:
    """``(k, j)`` for each carry ``k`` whose new value the scan body also yields as its y ``j``."""
    results = list(body.terminator.inputs)
    pairs = []
    for k in range(nk):
        j = next((j for j, v in enumerate(results[nk:]) if v is results[k]), None)
        if j is not None:
            pairs.append((k, j))
    return pairs


def _shifted_ys(builder: Builder, ys: Value, init: Value, reverse: bool, length) -> Value:
    """The carry entering each step of a scan whose carry is also its y: ``ys`` shifted one step
    along the scan's direction, ``init`` in the first step's place (forward: ``[init, ys[:-1]]``)."""
    first = builder.emit1("unsqueeze", [init], {"axes": [0]})
    if reverse:
        rest = builder.emit1("slice", [ys], {"starts": [1], "ends": [length], "axes": [0], "steps": None})
        return builder.emit1("concat", [rest, first], {"axis": 0})
    rest = builder.emit1("slice", [ys], {"starts": [0], "ends": [-1], "axes": [0], "steps": None})
    return builder.emit1("concat", [first, rest], {"axis": 0})


def _drop_stacked_residuals(builder: Builder, fwd: Node, n_keep: int, dead: set[int]) -> dict[int, Value]:
    """Rebuild the augmented forward scan ``fwd`` without the residual outputs ``dead`` (indices
    after its first ``n_keep`` outputs); returns ``{id(old output): new output}`` for the rest."""
    (aug,) = fwd.regions
    term = aug.terminator
    keep = [j for j in range(len(term.inputs)) if j < n_keep or j - n_keep not in dead]
    new_term = Node(YIELD, [term.inputs[j] for j in keep], None, [], scope=term.scope, loc=term.loc)
    aug.erase(term)
    aug.append(new_term)
    with builder.inserting_before(fwd), builder.provenance(fwd.scope, fwd.loc):
        new = builder.emit("scan", list(fwd.inputs), dict(fwd.attrs), regions=[aug])
    renamed = {}
    for k, j in enumerate(keep):
        old = fwd.outputs[j]
        builder.graph.replace_all_uses_with(old, new[k])
        renamed[id(old)] = new[k]
    fwd.regions = ()  # the region now belongs to the new node: erase the old one alone
    builder.graph.erase(fwd)
    for node in reversed(list(aug)):  # body values that only fed the dropped residuals
        if node is not new_term and not node.regions:
            _erase_unused(node)
    return renamed


def _find(v: Value, values: list, by_op: bool = True) -> int | None:
    """The index of ``v`` in ``values``, or (``by_op``) of a value the same op computes from the
    same inputs with the same attributes (the reverse sweep may build a cotangent twice)."""
    for j, w in enumerate(values):
        if w is v:
            return j
    if not by_op or v.producer is None:
        return None
    p = v.producer
    for j, w in enumerate(values):
        q = w.producer
        if q is not None and q.op == p.op and len(q.inputs) == len(p.inputs) and len(q.outputs) == 1 \
                and len(p.outputs) == 1 and all(a is b for a, b in zip(q.inputs, p.inputs)) \
                and _same_attrs(q.attrs, p.attrs) and not getattr(lookup_op(p.op), "random", True):
            return j
    return None


def _same_attrs(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and np.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def _per_step_factors(v: Value | None) -> tuple[Value, ...] | None:
    """A const's per-step cotangent ``v`` whose sum over a loop's steps is one op over the stacked
    per-step values: ``(a, b)`` when ``v = matmul(transpose(a), b)`` with 2-D ``a`` and ``b``
    (what ``linear``'s and ``matmul``'s VJPs give a 2-D weight), ``(x,)`` when ``v = sum(x, axes=[0])``
    of a 2-D ``x`` (a bias); None otherwise (it is then summed in the loop's carry)."""
    node = v.producer if v is not None else None
    if node is None or v.uses:
        return None
    if node.op == "sum" and node.attrs.get("axes") == [0] and not node.attrs.get("keepdims", False) \
            and node.inputs[0].type.rank == 2 and isinstance(node.inputs[0].type.shape[-1], int):
        return (_unreshaped(node.inputs[0]),)
    if node.op != "matmul" or len(node.inputs) != 2:
        return None
    t, b = node.inputs
    tn = t.producer
    if tn is None or tn.op != "transpose" or len(t.uses) != 1 or tn.inputs[0].type.rank != 2 or b.type.rank != 2:
        return None
    a = tn.inputs[0]
    if not isinstance(a.type.shape[-1], int) or not isinstance(b.type.shape[-1], int):
        return None
    return _unreshaped(a), _unreshaped(b)


def _unreshaped(v: Value) -> Value:
    """``v`` without the reshapes to its own type in front of it (the VJP's flattening of a 2-D value)."""
    while v.producer is not None and v.producer.op == "reshape" and v.producer.inputs[0].type == v.type:
        v = v.producer.inputs[0]
    return v


def _erase_unused(node) -> None:
    """Erase ``node`` if its results are unused, then the producers that thereby became unused."""
    if node is None or node._block is None or any(o.uses for o in node.outputs):
        return
    inputs = list(node.inputs)
    node._block.erase(node)
    for v in inputs:
        _erase_unused(v.producer)


def _while_vjp(inputs, outputs, cotangents, attrs, *, node):
    limit = attrs.get("max_iterations", -1)
    if limit < 0:
        raise UnsupportedOpError(
            "cannot differentiate an unbounded while_loop (its trip count is unknown, so there is no fixed "
            "set of steps to save); give it a bound: gf.while_loop(cond_fn, body_fn, init, max_iterations=N), "
            "which is differentiated as a bounded scan", ops=["while_loop"], scope=node.scope, op="while_loop",
            loc=node.loc)
    builder = _builder_of(inputs)
    scan_node = _while_as_scan(builder, node)
    nc = attrs.get("num_consts", 0)
    outs = scan_node.outputs
    _redirect(builder, list(node.outputs), list(outs[1:]))
    s_inputs = [Tensor(v, builder) for v in scan_node.inputs]
    s_outputs = [Tensor(v, builder) for v in outs]
    s_cots = [None] + list(cotangents)
    got = _scan_vjp(s_inputs, s_outputs, s_cots, scan_node.attrs, node=scan_node)
    return got[:nc] + got[nc + 1:]


def _while_as_scan(builder: Builder, node):
    """The bounded ``while_loop`` as a ``scan`` of ``max_iterations`` steps carrying a done flag
    (inserted right after it): a step runs the body only while not done and the cond holds."""
    cond_r, body = node.regions
    nc = node.attrs.get("num_consts", 0)
    limit = node.attrs.get("max_iterations", -1)
    consts, init = list(node.inputs[:nc]), list(node.inputs[nc:])
    types = [v.type for v in node.inputs]
    block = Block(None, [Value(t, kind="arg") for t in [v.type for v in consts] + [TensorType((), "bool")] +
                         [v.type for v in init]])
    with builder.inserting_after(node), builder.provenance(node.scope, node.loc):
        done0 = builder.emit1("constant", [], {"value": np.array(False)})
        with builder.tracing_region(block, 0):
            a = list(block.arguments)
            c_args, done, h = a[:nc], a[nc], a[nc + 1:]
            (keep_going,), _ = inline_region(builder, cond_r, c_args + h)
            go = builder.emit1("logical_and", [builder.emit1("logical_not", [done]), keep_going])
            then = copy_region(body)
            same = Block(None, [Value(t, kind="arg") for t in types])
            same.append(Node(YIELD, same.arguments[nc:], None, []))
            new_h = builder.emit("cond", [go] + c_args + h, {}, regions=[then, same])
            builder.emit_yield([builder.emit1("logical_not", [go])] + list(new_h))
        outs = builder.emit("scan", consts + [done0] + init,
                            {"num_consts": nc, "num_carry": 1 + len(init), "length": limit, "reverse": False,
                             "remat": False}, regions=[block])
    return outs[0].producer


# ---- the tracing API -----------------------------------------------------------------------------------

def _site() -> dict:
    return {"loc": user_location(full=True) or None}


def _leaf_value(x, builder: Builder, what: str) -> Value:
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, (numbers.Number, np.ndarray, np.generic)):
        return as_value(x, builder)
    raise TraceError(f"{what}: a {type(x).__name__} is not a tensor (carries, operands and outputs are pytrees "
                     "of Tensors: tuples, lists, dicts, None)", **_site())


def _flatten(tree, builder, what):
    leaves, structure = tree_flatten(tree)
    return [_leaf_value(x, builder, what) for x in leaves], structure


def _wrap(builder, values):
    return [Tensor(v, builder) for v in values]


def _find_builder(*trees) -> Builder:
    for tree in trees:
        leaves, _ = tree_flatten(tree)
        for x in leaves:
            if isinstance(x, Tensor):
                return x.builder
    return current_builder()


def _check_types(kind: str, paths: list[str], want: list[TensorType], got: list[TensorType], who: str) -> None:
    for p, a, b in zip(paths, want, got):
        if a != b:
            raise ShapeError(f"{kind} {p or '(the whole carry)'} changes type: it enters {who} as {a} and the body "
                             f"returns {b}", op=who, **_site(),
                             hint="a carry keeps one type across iterations: cast it, or fix the body's shapes")


def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``, both traced into the graph
    (a ``cond`` node with two regions). ``pred`` is a scalar (bool, or a number tested ``!= 0``);
    operands and results are pytrees of Tensors. A Python bool picks the branch at trace time."""
    if isinstance(pred, (bool, np.bool_)):
        return true_fn(*operands) if pred else false_fn(*operands)
    builder = _find_builder(pred, operands)
    pred_v = _leaf_value(pred, builder, "gf.cond predicate")
    if pred_v.type.shape != ():
        raise ShapeError(f"the predicate must be a scalar, got {pred_v.type}", op="cond", **_site(),
                         hint="reduce it first, e.g. gf.cond(x.sum() > 0, ...)")
    ops, in_structure = _flatten(tuple(operands), builder, "gf.cond operand")
    structures: list = []

    def branch(fn, name):
        def body(args):
            result = fn(*tree_unflatten(in_structure, _wrap(builder, args)))
            values, structure = _flatten(result, builder, f"gf.cond {name} branch result")
            structures.append(structure)
            return values
        return body

    types = [v.type for v in ops]
    blocks, captured = trace_regions(builder, [types, types], [branch(true_fn, "then"), branch(false_fn, "else")],
                                     len(ops))
    if structures[0] != structures[1]:
        raise ShapeError(f"the branches return different structures: then {structures[0]!r}, else "
                         f"{structures[1]!r}", op="cond", **_site())
    outs = builder.emit("cond", [pred_v] + ops + captured, {}, regions=blocks)
    return tree_unflatten(structures[0], _wrap(builder, outs))


def scan(fn, init, xs=None, length=None, reverse: bool = False, remat: bool = False):
    """Like ``jax.lax.scan``: ``fn(carry, x) -> (carry, y)`` over the leading axis of ``xs``;
    returns ``(final carry, ys)`` with the ``y``s stacked. Carries, xs and ys are pytrees (None: no
    xs / no ys). ``length`` is needed without xs (an int or a symbolic dim); ``reverse`` scans from
    the end (ys stay in input order); ``remat=True`` makes the gradient recompute each step instead of
    saving its intermediates.

    Args:
        fn: the step, ``fn(carry, x) -> (new_carry, y)``; ``new_carry`` has the structure and types of
            ``init``, ``y`` may be None.
        init: the initial carry, a Tensor or a pytree (tuple/list/dict) of Tensors.
        xs: the sequence(s) scanned over their leading axis, a Tensor or pytree; None: no xs.
        length: the number of steps where there are no xs (an int or a symbolic dim).
        reverse: scan from the last step to the first.
        remat: recompute each step in the backward pass instead of saving its intermediates.

    Returns:
        ``(final_carry, ys)``: the carry after the last step and the ``y``s stacked on a new leading axis.

    Raises:
        TraceError: no xs and no ``length``, a bad ``length``, or ``fn`` does not return a pair.
        ShapeError: an xs leaf is a scalar or its leading axis differs from the others, or the new carry's
            structure/types differ from ``init``'s.

    Example:
        ```python
        def cumsum(xs):
            return gf.scan(lambda c, x: (c + x, c + x), gf.zeros((2,)), xs)
        g = gf.trace(cumsum, gf.TensorSpec((3, 2)))
        total, ys = gf.run(g, {"xs": np.ones((3, 2), np.float32)}, backend="reference")  # [3, 3], [[1,1],[2,2],[3,3]]
        ```
    """
    builder = _find_builder(init, xs)
    carry, c_structure = _flatten(init, builder, "gf.scan carry")
    x_vals, x_structure = _flatten(xs, builder, "gf.scan xs")
    if length is not None and not isinstance(length, (int, str)) or isinstance(length, bool):
        raise TraceError(f"gf.scan length must be an int or a symbolic dim (x.shape[0]), got {length!r}", **_site())
    for i, x in enumerate(x_vals):
        if not x.type.shape:
            raise ShapeError(f"xs leaf {i} is a scalar ({x.type}); scan runs over a leading axis", op="scan", **_site())
        if length is None:
            length = x.type.shape[0]
        elif x.type.shape[0] != (str(length) if isinstance(length, SymDim) else length):
            raise ShapeError(f"xs leaf {i} is {x.type}, its leading axis differs from the scan length {length}",
                             op="scan", **_site())
    if length is None:
        raise TraceError("gf.scan needs length= when there are no xs", **_site())
    if isinstance(length, SymDim):
        length = str(length)
    x_paths = tree_paths(x_structure, "xs")
    c_paths = tree_paths(c_structure, "carry")
    slices = [TensorType(x.type.shape[1:], x.type.dtype) for x in x_vals]
    block = Block(None, [Value(v.type, kind="arg") for v in carry] + [Value(t, kind="arg") for t in slices])
    ys_structure = []
    with builder.tracing_region(block, 0) as frame:
        args = _wrap(builder, block.arguments)
        c_in = tree_unflatten(c_structure, args[:len(carry)])
        x_in = tree_unflatten(x_structure, args[len(carry):])
        result = fn(c_in, x_in)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TraceError("the gf.scan body must return (new_carry, y) (y may be None)", **_site())
        new_c, new_c_structure = _flatten(result[0], builder, "gf.scan new carry")
        if new_c_structure != c_structure:
            raise ShapeError(f"the scan body returns a carry of structure {new_c_structure!r}, the init is "
                             f"{c_structure!r}", op="scan", **_site())
        _check_types("carry", c_paths, [v.type for v in carry], [v.type for v in new_c], "gf.scan")
        ys, y_structure = _flatten(result[1], builder, "gf.scan y")
        ys_structure.append(y_structure)
        builder.emit_yield(new_c + ys)
    del x_paths
    captured = frame.captured
    outs = builder.emit("scan", captured + carry + x_vals,
                        {"num_consts": len(captured), "num_carry": len(carry), "length": length,
                         "reverse": bool(reverse), "remat": bool(remat)}, regions=[block])
    return (tree_unflatten(c_structure, _wrap(builder, outs[:len(carry)])),
            tree_unflatten(ys_structure[0], _wrap(builder, outs[len(carry):])))


def while_loop(cond_fn, body_fn, init, max_iterations: int | None = None):
    """Like ``jax.lax.while_loop``: ``while cond_fn(carry): carry = body_fn(carry)``. ``cond_fn``
    returns a scalar (bool, or a number tested ``!= 0``). ``max_iterations=N`` stops after at most N
    iterations and makes the loop differentiable (as a bounded scan).

    Args:
        cond_fn: ``cond_fn(carry)`` -> a scalar Tensor; the loop runs while it is true (non-zero).
        body_fn: ``body_fn(carry)`` -> the new carry, of ``init``'s structure and types.
        init: the initial carry, a Tensor or a pytree of Tensors.
        max_iterations: at most this many iterations (an int >= 0); None: unbounded (not differentiable).

    Returns:
        The carry when ``cond_fn`` turns false (or after ``max_iterations``), structured like ``init``.

    Raises:
        TraceError: ``max_iterations`` is not an int >= 0.
        ShapeError: ``cond_fn`` does not return a scalar, or the new carry's structure/types differ from
            ``init``'s.

    Example:
        ```python
        g = gf.trace(lambda x: gf.while_loop(lambda c: c < 100.0, lambda c: c * 2.0, x), gf.TensorSpec(()))
        (y,) = gf.run(g, {"x": np.float32(3.0)}, backend="reference")  # 192.0
        ```
    """
    builder = _find_builder(init)
    carry, c_structure = _flatten(init, builder, "gf.while_loop carry")
    if max_iterations is not None and (not isinstance(max_iterations, int) or isinstance(max_iterations, bool)
                                       or max_iterations < 0):
        raise TraceError(f"max_iterations must be an int >= 0, got {max_iterations!r}", **_site())
    c_paths = tree_paths(c_structure, "carry")
    types = [v.type for v in carry]

    def cond_body(args):
        out = cond_fn(tree_unflatten(c_structure, _wrap(builder, args)))
        (v,), _ = _flatten((out,), builder, "gf.while_loop cond result")
        if v.type.shape != ():
            raise ShapeError(f"cond_fn must return a scalar, got {v.type}", op="while_loop", **_site())
        if v.type.dtype != "bool":
            zero = as_value(0, builder, v.type.dtype)
            v = builder.emit1("not_equal", [v, zero])
        return [v]

    def body_body(args):
        out = body_fn(tree_unflatten(c_structure, _wrap(builder, args)))
        new, structure = _flatten(out, builder, "gf.while_loop new carry")
        if structure != c_structure:
            raise ShapeError(f"the while_loop body returns a carry of structure {structure!r}, the init is "
                             f"{c_structure!r}", op="while_loop", **_site())
        _check_types("carry", c_paths, types, [v.type for v in new], "gf.while_loop")
        return new

    blocks, captured = trace_regions(builder, [types, types], [cond_body, body_body], 0)
    outs = builder.emit("while_loop", captured + carry,
                        {"num_consts": len(captured),
                         "max_iterations": -1 if max_iterations is None else int(max_iterations)}, regions=blocks)
    return tree_unflatten(c_structure, _wrap(builder, outs))


def fori_loop(lower, upper, body_fn, init):
    """``for i in range(lower, upper): carry = body_fn(i, carry)``; ``i`` is an int64 scalar Tensor.
    Static bounds (ints or symbolic dims) trace a ``scan`` of ``upper - lower`` steps (differentiable);
    Tensor bounds a ``while_loop``.

    Args:
        lower: the first index, an int, a symbolic dim or an integer scalar Tensor.
        upper: the end index (exclusive), like ``lower``.
        body_fn: ``body_fn(i, carry)`` -> the new carry, of ``init``'s structure and types.
        init: the initial carry, a Tensor or a pytree of Tensors.

    Returns:
        The carry after the last iteration (``init`` when ``upper <= lower``), structured like ``init``.

    Raises:
        TraceError: static bounds that give a negative symbolic trip count.
        ShapeError: the new carry's structure/types differ from ``init``'s.

    Example:
        ```python
        g = gf.trace(lambda x: gf.fori_loop(0, 4, lambda i, c: c + i.astype("float32"), x), gf.TensorSpec((2,)))
        (y,) = gf.run(g, {"x": np.zeros(2, np.float32)}, backend="reference")  # [6, 6]
        ```
    """
    static = all(isinstance(b, (int, str)) and not isinstance(b, bool) for b in (lower, upper))
    if static:
        length = dim_sub(upper, lower) if (isinstance(lower, str) or isinstance(upper, str)) else max(upper - lower, 0)
        if isinstance(length, int) or length is None:
            if length is None or length < 0:
                raise TraceError(f"fori_loop bounds {lower}..{upper} give a negative trip count", **_site())
        idx = _creation.arange(lower, upper)
        carry, _ = scan(lambda c, i: (body_fn(i, c), None), init, idx)
        return carry
    builder = _find_builder(lower, upper, init)
    lo = Tensor(_leaf_value(lower, builder, "fori_loop lower"), builder)
    hi = Tensor(_leaf_value(upper, builder, "fori_loop upper"), builder)
    if lo.dtype != "int64":
        lo = lo.astype("int64")
    if hi.dtype != "int64":
        hi = hi.astype("int64")
    _, out = while_loop(lambda s: s[0] < hi, lambda s: (s[0] + 1, body_fn(s[0], s[1])), (lo, init))
    return out


# ---- samples --------------------------------------------------------------------------------------------

def _region(builder: Builder, types, fn) -> Block:
    arity = len(inspect.signature(fn).parameters)
    if arity != len(types):  # operand lists of another length (the type-rule fuzz mutates them)
        raise ShapeError(f"this sample's region takes {arity} arguments, the operands give {len(types)}")
    block = Block(None, [Value(t, kind="arg") for t in types])
    with builder.tracing_region(block, 0) as frame:
        builder.emit_yield([t.value for t in fn(*_wrap(builder, block.arguments))])
    if frame.captured:
        raise GraphforgeError("a sample region read an outer value")
    return block


def _f(shape, dtype="float32"):
    return TensorType(shape, dtype)


def _cond_regions(then_fn, else_fn):
    def build(builder, in_types, attrs):
        ops = list(in_types[1:])
        return [_region(builder, ops, then_fn), _region(builder, ops, else_fn)]
    return build


def _scan_regions(fn):
    def build(builder, in_types, attrs):
        nc, nk = attrs.get("num_consts", 0), attrs["num_carry"]
        types = list(in_types[:nc + nk]) + [TensorType(t.shape[1:], t.dtype) for t in in_types[nc + nk:]]
        return [_region(builder, types, fn)]
    return build


def _while_regions(cond_fn, body_fn):
    def build(builder, in_types, attrs):
        return [_region(builder, list(in_types), cond_fn), _region(builder, list(in_types), body_fn)]
    return build


def _rnn_step(w, h, x):
    hn = _elementwise.tanh(_linalg.matmul(h, w) + x)
    return hn, hn * 2.0


_COND_SAMPLES = [
    Sample([_f(()), _f((3,)), _f((3,))], {}, note="a*b | a-b, float pred",
           regions=_cond_regions(lambda a, b: (a * b,), lambda a, b: (a - b,))),
    Sample([_f((), "bool"), _f(("n", 4)), _f((4,))], {}, bind={"n": 3}, domain=["bool", "any", "any"],
           note="broadcasting bodies, symbolic dim, two results",
           regions=_cond_regions(lambda a, b: (a + b, (a * b).sum(1)), lambda a, b: (a * 2.0, (a - b).mean(1)))),
    Sample([_f((), "bool"), _f((2, 3), "float64")], {}, domain=[np.array(False), "any"], note="else taken, float64",
           regions=_cond_regions(lambda a: (a.exp(),), lambda a: (a.tanh() * a,))),
]

_SCAN_SAMPLES = [
    Sample([_f((4, 4)), _f((4,)), _f((5, 4))], {"num_consts": 1, "num_carry": 1, "length": 5}, domain=["unit", "unit", "any"],
           note="elementwise RNN with a const weight", regions=_scan_regions(_rnn_step)),
    Sample([_f(("b",)), _f(("t", "b"))], {"num_consts": 0, "num_carry": 1, "length": "t", "reverse": True},
           bind={"b": 3, "t": 4}, domain=["unit", "unit"], note="reverse cumulative product, symbolic length",
           regions=_scan_regions(lambda c, x: (c * x, c + x))),
    Sample([_f((2,), "float64"), _f((3, 2), "float64")], {"num_consts": 0, "num_carry": 1, "length": 3, "remat": True},
           domain=["unit", "unit"], note="remat, float64",
           regions=_scan_regions(lambda c, x: (c.sin() + x, c * x))),
]

_WHILE_SAMPLES = [
    Sample([_f(()), _f((3,))], {"num_consts": 1, "max_iterations": 6}, domain=[np.array(0.3), "unit"],
           note="halve until small, bounded",
           regions=_while_regions(lambda lim, x: ((x * x).sum() > lim,), lambda lim, x: (x * 0.5,))),
    Sample([_f((), "int64"), _f(("n",))], {"num_consts": 0}, bind={"n": 4}, domain=[np.array(0), "any"],
           note="counter to 5, unbounded, symbolic dim", grad=False,
           regions=_while_regions(lambda i, x: (i < 5,), lambda i, x: (i + 1, x * 1.5 + 1.0))),
]


register_op(OpDef("cond", _cond_type, _cond_ref, num_inputs=(1, None), flops=_no_flops, vjp=_cond_vjp,
                  family="control_flow", regions=("then", "else"), nondiff_inputs=(0,),
                  doc="pred ? then(operands) : else(operands)", samples=_COND_SAMPLES))
register_op(OpDef("scan", _scan_type, _scan_ref, num_inputs=(0, None), flops=_no_flops, vjp=_scan_vjp,
                  family="control_flow", regions=("body",),
                  attrs={"num_consts": Attr("int", 0), "num_carry": Attr("int"), "length": Attr("dim"),
                         "reverse": Attr("bool", False), "remat": Attr("bool", False),
                         # set by nn.RNN/LSTM/GRU: the body is that layer's step (see runtimes/onnx/recurrent.py)
                         "recurrence": Attr("str", "", choices=("", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_onnx",
                                                                  "gru_onnx"),
                                            elide_default=True)},
                  doc="a loop over the leading axis of xs with a carry (jax.lax.scan)", samples=_SCAN_SAMPLES))
register_op(OpDef("while_loop", _while_type, _while_ref, num_inputs=(0, None), flops=_no_flops, vjp=_while_vjp,
                  family="control_flow", regions=("cond", "body"),
                  attrs={"num_consts": Attr("int", 0), "max_iterations": Attr("int", -1)},
                  doc="while cond(carry): carry = body(carry), at most max_iterations times if >= 0",
                  samples=_WHILE_SAMPLES))
