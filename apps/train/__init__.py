"""Training: ``gf.Trainer`` (fit / evaluate / predict / checkpoints) and ``plot_history``.

The train step is the ``gf.grad`` graph of the loss (with metrics and BatchNorm ``update:``
outputs kept) lowered to JAX, followed by an optax update, jitted with donated buffers.
jax and optax are imported lazily (``import graphforge`` loads neither)."""
from . import callbacks
from .trainer import Trainer, plot_history

__all__ = ["Trainer", "plot_history", "callbacks"]
