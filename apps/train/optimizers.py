"""Optimizers for ``gf.Trainer``: optax names with default learning rates, and the learning rate a
step used (for the history), read from an ``optax.inject_hyperparams`` state."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["OPTIMIZER_DEFAULTS", "resolve_optimizer", "learning_rate"]

# optimizer="name": the optax optimizer of that name with this learning rate (Keras's defaults:
# 1e-3 for the adaptive ones, 1e-2 for plain SGD)
OPTIMIZER_DEFAULTS = {"adam": 1e-3, "adamw": 1e-3, "adamax": 1e-3, "adamaxw": 1e-3, "nadam": 1e-3, "nadamw": 1e-3,
                      "radam": 1e-3, "amsgrad": 1e-3, "adabelief": 1e-3, "adagrad": 1e-3, "adadelta": 1e-3,
                      "rmsprop": 1e-3, "lamb": 1e-3, "lion": 1e-4, "novograd": 1e-3, "yogi": 1e-3, "sgd": 1e-2}


def resolve_optimizer(optimizer, learning_rate=None):
    """An optax GradientTransformation, or a ConfigError saying how to give one. A name is built
    with ``optax.inject_hyperparams`` so that its learning rate (a float or any optax schedule)
    is logged per step."""
    import optax

    if learning_rate is not None and not isinstance(optimizer, str):
        raise ConfigError("gf.Trainer: learning_rate= goes with an optimizer name (optimizer=\"adam\")",
                          hint="an optax transformation carries its own learning rate: optax.adam(schedule)")
    if isinstance(optimizer, str):
        name = optimizer.strip().lower()
        if name not in OPTIMIZER_DEFAULTS:
            import difflib
            close = difflib.get_close_matches(name, list(OPTIMIZER_DEFAULTS), n=3)
            raise ConfigError(f"gf.Trainer: unknown optimizer name {optimizer!r}"
                              + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""),
                              hint=f"use one of {', '.join(sorted(OPTIMIZER_DEFAULTS))}, or pass an optax "
                                   "transformation such as optimizer=optax.adam(3e-4)")
        lr = OPTIMIZER_DEFAULTS[name] if learning_rate is None else learning_rate
        if not (callable(lr) or isinstance(lr, (int, float))) or isinstance(lr, bool):
            raise ConfigError(f"gf.Trainer: learning_rate must be a number or an optax schedule, got {lr!r}")
        # float32 hyperparameters: under the trainer's scoped x64 a Python float would become a
        # float64 array and lift every update to float64
        return optax.inject_hyperparams(getattr(optax, name), hyperparam_dtype=np.float32)(learning_rate=lr)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise ConfigError(f"gf.Trainer: optimizer must be an optax GradientTransformation or an optax name, got "
                          f"{type(optimizer).__name__} {optimizer!r}",
                          hint="e.g. optimizer=optax.adam(1e-3) or optimizer=\"adam\"")
    return optimizer



def learning_rate(opt_state):
    """The learning rate an ``optax.inject_hyperparams`` optimizer used this step (None if the state
    exposes none); found by walking the state's containers, which are static under jit."""
    stack = [opt_state]
    while stack:
        node = stack.pop()
        hp = getattr(node, "hyperparams", None)
        if isinstance(hp, dict) and "learning_rate" in hp:
            return hp["learning_rate"]
        if isinstance(node, (tuple, list)):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(node.values())
    return None


