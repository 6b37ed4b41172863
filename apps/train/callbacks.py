"""``fit(..., callbacks=[...])``: the Keras/burn Learner feature set as small objects.

    from graphforge.train import callbacks        # also gf.callbacks
    trainer.fit(x, y, epochs=50, validation_data=(xv, yv), callbacks=[
        callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
        callbacks.BestCheckpoint("best/", monitor="val_accuracy"),
        callbacks.CSVLogger("history.csv"),
        callbacks.TensorBoard("runs/exp1", update_freq=10)])

A callback subclasses :class:`Callback` and overrides any of ``on_train_begin(trainer)``,
``on_epoch_begin(trainer, epoch)``, ``on_step_end(trainer, step, logs)``,
``on_epoch_end(trainer, epoch, logs)``, ``on_train_end(trainer)``. ``epoch`` counts from 0;
epoch-end ``logs`` are that epoch's history entries (floats); step ``logs`` hold the step's device
scalars (``float()`` waits for the step). Setting ``trainer.stop_training = True`` ends ``fit``
after the current step/epoch. ``on_step_end`` is called only for callbacks that define it, so
per-epoch callbacks add no per-step cost.
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["Callback", "CallbackList", "EarlyStopping", "BestCheckpoint", "CSVLogger", "TensorBoard",
           "LambdaCallback"]


class Callback:
    """Base class: every hook does nothing until overridden."""

    def on_train_begin(self, trainer) -> None:
        """Called at the start of ``fit``."""

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Called before the first step of an epoch."""

    def on_step_end(self, trainer, step: int, logs: dict) -> None:
        """Called after each step (only when a subclass defines it); ``logs`` holds device scalars."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        """Called after an epoch, its validation and checkpoint; ``logs`` are its history entries."""

    def on_train_end(self, trainer) -> None:
        """Called at the end of ``fit`` (also when a callback stopped it)."""


class CallbackList:
    """The callbacks of one ``fit``, each hook dispatched to those that define it.

    Args:
        callbacks: the ``Callback`` objects (None: none).
        trainer: the Trainer they observe.
    """

    def __init__(self, callbacks: Sequence | None, trainer):
        items = list(callbacks or [])
        for cb in items:
            if not isinstance(cb, Callback):
                raise ConfigError(f"fit: callbacks must be gf.callbacks.Callback instances, got "
                                  f"{type(cb).__name__}",
                                  hint="subclass gf.callbacks.Callback or wrap functions in gf.callbacks.LambdaCallback")
        self.trainer = trainer
        self.items = items
        self._step = [cb for cb in items if _wants_steps(cb)]

    @property
    def per_step(self) -> bool:
        return bool(self._step)

    def train_begin(self) -> None:
        for cb in self.items:
            cb.on_train_begin(self.trainer)

    def epoch_begin(self, epoch: int) -> None:
        for cb in self.items:
            cb.on_epoch_begin(self.trainer, epoch)

    def step_end(self, step: int, logs: dict) -> None:
        for cb in self._step:
            cb.on_step_end(self.trainer, step, logs)

    def epoch_end(self, epoch: int, logs: dict) -> None:
        for cb in self.items:
            cb.on_epoch_end(self.trainer, epoch, logs)

    def train_end(self) -> None:
        for cb in self.items:
            cb.on_train_end(self.trainer)


def _wants_steps(cb: Callback) -> bool:
    """Whether ``cb`` needs ``on_step_end``: its own say (``_wants_steps``, for the built-ins whose
    step logging is optional), else whether its class overrides the hook."""
    flag = getattr(cb, "_wants_steps", None)
    return bool(flag) if flag is not None else type(cb).on_step_end is not Callback.on_step_end


class _Monitor:
    """The shared "is this epoch better?" logic of EarlyStopping and BestCheckpoint."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":  # Keras's rule: accuracy-like quantities grow, everything else shrinks
            mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall", "f1")) else "min"
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise ConfigError(f"{self.owner} monitors {self.monitor!r}, but the epoch's logs hold only "
                              f"{', '.join(sorted(logs))}",
                              hint="val_* entries need fit(..., validation_data=(x, y)); or monitor one of those")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a history key (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``max`` for accuracy-like names, else ``min``).
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        restore_best_weights: put back the weights of the best epoch when stopping.

    Raises:
        ConfigError: a bad ``patience`` or ``mode``; at the first epoch end, a ``monitor`` the
            history does not have.

    Example:
        ```python
        stop = gf.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        trainer.fit(x, y, epochs=50, validation_data=(xv, yv), callbacks=[stop])
        ```
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self._m = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights = None

    @property
    def best(self) -> float:
        return self._m.best

    def on_train_begin(self, trainer) -> None:
        self.wait, self.stopped_epoch = 0, None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        value = self._m.value(logs)
        if self._m.improved(value):
            self._m.best, self._m.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = trainer.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore_best_weights and self._best_weights is not None and self.stopped_epoch is not None:
            trainer.load_state_dict(self._best_weights)


class BestCheckpoint(Callback):
    """Keep one checkpoint in ``directory``: that of the best epoch by ``monitor`` (resume or load it
    with ``trainer.load_checkpoint(directory)``). ``best``/``best_epoch``/``path`` say which.

    Args:
        directory: where the checkpoint is written.
        monitor: a history key (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``max`` for accuracy-like names, else ``min``).
        min_delta: the smallest change that counts as an improvement.

    Raises:
        ConfigError: a bad ``mode``; at the first epoch end, a ``monitor`` the history does not have.

    Example:
        ```python
        best = gf.callbacks.BestCheckpoint("best/", monitor="val_accuracy")
        trainer.fit(x, y, epochs=20, validation_data=(xv, yv), callbacks=[best])
        trainer.load_checkpoint("best/")
        ```
    """

    def __init__(self, directory: str, monitor: str = "val_loss", *, mode: str = "auto", min_delta: float = 0.0):
        self.directory = os.fspath(directory)
        self._m = _Monitor("BestCheckpoint", monitor, mode, min_delta)
        self.path: str | None = None

    @property
    def best(self) -> float:
        return self._m.best

    @property
    def best_epoch(self) -> int | None:
        return self._m.best_epoch

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        value = self._m.value(logs)
        if self._m.improved(value):
            self._m.best, self._m.best_epoch = value, epoch
            self.path = trainer.save_checkpoint(self.directory, keep=1)


class CSVLogger(Callback):
    """The history as CSV (``epoch`` then one column per history key), rewritten atomically after
    every epoch, so the file is complete at every moment and a resumed run continues it.

    Args:
        path: the CSV file.

    Raises:
        OSError: the file cannot be written (at an epoch end).

    Example:
        ```python
        trainer.fit(x, y, epochs=5, callbacks=[gf.callbacks.CSVLogger("history.csv")])
        ```
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        from graphforge.params_io import atomic_write_bytes

        history = trainer.history
        keys = list(history)
        rows = max((len(v) for v in history.values()), default=0)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch"] + keys)
        for i in range(rows):
            # a key that appeared later (val_* from a later fit with validation data) is aligned
            # with the last epochs and blank before
            w.writerow([i + 1] + [_cell(history[k], i - (rows - len(history[k]))) for k in keys])
        atomic_write_bytes(self.path, buf.getvalue().encode())


def _cell(values: list, i: int) -> str:
    return repr(float(values[i])) if 0 <= i < len(values) else ""


class TensorBoard(Callback):
    """TensorBoard event files in ``log_dir`` through ``tensorboardX`` (``pip install
    'graphforge[tensorboard]'``): every history entry per epoch as ``epoch/<key>``, and with
    ``update_freq=N`` the step's loss, grad norm and learning rate every N steps as ``step/<key>``
    (each such write waits for that step).

    Args:
        log_dir: the event-file directory (``tensorboard --logdir``).
        update_freq: ``"epoch"``, or N to also log every N-th step.

    Raises:
        ConfigError: tensorboardX is not installed, or a bad ``update_freq``.

    Example:
        ```python
        trainer.fit(x, y, epochs=5, callbacks=[gf.callbacks.TensorBoard("runs/exp1", update_freq=10)])
        ```
    """

    def __init__(self, log_dir: str, update_freq: int | str = "epoch"):
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ConfigError("gf.callbacks.TensorBoard needs tensorboardX",
                              hint="pip install 'graphforge[tensorboard]' (or pip install tensorboardX)") from None
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ConfigError(f"TensorBoard: update_freq must be 'epoch' or a positive int, got {update_freq!r}")
        self.log_dir, self.update_freq = os.fspath(log_dir), update_freq
        self._wants_steps = update_freq != "epoch"
        self._writer = None

    def _w(self):
        if self._writer is None:
            from tensorboardX import SummaryWriter
            self._writer = SummaryWriter(self.log_dir)
        return self._writer

    def on_step_end(self, trainer, step: int, logs: dict) -> None:
        if self.update_freq == "epoch" or step % self.update_freq:
            return
        w = self._w()
        for k, v in logs.items():
            w.add_scalar(f"step/{k}", float(np.asarray(v)), step)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        w = self._w()
        for k, v in logs.items():
            w.add_scalar(f"epoch/{k}", float(v), epoch + 1)
        w.flush()

    def on_train_end(self, trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _tensorboardx_available() -> bool:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


class LambdaCallback(Callback):
    """A callback from plain functions, each optional, with the signatures of :class:`Callback`'s hooks.

    Args:
        on_train_begin: ``fn(trainer)``.
        on_epoch_begin: ``fn(trainer, epoch)``.
        on_step_end: ``fn(trainer, step, logs)`` (``logs`` hold device scalars).
        on_epoch_end: ``fn(trainer, epoch, logs)``.
        on_train_end: ``fn(trainer)``.

    Raises:
        ConfigError: never at construction; exceptions of the functions propagate out of ``fit``.

    Example:
        ```python
        seen = []
        cb = gf.callbacks.LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: seen.append(logs["loss"]))
        ```
    """

    def __init__(self, *, on_train_begin: Callable | None = None, on_epoch_begin: Callable | None = None,
                 on_step_end: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_train_end: Callable | None = None):
        self._fns = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin, "on_step_end": on_step_end,
                     "on_epoch_end": on_epoch_end, "on_train_end": on_train_end}
        self._wants_steps = on_step_end is not None

    def on_train_begin(self, trainer) -> None:
        if self._fns["on_train_begin"]:
            self._fns["on_train_begin"](trainer)

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if self._fns["on_epoch_begin"]:
            self._fns["on_epoch_begin"](trainer, epoch)

    def on_step_end(self, trainer, step: int, logs: dict) -> None:
        if self._fns["on_step_end"]:
            self._fns["on_step_end"](trainer, step, logs)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self._fns["on_epoch_end"]:
            self._fns["on_epoch_end"](trainer, epoch, logs)

    def on_train_end(self, trainer) -> None:
        if self._fns["on_train_end"]:
            self._fns["on_train_end"](trainer)
