"""JAX lowerings of the control-flow ops: ``cond`` → ``lax.cond``, ``scan`` → ``lax.scan``,
``while_loop`` → ``lax.while_loop``, or, when ``max_iterations`` bounds it, a ``lax.scan`` of that many
steps with a done flag (differentiable by ``jax.grad``, like graphforge's own VJP of it).

A region is lowered by :func:`lower_block` into a Python function of its arguments that applies the
lowerings of its nodes (nested regions recursively); XLA then sees structured control flow. Region
arguments are the only inputs (explicit capture), so bodies close over nothing but constants.
Carries are converted to their exact IR dtype at the loop boundary, since ``lax`` loops refuse a
body whose results differ from the carry even only in JAX's "weak type" flag.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from jax import lax

from graphforge import dtypes as _dt
from graphforge.errors import BackendError
from graphforge.ir.dims import resolve_dim, resolve_shape
from graphforge.ir.graph import YIELD

from .lower import LowerCtx, apply_lowering, lowers

__all__ = ["lower_block"]


def lower_block(block, env: Mapping[str, int], precision):
    """``fn(args: list) -> list`` evaluating the region ``block`` with the JAX lowerings."""
    from . import _concrete_attrs

    plan, results = [], None
    for node in block:
        if node.op == YIELD:
            results = list(node.inputs)
            break
        shapes = [tuple(resolve_shape(v.type.shape, env)) for v in node.outputs]
        plan.append((node, LowerCtx(node, shapes, precision, env), _concrete_attrs(node, env)))
    if results is None:
        raise BackendError("a region without 'yield' cannot be lowered")
    dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in results]

    def fn(args):
        vals = {id(a): x for a, x in zip(block.arguments, args)}
        for node, ctx, attrs in plan:
            res = apply_lowering(node, ctx, [vals[id(v)] for v in node.inputs], attrs)
            for v, r in zip(node.outputs, res):
                vals[id(v)] = r
        return [_exact(vals[id(v)], d) for v, d in zip(results, dtypes)]

    return fn


def _exact(x, dtype):
    return lax.convert_element_type(jnp.asarray(x), dtype)


def _truth(pred):
    return pred if pred.dtype == jnp.bool_ else pred != 0


@lowers("cond")
def _cond(ctx, args, attrs):
    then, other = ctx.node.regions
    f_then = lower_block(then, ctx.env, ctx.precision)
    f_else = lower_block(other, ctx.env, ctx.precision)
    ops = tuple(args[1:])
    out = lax.cond(_truth(args[0]), lambda *a: tuple(f_then(list(a))), lambda *a: tuple(f_else(list(a))), *ops)
    return list(out)


@lowers("scan")
def _scan(ctx, args, attrs):
    (body,) = ctx.node.regions
    nc, nk = attrs.get("num_consts", 0), attrs["num_carry"]
    consts, init, xs = args[:nc], args[nc:nc + nk], args[nc + nk:]
    f = lower_block(body, ctx.env, ctx.precision)
    length = attrs["length"]
    length = resolve_dim(length, ctx.env) if isinstance(length, str) else int(length)
    carry_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in ctx.node.outputs[:nk]]

    def step(carry, x):
        outs = f(list(consts) + list(carry) + list(x))
        return tuple(outs[:nk]), tuple(outs[nk:])

    if attrs.get("remat"):
        step = jax.checkpoint(step)
    carry0 = tuple(_exact(c, d) for c, d in zip(init, carry_dtypes))
    final, ys = lax.scan(step, carry0, tuple(xs), length=length, reverse=bool(attrs.get("reverse", False)))
    return list(final) + list(ys)


@lowers("while_loop")
def _while(ctx, args, attrs):
    cond_r, body = ctx.node.regions
    nc = attrs.get("num_consts", 0)
    consts, init = list(args[:nc]), args[nc:]
    f_cond = lower_block(cond_r, ctx.env, ctx.precision)
    f_body = lower_block(body, ctx.env, ctx.precision)
    carry_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in ctx.node.outputs]
    carry0 = tuple(_exact(c, d) for c, d in zip(init, carry_dtypes))
    limit = attrs.get("max_iterations", -1)
    if limit < 0:
        out = lax.while_loop(lambda c: f_cond(consts + list(c))[0], lambda c: tuple(f_body(consts + list(c))), carry0)
        return list(out)

    # Bounded: a scan of max_iterations steps carrying a done flag (the body runs under lax.cond
    # only while not done), so that jax.grad of the lowered program works like graphforge's VJP.
    def step(state, _):
        done, c = state
        go = jnp.logical_and(jnp.logical_not(done), f_cond(consts + list(c))[0])
        c = lax.cond(go, lambda cc: tuple(f_body(consts + list(cc))), lambda cc: tuple(cc), c)
        return (jnp.logical_not(go), c), None

    (_, out), _ = lax.scan(step, (jnp.asarray(False), carry0), None, length=limit)
    return list(out)
