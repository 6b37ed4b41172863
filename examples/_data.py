"""The data every example trains on: scikit-learn's bundled ``load_digits`` (no download).

``load_digits`` holds 1,797 8×8 grey-level images of handwritten digits (values 0..16, about 180
per class), not MNIST. :func:`digits` scales them to [0, 1] and makes the split every example
shares: a stratified 80 / 20 train/test split with a fixed seed, so the accuracies the examples
quote are on the same 360 held-out images. :func:`mnist_sized` upsamples honestly (pixel
repetition ×3 and 2 pixels of background padding: 28×28 with no invented detail) for models
that want MNIST-shaped input. :func:`batches` is a small shuffled mini-batch iterator.
"""
from __future__ import annotations

import numpy as np

__all__ = ["digits", "mnist_sized", "batches"]


def digits(seed: int = 0, test_size: float = 0.2):
    """``(x_train, x_test, y_train, y_test)``: images ``(n, 8, 8)`` float32 in [0, 1], labels int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = d.images.astype(np.float32) / 16.0
    labels = d.target.astype(np.int64)
    return train_test_split(images, labels, test_size=test_size, random_state=seed, stratify=labels)


def mnist_sized(images: np.ndarray) -> np.ndarray:
    """``(n, 8, 8)`` → ``(n, 28, 28)``: each pixel repeated 3×3, then 2 pixels of background around."""
    up = images.repeat(3, axis=1).repeat(3, axis=2)
    return np.pad(up, ((0, 0), (2, 2), (2, 2)))


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator):
    """One epoch of shuffled ``(x, y)`` mini-batches (the last one may be smaller)."""
    order = rng.permutation(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]
