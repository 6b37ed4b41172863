"""Importers of ONNX control flow: ``If`` → ``cond``, ``Scan`` → ``scan``, ``Loop`` → ``scan`` or
``while_loop``.

An ONNX subgraph reads outer values by name; graphforge regions capture explicitly. A body is
imported inside ``Builder.tracing_region``, so every outer value one of its nodes reads becomes a
region argument and an operand of the region op (nested bodies capture through every level). The
two regions of a ``cond`` (and of a ``while_loop``) take the same operands: each gets an unused
argument for what only the other one reads. Outer values known at import time stay constants
inside the body.

``Loop`` becomes:

* a ``scan`` when it is *counted*: the trip count ``M`` is known at import time (a number or a
  symbolic dim) and the condition cannot stop it early (``cond`` absent or constant true, and the
  body's ``cond_out`` is ``cond_in`` passed through or a constant true). The iteration number, when
  the body reads it, is a counter carry; scan outputs become the scan's stacked ``ys``.
* otherwise a ``while_loop`` whose carry is ``(i, cond, v...)``: its cond region is
  ``cond and i < M``, its body the ONNX body plus ``i + 1``; a static ``M`` is also its
  ``max_iterations``. A Loop with scan outputs that is not counted stacks a data-dependent number
  of rows: it needs ``M`` and ``cond`` at import time (:class:`NeedsConstantError`, which the onnx
  backend answers by specialising on the fed values), or is refused.

``Scan`` (opset 9+) maps its axes to a transpose before/after and its directions to ``reverse``
(or explicit flips when inputs and outputs disagree); opset 8's batched Scan becomes a scan over the
batch whose body is the scan over the sequence.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from graphforge.errors import LoadError, UnsupportedOpError
from graphforge.ir.graph import Block, Value
from graphforge.ir.types import TensorType

from .importer import NeedsConstantError, all_nodes, attrs_of, import_nodes, importer, unsupported
from .shape_values import as_dim, is_dims

__all__: list[str] = []

_END = -(2 ** 63)  # a slice end before the first element (for a reversed slice)


def _graph_attr(node, name: str):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    raise LoadError(f"{node.op_type} node {node.name!r} has no {name!r} attribute")


def _import_body(ctx, g, block: Block, bind: dict, out_names, finish=None) -> list:
    """Import subgraph ``g`` into ``block`` (a region): ``bind`` maps ONNX names to region arguments
    (Values) or import-time constants (arrays); the region yields the values named ``out_names``
    (through ``finish(values) -> values`` when given, which may emit more nodes). Returns the outer
    values the body captured, in the order of the arguments they got (at the block's front)."""
    saved = (ctx.values, ctx.consts, ctx.node_name)
    ctx.values, ctx.consts = dict(ctx.values), dict(ctx.consts)
    try:
        with ctx.builder.tracing_region(block, 0) as frame:
            for name, v in bind.items():
                if isinstance(v, np.ndarray):
                    ctx.values.pop(name, None)
                    ctx.consts[name] = v
                else:
                    ctx.consts.pop(name, None)
                    ctx.values[name] = v
            import_nodes(ctx, g.node)
            ctx.node_name = saved[2]
            results = [ctx.value(n) for n in out_names]
            if any(getattr(r, "_gf_aggregate", False) for r in results):  # sequences exist at import only
                raise UnsupportedOpError(f"a subgraph of node {saved[2]!r} returns a sequence/optional from a "
                                         "run-time region (If cond / Loop not known at import time)")
            if finish is not None:
                results = finish(results)
            ctx.builder.emit_yield(results)
        return list(frame.captured)
    finally:
        ctx.values, ctx.consts, ctx.node_name = saved


def _same_operands(regions: list[tuple[Block, list]]) -> list:
    """Give every region the same leading captured arguments (the union, in first-seen order);
    returns the outer values to pass as the op's leading operands."""
    order, seen = [], set()
    for _, caps in regions:
        for v in caps:
            if id(v) not in seen:
                seen.add(id(v))
                order.append(v)
    for block, caps in regions:
        have = {id(v): arg for v, arg in zip(caps, block.arguments[:len(caps)])}
        rest = block.arguments[len(caps):]
        leading = []
        for v in order:
            arg = have.get(id(v))
            if arg is None:  # read only by another region: an unused argument here
                arg = Value(v.type, kind="arg")
            leading.append(arg)
        block.arguments[:] = leading + rest
    return order


def _emit(ctx, op: str, inputs, attrs: dict, regions) -> list:
    with ctx.builder.provenance(ctx.node_name, ""):
        return list(ctx.builder.emit(op, inputs, attrs, regions=regions))


def _scalar_value(ctx, v, what: str, node):
    """``v`` (a one-element tensor) as a 0-d tensor."""
    shape = v.type.shape
    if shape == ():
        return v
    if all(isinstance(d, int) for d in shape) and int(np.prod(shape)) == 1:
        return ctx.emit("reshape", [v], shape=[])
    unsupported(node, f"{what} must hold one element, got {v.type}")


def _static_bool(arr):
    if arr is None or is_dims(arr) or arr.size != 1:
        return None
    return bool(arr.reshape(-1)[0])


# ---- If ---------------------------------------------------------------------------------------------

@importer("If")
def _if(ctx, node):
    then_g, else_g = _graph_attr(node, "then_branch"), _graph_attr(node, "else_branch")
    if len(then_g.output) != len(else_g.output):
        raise LoadError(f"If node {node.name!r}: then_branch has {len(then_g.output)} outputs, else_branch "
                        f"{len(else_g.output)}")
    known = _static_bool(ctx.const(node.input[0]))
    if known is not None:  # the branch is decided at import time: its nodes, inline
        return _inline(ctx, then_g if known else else_g)
    if any(o.type.WhichOneof("value") in ("sequence_type", "optional_type") for o in then_g.output):
        # sequences/optionals exist at import time only (sequences.py): the branch must be known
        raise NeedsConstantError(f"If node {node.name!r}: it returns a sequence/optional, so its cond must be "
                                 "known at import time", tensor=node.input[0], op="If")
    pred = _scalar_value(ctx, ctx.input(node, 0), "If's cond", node)
    regions = []
    for g in (then_g, else_g):
        block = Block()
        caps = _import_body(ctx, g, block, {}, [o.name for o in g.output])
        regions.append((block, caps))
    operands = _same_operands(regions)
    return _emit(ctx, "cond", [pred] + operands, {}, [b for b, _ in regions])


def _inline(ctx, g) -> list:
    saved = (ctx.values, ctx.consts, ctx.node_name)
    ctx.values, ctx.consts = dict(ctx.values), dict(ctx.consts)
    try:
        import_nodes(ctx, g.node)
        outs = []
        for o in g.output:  # keep import-time constants as such (a Known stays foldable downstream)
            outs.append(ctx.consts[o.name] if o.name in ctx.consts and o.name not in ctx.values else ctx.value(o.name))
        return outs
    finally:
        ctx.values, ctx.consts, ctx.node_name = saved


# ---- Scan -------------------------------------------------------------------------------------------

def _reverse0(ctx, v):
    return ctx.emit("slice", [v], starts=[-1], ends=[_END], axes=[0], steps=[-1])


def _axis(ax: int, rank: int, node, what: str) -> int:
    if not -rank <= ax < rank:
        raise LoadError(f"Scan node {node.name!r}: {what} {ax} is out of range for rank {rank}")
    return ax % rank


@importer("Scan")
def _scan(ctx, node):
    a = attrs_of(node)
    body = a["body"]
    m = int(a["num_scan_inputs"])
    if ctx.opset < 9:
        return _scan8(ctx, node, body, m, a)
    ins = [ctx.input(node, i) for i in range(len(node.input))]
    n = len(ins) - m
    if n < 0 or len(body.input) != len(ins):
        raise LoadError(f"Scan node {node.name!r}: {len(ins)} inputs, num_scan_inputs={m}, body takes "
                        f"{len(body.input)}")
    k = len(body.output) - n
    init, xs = ins[:n], ins[n:]
    in_axes = list(a.get("scan_input_axes", [0] * m))
    in_dirs = list(a.get("scan_input_directions", [0] * m))
    out_axes = list(a.get("scan_output_axes", [0] * k))
    out_dirs = list(a.get("scan_output_directions", [0] * k))
    if len(in_axes) != m or len(in_dirs) != m or len(out_axes) != k or len(out_dirs) != k or k < 0:
        raise LoadError(f"Scan node {node.name!r}: axes/directions attributes do not match its inputs/outputs")
    dirs = set(in_dirs + out_dirs)
    if not dirs <= {0, 1}:
        raise LoadError(f"Scan node {node.name!r}: directions must be 0 or 1, got {sorted(dirs)}")
    reverse = dirs == {1}
    lead = []
    for x, ax, d in zip(xs, in_axes, in_dirs):
        ax = _axis(int(ax), len(x.type.shape), node, "scan_input_axes entry")
        if ax:
            perm = [ax] + [i for i in range(len(x.type.shape)) if i != ax]
            x = ctx.emit("transpose", [x], perm=perm)
        if d == 1 and not reverse:
            x = _reverse0(ctx, x)
        lead.append(x)
    length = lead[0].type.shape[0]
    block = Block()
    carry = [block.add_argument(v.type) for v in init]
    slices = [block.add_argument(x.type.with_shape(x.type.shape[1:])) for x in lead]
    bind = dict(zip([i.name for i in body.input], carry + slices))
    caps = _import_body(ctx, body, block, bind, [o.name for o in body.output])
    outs = _emit(ctx, "scan", caps + init + lead,
                 {"num_consts": len(caps), "num_carry": n, "length": length, "reverse": reverse}, [block])
    ys = []
    for y, ax, d in zip(outs[n:], out_axes, out_dirs):
        if d == 1 and not reverse:
            y = _reverse0(ctx, y)
        rank = len(y.type.shape)
        ax = _axis(int(ax), rank, node, "scan_output_axes entry")
        if ax:
            perm = list(range(1, rank))
            perm.insert(ax, 0)
            y = ctx.emit("transpose", [y], perm=perm)
        ys.append(y)
    return outs[:n] + ys


def _scan8(ctx, node, body, m: int, a: dict):
    """Opset 8: ``Scan(sequence_lens?, state..., xs...)`` with a leading batch axis on everything:
    a scan over the batch whose body scans each sequence."""
    if ctx.has(node, 0):
        unsupported(node, "Scan-8 sequence_lens (per-batch lengths) is not supported")
    ins = [ctx.input(node, i) for i in range(1, len(node.input))]
    n = len(ins) - m
    k = len(body.output) - n
    dirs = list(a.get("directions", [0] * m))
    if n < 0 or k < 0 or len(dirs) != m or not set(dirs) <= {0, 1}:
        raise LoadError(f"Scan node {node.name!r}: inputs/directions do not match num_scan_inputs={m}")
    batch = ins[0].type.shape[0]
    outer = Block()
    b_args = [outer.add_argument(v.type.with_shape(v.type.shape[1:])) for v in ins]
    inner = Block()
    carry = [inner.add_argument(v.type) for v in b_args[:n]]
    slices = [inner.add_argument(x.type.with_shape(x.type.shape[1:])) for x in b_args[n:]]
    bind = dict(zip([i.name for i in body.input], carry + slices))
    with ctx.builder.tracing_region(outer, 0) as frame:
        caps = _import_body(ctx, body, inner, bind, [o.name for o in body.output])
        # Scan-8's directions reverse how an input is read only: its outputs stack in step order
        seqs = [_reverse0(ctx, x) if d else x for x, d in zip(b_args[n:], dirs)]
        res = _emit(ctx, "scan", caps + b_args[:n] + seqs, {"num_consts": len(caps), "num_carry": n,
                                                            "length": b_args[n].type.shape[0] if m else 0},
                    [inner])
        ctx.builder.emit_yield(res)
    outs = _emit(ctx, "scan", list(frame.captured) + ins,
                 {"num_consts": len(frame.captured), "num_carry": 0, "length": batch}, [outer])
    return outs


# ---- Loop -------------------------------------------------------------------------------------------

def _cond_stays_true(ctx, body) -> bool:
    """Whether the body's ``cond_out`` is ``cond_in`` passed through (Identity) or a constant true."""
    producers = {o: n for n in body.node for o in n.output}
    name, cond_in = body.output[0].name, body.input[1].name
    for _ in range(len(body.node) + 1):
        if name == cond_in:
            return True
        p = producers.get(name)
        if p is None:
            return _static_bool(ctx.const(name)) is True
        if p.op_type == "Identity":
            name = p.input[0]
            continue
        if p.op_type == "Constant":
            attrs = attrs_of(p)
            if "value" in attrs:
                from onnx import numpy_helper

                return _static_bool(numpy_helper.to_array(attrs["value"])) is True
            return bool(attrs.get("value_int", 0))
        return False
    return False


@importer("Loop")
def _loop(ctx, node):
    body = _graph_attr(node, "body")
    has_m, has_c = ctx.has(node, 0), ctx.has(node, 1)
    # a carried sequence/optional (sequences.py) stays an import-time tuple: such a Loop is unrolled below
    init = [ctx.values[node.input[i]] if getattr(ctx.values.get(node.input[i]), "_gf_aggregate", False)
            else ctx.input(node, i) for i in range(2, len(node.input))]
    n = len(init)
    k = len(body.output) - 1 - n
    if k < 0 or len(body.input) != 2 + n:
        raise LoadError(f"Loop node {node.name!r}: body takes {len(body.input)} inputs and gives "
                        f"{len(body.output)} outputs for {n} loop-carried values")
    m_arr = ctx.const(node.input[0]) if has_m else None
    c_known = _static_bool(ctx.const(node.input[1])) if has_c else True
    length = None
    if m_arr is not None and m_arr.size == 1:
        item = m_arr.reshape(-1)[0]
        length = as_dim(item) if is_dims(m_arr) else max(int(item), 0)
    if c_known is False:
        length = 0  # the loop never runs
    counted = length is not None and c_known is not None and _cond_stays_true(ctx, body)
    if any(getattr(v, "_gf_aggregate", False) for v in init):
        if has_m and length is None:
            raise NeedsConstantError(f"Loop node {node.name!r}: it carries a sequence/optional, so its trip count "
                                     "must be known at import time", tensor=node.input[0], op="Loop")
        if has_c and c_known is None:
            raise NeedsConstantError(f"Loop node {node.name!r}: it carries a sequence/optional, so its initial "
                                     "condition must be known at import time", tensor=node.input[1], op="Loop")
        if not counted or not isinstance(length, int) or length > UNROLL_MAX:
            unsupported(node, f"a Loop carrying a sequence/optional is unrolled at import time, which needs a "
                              f"counted loop of at most {UNROLL_MAX} steps")
        return _unrolled(ctx, node, body, init, length)
    if counted:
        return _loop_as_scan(ctx, node, body, init, length)
    if k:  # stacked outputs of a data-dependent length
        if has_m and length is None:
            raise NeedsConstantError(f"Loop node {node.name!r}: its trip count must be known at import time "
                                     "to stack its scan outputs", tensor=node.input[0], op="Loop")
        if has_c and c_known is None:
            raise NeedsConstantError(f"Loop node {node.name!r}: its initial condition must be known at import "
                                     "time to stack its scan outputs", tensor=node.input[1], op="Loop")
        unsupported(node, "scan outputs of a Loop whose own condition may end it early have a data-dependent "
                          "length; graphforge types need it known (a counted Loop imports as a scan)")
    return _loop_as_while(ctx, node, body, init, length if has_m else None)


def _loop_as_scan(ctx, node, body, init, length):
    """A counted Loop as a scan of ``length`` steps. The iteration number, when the body reads it,
    is one more carry counting up (not a scanned ``arange``: no memory in the trip count)."""
    n = len(init)
    counts = any(body.input[0].name in inner.input for inner in all_nodes(body))
    block = Block()
    it = block.add_argument(TensorType((), "int64")) if counts else None
    carry = [block.add_argument(v.type) for v in init]
    bind = {body.input[1].name: np.array(True)}
    if counts:
        bind[body.input[0].name] = it
    bind.update(zip([i.name for i in body.input[2:]], carry))

    def finish(results):  # the counter steps on after the body
        return ([ctx.emit("add", [it, ctx.scalar(1, "int64")])] if counts else []) + results

    try:
        caps = _import_body(ctx, body, block, bind, [o.name for o in body.output[1:]], finish)
    except NeedsConstantError:
        # the body needs a value at import time that varies per iteration (a Slice start computed
        # from the iteration number): a short counted loop is unrolled, one body copy per step
        _discard(block)
        if not isinstance(length, int) or length > UNROLL_MAX:
            raise
        return _unrolled(ctx, node, body, init, length)
    start = [ctx.scalar(0, "int64")] if counts else []
    outs = _emit(ctx, "scan", caps + start + init,
                 {"num_consts": len(caps), "num_carry": n + len(start), "length": length}, [block])
    return outs[len(start):]


UNROLL_MAX = 64
"""The longest counted Loop unrolled when its body needs the iteration number at import time."""
BOUND_MAX = 1024
"""The largest static trip count an imported while-style Loop passes on as ``max_iterations``."""


def _discard(block: Block) -> None:
    """Erase what a failed body import left in ``block`` (so no outer value keeps uses from it)."""
    for n in reversed(list(block)):
        block.erase(n)


def _unrolled(ctx, node, body, init, length: int) -> list:
    carry, rows = list(init), []
    for i in range(length):
        saved = (ctx.values, ctx.consts, ctx.node_name)
        ctx.values, ctx.consts = dict(ctx.values), dict(ctx.consts)
        try:
            ctx.consts[body.input[0].name] = np.array(i, dtype=np.int64)
            ctx.consts[body.input[1].name] = np.array(True)
            for name, v in zip([x.name for x in body.input[2:]], carry):
                ctx.consts.pop(name, None)
                ctx.values[name] = v
            import_nodes(ctx, body.node)
            outs = [ctx.value(o.name) for o in body.output[1:]]
        finally:
            ctx.values, ctx.consts, ctx.node_name = saved
        carry = outs[:len(init)]
        rows.append(outs[len(init):])
    stacked = []
    for k, o in enumerate(body.output[1 + len(init):]):
        parts = [ctx.emit("unsqueeze", [r[k]], axes=[0]) for r in rows]
        if not parts:
            unsupported(node, "an unrolled Loop of 0 iterations has no rows to give its scan outputs a shape")
        stacked.append(parts[0] if len(parts) == 1 else ctx.emit("concat", parts, axis=0))
    return carry + stacked


def _loop_as_while(ctx, node, body, init, static_m):
    scalar_i = TensorType((), "int64")
    i0 = ctx.scalar(0, "int64")
    c0 = ctx.scalar(True, "bool") if not ctx.has(node, 1) else \
        ctx.cast(_scalar_value(ctx, ctx.input(node, 1), "Loop's cond", node), "bool")
    m = ctx.cast(_scalar_value(ctx, ctx.input(node, 0), "Loop's M", node), "int64") if ctx.has(node, 0) else None
    carry_types = [scalar_i, TensorType((), "bool")] + [v.type for v in init]

    cond_block = Block()
    args = [cond_block.add_argument(t) for t in carry_types]
    saved = ctx.node_name
    with ctx.builder.tracing_region(cond_block, 0) as cond_frame:
        go = args[1]
        if m is not None:
            go = ctx.emit("logical_and", [go, ctx.emit("less", [args[0], m])])
        ctx.builder.emit_yield([go])
    ctx.node_name = saved

    body_block = Block()
    b_args = [body_block.add_argument(t) for t in carry_types]
    bind = dict(zip([i.name for i in body.input], b_args))

    def finish(results):
        step = ctx.emit("add", [b_args[0], ctx.scalar(1, "int64")])
        again = ctx.cast(_scalar_value(ctx, results[0], "Loop's cond_out", node), "bool")
        return [step, again] + results[1:]

    caps = _import_body(ctx, body, body_block, bind, [o.name for o in body.output], finish)
    operands = _same_operands([(cond_block, list(cond_frame.captured)), (body_block, caps)])
    # A static M also bounds the loop (max_iterations: differentiable, a scan on JAX) when it is small;
    # a huge M (INT64_MAX as "no limit", with a data-dependent cond) stays only the cond's i < M.
    limit = static_m if isinstance(static_m, int) and static_m <= BOUND_MAX else -1
    outs = _emit(ctx, "while_loop", operands + [i0, c0] + init,
                 {"num_consts": len(operands), "max_iterations": limit}, [cond_block, body_block])
    return outs[2:]
