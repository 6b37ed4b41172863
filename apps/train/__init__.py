"""Training: ``gf.Trainer`` (fit / evaluate / predict / checkpoints), ``plot_history``,
``callbacks`` (early stopping, keep-best checkpoints, CSV/TensorBoard logs) and ``MultiTrainer``
(several models and optimizers, e.g. a GAN's generator and discriminator).

The train step is the ``gf.grad`` graph of the loss (with metrics and BatchNorm ``update:``
outputs kept) lowered to JAX, followed by an optax update, jitted with donated buffers.
jax and optax are imported lazily (``import graphforge`` loads neither)."""
from . import callbacks
from .multi import MultiTrainer, Task
from .trainer import Trainer, plot_history

__all__ = ["Trainer", "plot_history", "callbacks", "MultiTrainer", "Task"]
from .precision import MixedPrecision  # noqa: E402  (Trainer(precision=MixedPrecision(...)))

__all__ += ["MixedPrecision"]
