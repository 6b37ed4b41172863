"""Mixed-precision training for ``gf.Trainer``: the policy object and fp16 dynamic loss scaling.

``Trainer(..., precision="bf16-mixed")`` (or ``"fp16-mixed"``, or a :class:`MixedPrecision`)
trains with float32 master weights and optimizer state while the model computes in the half type
(the ``mixed_precision`` pass). float16's narrow range makes small gradients underflow, so fp16
scales the loss by ``S`` before the backward pass and divides the gradients by ``S`` after it:
:func:`dynamic_loss_scale` wraps the optax optimizer so that the scale lives in the optimizer state
(it is checkpointed and sharded with it) and a step whose gradients are not all finite is skipped —
params and inner optimizer state unchanged — and halves ``S``; ``growth_interval`` finite steps in a
row double it. The plain precisions (``"default"``, ``"high"``, ``"highest"``) are XLA's matmul
precision for float32 training, as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..errors import ConfigError

__all__ = ["MixedPrecision", "resolve_precision", "dynamic_loss_scale", "LossScaleState", "MATMUL_PRECISIONS"]

MATMUL_PRECISIONS = ("default", "high", "highest")


@dataclass(frozen=True)
class MixedPrecision:
    """Compute in ``dtype`` ("bfloat16" or "float16") with float32 master weights.

    ``loss_scaling``: None = dynamic for float16, none for bfloat16 (same exponent range as
    float32). ``init_scale``, ``growth_interval``, ``growth_factor``, ``backoff_factor`` have
    PyTorch GradScaler's meanings and its defaults, except ``init_scale`` 2**15 (Keras's
    LossScaleOptimizer; PyTorch starts at 2**16 and halves on the first overflow)."""

    dtype: str = "bfloat16"
    loss_scaling: bool | None = None
    init_scale: float = 2.0 ** 15
    growth_interval: int = 2000
    growth_factor: float = 2.0
    backoff_factor: float = 0.5

    def __post_init__(self):
        if self.dtype not in ("bfloat16", "float16"):
            raise ConfigError(f"MixedPrecision(dtype={self.dtype!r}): use 'bfloat16' or 'float16'")
        if not (self.init_scale > 0 and self.growth_interval >= 1 and self.growth_factor > 1
                and 0 < self.backoff_factor < 1):
            raise ConfigError("MixedPrecision: need init_scale > 0, growth_interval >= 1, growth_factor > 1 "
                              "and 0 < backoff_factor < 1")

    @property
    def scaled(self) -> bool:
        return self.dtype == "float16" if self.loss_scaling is None else bool(self.loss_scaling)


_NAMED = {"bf16-mixed": MixedPrecision("bfloat16"), "fp16-mixed": MixedPrecision("float16")}


def resolve_precision(precision) -> tuple[str, MixedPrecision | None]:
    """``(matmul precision for XLA, mixed policy or None)`` from the Trainer's ``precision``."""
    if isinstance(precision, MixedPrecision):
        return "default", precision
    if isinstance(precision, str) and precision in _NAMED:
        return "default", _NAMED[precision]
    if isinstance(precision, str) and precision in MATMUL_PRECISIONS:
        return precision, None
    raise ConfigError(f"gf.Trainer: unknown precision {precision!r}",
                      hint="use 'bf16-mixed', 'fp16-mixed', a graphforge.train.MixedPrecision(...), or an "
                           f"XLA matmul precision for float32 training ({', '.join(MATMUL_PRECISIONS)})")


class LossScaleState(NamedTuple):
    """The wrapped optimizer's state: the inner state, the current scale, finite steps in a row,
    and whether the last step was skipped (for the history)."""

    inner: object
    scale: object
    good_steps: object
    skipped: object


def dynamic_loss_scale(optimizer, policy: MixedPrecision):
    """An optax GradientTransformation receiving *scaled* gradients: it unscales them, skips the
    step when any is not finite, and adapts the scale (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import optax

    def init(params):
        return LossScaleState(optimizer.init(params), jnp.asarray(policy.init_scale, jnp.float32),
                              jnp.asarray(0, jnp.int32), jnp.asarray(False))

    def update(grads, state, params=None):
        inv = 1.0 / state.scale
        grads = jax.tree_util.tree_map(lambda g: g * inv.astype(g.dtype), grads)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
        # the inner update sees zeros on a skipped step (no NaN enters its state); its result is dropped
        safe = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
        updates, inner = optimizer.update(safe, state.inner, params)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        inner = keep(inner, state.inner)
        updates = jax.tree_util.tree_map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        grown = state.good_steps + 1 >= policy.growth_interval
        scale = jnp.where(finite, jnp.where(grown, state.scale * policy.growth_factor, state.scale),
                          jnp.maximum(state.scale * policy.backoff_factor, 1.0)).astype(jnp.float32)
        good = jnp.where(finite & ~grown, state.good_steps + 1, 0).astype(jnp.int32)
        return updates, LossScaleState(inner, scale, good, ~finite)

    return optax.GradientTransformation(init, update)
