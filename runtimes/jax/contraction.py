"""JAX lowering of ``einsum`` (``graphforge/ops/contraction.py``): pairwise contractions along the
op's greedy path, each one ``lax.dot_general`` (batch letters = shared and kept, contracting letters
= shared and not needed later); a letter one operand alone sums, or a repeated letter (a diagonal),
is reduced first with a one-operand ``jnp.einsum``."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from graphforge.ops.contraction import contraction_path, split_equation

from .lower import lowers, upcast

__all__: list[str] = []


def _reduce_to(x, subs, keep):
    """Sum/diagonalise ``x`` (subscripts ``subs``) down to the letters of ``keep`` (in subs order)."""
    want = "".join(c for c in dict.fromkeys(subs) if c in keep)
    if want == subs:
        return x, subs
    return jnp.einsum(f"{subs}->{want}", x), want


def _contract(a, sa, b, sb, keep, precision):
    """dot_general of a pair; the result's subscripts: batch, a's free, b's free letters."""
    a, sa = _reduce_to(a, sa, set(sb) | set(keep))
    b, sb = _reduce_to(b, sb, set(sa) | set(keep))
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    dims = (([sa.index(c) for c in contract], [sb.index(c) for c in contract]),
            ([sa.index(c) for c in batch], [sb.index(c) for c in batch]))
    y = lax.dot_general(a, b, dims, precision=precision)
    return y, "".join(batch) + "".join(c for c in sa if c not in sb) + "".join(c for c in sb if c not in sa)


@lowers("einsum")
def _einsum(ctx, args, attrs):
    subs, out = split_equation(attrs["equation"])
    work = [(upcast(x), s) for x, s in zip(args, subs)]
    for i, j, keep in contraction_path(subs, out, [x.shape for x in args]):
        (a, sa), (b, sb) = work[i], work[j]
        y = _contract(a, sa, b, sb, keep, ctx.precision)
        work = [w for k, w in enumerate(work) if k not in (i, j)] + [y]
    (y, sy), = work
    y, sy = _reduce_to(y, sy, set(out))
    if sy != out:
        y = jnp.transpose(y, [sy.index(c) for c in out])
    return [y.astype(ctx.dtype)]
