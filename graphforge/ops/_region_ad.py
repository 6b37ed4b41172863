"""Region helpers the control-flow ops share: copying and inlining a region, tracing branch bodies
with automatic capture, and the reverse sweep that differentiates a region's nodes.

Region op VJPs (``cond``, ``scan``, ``while_loop``) are written with graphforge ops like every VJP:
they build new region ops whose bodies are the VJP of the forward body, so the differentiation of a
region is this module's :func:`block_vjp` run inside a region being traced. The top-level sweep of
``gf.grad`` (passes/autodiff.py) works the same way on the graph's own nodes.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .. import dtypes as _dt
from ..errors import GraphforgeError, UnsupportedOpError
from ..ir.graph import YIELD, Block, Node, Value, _copy_block
from ..ir.types import TensorType
from ..trace.builder import Builder
from ..trace.tensor import Tensor
from .registry import NOT_DIFFERENTIABLE, get_op

__all__ = ["copy_region", "inline_region", "trace_regions", "reverse_sweep", "block_vjp", "zeros_value",
           "is_float_type"]


def is_float_type(t: TensorType) -> bool:
    return _dt.is_float(t.dtype)


def copy_region(region: Block) -> Block:
    """A structural copy of a region (fresh arguments and nodes). Regions are closed under the
    explicit capture rule, so a copy needs no outer mapping."""
    mapping: dict[int, Value] = {}
    args = [Value(a.type, name=None, kind="arg") for a in region.arguments]
    mapping.update((id(a), b) for a, b in zip(region.arguments, args))
    block = Block(None, args)
    _copy_block(region, block, mapping)
    for node in block.walk():  # copied values are anonymous: names stay unique in the graph
        for out in node.outputs:
            out.name = None
        for inner in node.regions:
            for a in inner.arguments:
                a.name = None
    return block


def inline_region(builder: Builder, region: Block, args: Sequence[Value],
                  mapping: dict[int, Value] | None = None) -> tuple[list[Value], list[tuple]]:
    """Emit ``region``'s nodes at the builder's insertion point with its arguments bound to ``args``.

    Returns the values it yields and, per emitted node, ``(original node, new node)``. Nodes whose
    outputs ``mapping`` already holds are not emitted (their values are reused: saved residuals)."""
    mapping = dict(mapping or {})
    mapping.update((id(a), v) for a, v in zip(region.arguments, args))
    pairs = []
    for node in region:
        if node.op == YIELD:
            return [mapping[id(v)] for v in node.inputs], pairs
        if node.outputs and all(id(o) in mapping for o in node.outputs):
            pairs.append((node, None))
            continue
        with builder.provenance(node.scope, node.loc):
            outs = builder.emit(node.op, [mapping[id(v)] for v in node.inputs], dict(node.attrs),
                                regions=[copy_region(r) for r in node.regions] or None)
        for old, new in zip(node.outputs, outs):
            mapping[id(old)] = new
        pairs.append((node, outs[0].producer if outs else None))
    raise GraphforgeError(f"a region of {region.owner.op if region.owner else 'a node'} does not end with 'yield'")


def trace_regions(builder: Builder, arg_types: Sequence[Sequence[TensorType]],
                  bodies: Sequence[Callable[[list[Value]], list[Value]]], capture_at: int) -> tuple[list[Block], list[Value]]:
    """Trace sibling regions that share one operand list (cond's branches, while's cond and body).

    ``bodies[k](args)`` emits region ``k``'s nodes on its argument Values and returns the values to
    yield. Outer values a body reads are captured; the union of every region's captures (in first
    capture order) becomes extra arguments at ``capture_at`` in every region (unused where a region
    did not need one). Returns (blocks, captured outer values)."""
    blocks, frames = [], []
    for types, body in zip(arg_types, bodies):
        block = Block(None, [Value(t, kind="arg") for t in types])
        with builder.tracing_region(block, capture_at) as frame:
            results = body(list(block.arguments[:len(types)]))
            builder.emit_yield(results)
        blocks.append(block)
        frames.append(frame)
    captured: list[Value] = []
    seen: dict[int, int] = {}
    for frame in frames:
        for v in frame.captured:
            if id(v) not in seen:
                seen[id(v)] = len(captured)
                captured.append(v)
    if captured:
        for block, frame in zip(blocks, frames):
            n_cap = len(frame.captured)
            own = {id(outer): arg for outer, arg in zip(frame.captured, block.arguments[capture_at:capture_at + n_cap])}
            head = block.arguments[:capture_at]
            tail = block.arguments[capture_at + n_cap:]
            caps = [own.get(id(v)) or Value(v.type, kind="arg") for v in captured]
            block.arguments[:] = head + caps + tail
    return blocks, captured


def zeros_value(builder: Builder, t: TensorType) -> Value:
    """A zero tensor of type ``t`` (symbolic dims allowed): a symbolic zero made concrete."""
    zero = builder.emit1("constant", [], {"value": np.zeros((), dtype=_dt.to_numpy_dtype(t.dtype))})
    if not t.shape:
        return zero
    return builder.emit1("broadcast_to", [zero], {"shape": list(t.shape)})


def reverse_sweep(builder: Builder, steps: Sequence[tuple], cotangents: dict[int, Value],
                  requires: set[int], *, relocate_errors: bool = False) -> None:
    """Reverse-mode sweep over ``steps`` = ``(node, input values, output values)`` in forward order:
    each op's VJP rule is emitted for the nodes whose results carry a cotangent, and the input
    cotangents of the values in ``requires`` are accumulated into ``cotangents`` (by id).

    A typed error raised by a VJP rule is re-raised at the node being differentiated ("while
    differentiating: ..."); inside a region an error that already names an op (an inner node's)
    keeps it, while the top-level sweep (``relocate_errors``) always reports the user's node."""
    for node, ins, outs in reversed(steps):
        if not any(id(o) in requires for o in outs):
            continue
        out_cots = [cotangents.get(id(o)) for o in outs]
        if all(c is None for c in out_cots):
            continue
        opdef = get_op(node.op)
        if opdef.vjp is NOT_DIFFERENTIABLE:
            continue
        if opdef.vjp is None:
            raise UnsupportedOpError(f"op {node.op!r} has no VJP rule, so gradients cannot flow through it",
                                     ops=[node.op], scope=node.scope, op=node.op, loc=node.loc)
        extra = {"node": node} if opdef.regions else {}
        with builder.provenance(node.scope, node.loc):
            try:
                in_cots = opdef.vjp([Tensor(v, builder) for v in ins], [Tensor(o, builder) for o in outs],
                                    [None if c is None else Tensor(c, builder) for c in out_cots],
                                    node.attrs, **extra)
            except GraphforgeError as exc:
                if exc.op is not None and not relocate_errors:
                    raise
                raise type(exc)(f"while differentiating: {exc.detail}", scope=node.scope, op=node.op,
                                loc=node.loc) from None
            if len(in_cots) != len(ins):
                raise GraphforgeError(f"VJP rule of {node.op} returned {len(in_cots)} cotangents for "
                                      f"{len(ins)} inputs", op=node.op)
            for i, (value, cot) in enumerate(zip(ins, in_cots)):
                if cot is None or id(value) not in requires or i in opdef.nondiff_inputs:
                    continue
                cot_value = cot.value if isinstance(cot, Tensor) else cot
                if cot_value.type != value.type:
                    raise GraphforgeError(f"VJP rule of {node.op} gave a cotangent of type {cot_value.type} "
                                          f"for input {i} of type {value.type}", op=node.op,
                                          scope=node.scope, loc=node.loc)
                previous = cotangents.get(id(value))
                cotangents[id(value)] = cot_value if previous is None else builder.emit1("add", [previous, cot_value])


def block_vjp(builder: Builder, region: Block, args: Sequence[Value], result_cots: Sequence[Value | None],
              saved: dict[int, Value] | None = None) -> list[Value | None]:
    """Cotangents of ``region``'s arguments (None = zero) given cotangents of its results, emitted at
    the builder's insertion point: the region's forward nodes are inlined on ``args`` (or, for
    values in ``saved`` — original value id -> saved value — taken from there instead of
    recomputed), then its nodes' VJP rules run in reverse."""
    mapping = dict(saved or {})
    results, pairs = inline_region(builder, region, args, mapping)
    # Bind every original value to the one it stands for in this copy.
    for a, v in zip(region.arguments, args):
        mapping[id(a)] = v
    steps = []
    for old, new in pairs:
        if new is None:
            steps.append((old, [mapping[id(v)] for v in old.inputs], [mapping[id(o)] for o in old.outputs]))
        else:
            mapping.update((id(o), n) for o, n in zip(old.outputs, new.outputs))
            steps.append((new, list(new.inputs), list(new.outputs)))
    requires = {id(v) for v in args if is_float_type(v.type)}
    for node, ins, outs in steps:
        if any(id(v) in requires for v in ins):
            requires.update(id(o) for o in outs if is_float_type(o.type))
    cotangents: dict[int, Value] = {}
    for value, cot in zip(results, result_cots):
        if cot is None or id(value) not in requires:
            continue
        previous = cotangents.get(id(value))
        cotangents[id(value)] = cot if previous is None else builder.emit1("add", [previous, cot])
    reverse_sweep(builder, steps, cotangents, requires)
    return [cotangents.get(id(v)) for v in args]
