"""The reporting steps every example ends with, written once.

:func:`fit_and_evaluate` trains a ``gf.Trainer`` and prints its held-out loss and accuracy;
:func:`onnx_agrees` prints how close onnxruntime's logits are to JAX's and says whether they agree;
:func:`finish` prints the wall time and every failed check, and gives ``main``'s exit status.
"""
from __future__ import annotations

import sys
import time

import numpy as np

__all__ = ["fit_and_evaluate", "onnx_agrees", "finish"]


def fit_and_evaluate(trainer, x_train, y_train, x_test, y_test, epochs: int, batch_size: int = 64) -> dict:
    """``trainer.fit`` for ``epochs``, then ``trainer.evaluate`` on the test split (printed and returned)."""
    t0 = time.perf_counter()
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size)
    t_train = time.perf_counter() - t0
    test = trainer.evaluate(x_test, y_test)
    print(f"trained {epochs} epochs ({trainer.step} steps) in {t_train:.1f} s: "
          f"test loss {test['loss']:.4f}, test accuracy {test['accuracy'] * 100:.2f} %")
    return test


def onnx_agrees(ort_pred: np.ndarray, jax_pred: np.ndarray) -> bool:
    """Print max |Δlogit| and argmax agreement of onnxruntime vs JAX; True within 1e-3 and on every argmax."""
    diff = float(np.max(np.abs(ort_pred - jax_pred)))
    agree = float(np.mean(ort_pred.argmax(-1) == jax_pred.argmax(-1)))
    print(f"JAX vs onnxruntime: max |Δlogit| {diff:.2e}, argmax agreement {agree * 100:.1f} %")
    return not (diff > 1e-3 or agree < 1.0)


def finish(failed: list[str], t_start: float) -> int:
    """Print the total wall time since ``t_start`` and each failed check (stderr); 1 if any failed, else 0."""
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    for msg in failed:
        print(f"FAILED: {msg}", file=sys.stderr)
    return 1 if failed else 0
