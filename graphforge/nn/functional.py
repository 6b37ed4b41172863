"""Losses and metrics written with graphforge ops (so they trace, differentiate and export)."""
from __future__ import annotations

from .. import dtypes as _dt
from .. import ops
from ..errors import DTypeError, ShapeError

__all__ = ["cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "accuracy", "nll_loss"]


def _reduce(loss, reduction: str):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ShapeError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _where(loss_name: str) -> dict:
    """Provenance for a loss's own errors: the module scope being traced and the user's line."""
    from ..trace.builder import active_builder, user_location

    builder = active_builder()
    return {"scope": builder.current_scope if builder is not None else None, "op": loss_name,
            "loc": user_location(full=True) or None}


def nll_loss(log_probs, labels, reduction: str = "mean", *, _name: str = "nll_loss"):
    """Negative log-likelihood of integer ``labels`` under ``log_probs`` (classes on the last axis).

    Args:
        log_probs: log-probabilities, shape ``(batch..., classes)`` (e.g. from ``gf.log_softmax``).
        labels: integer class indices, shape ``(batch...)``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the per-row losses).

    Returns:
        A scalar Tensor (or per-row losses with ``reduction="none"``).

    Raises:
        DTypeError: ``labels`` are not integers (one-hot targets are named as such).
        ShapeError: ``labels``' shape is not ``log_probs``' without its last axis, or ``reduction`` is unknown.

    Example:
        ```python
        loss = nn.functional.nll_loss(gf.log_softmax(logits, -1), labels)
        ```
    """
    if not _dt.is_int(labels.dtype):
        one_hot = tuple(labels.shape) == tuple(log_probs.shape)
        raise DTypeError(f"labels must be integer class indices, got {labels.type} for logits {log_probs.type}",
                         hint=("these look like one-hot/probability targets: pass class indices "
                               "(labels.argmax(-1), as int64)" if one_hot else
                               "pass int64 (or int32) labels, e.g. y.astype('int64') and "
                               "gf.TensorSpec(('batch',), 'int64'); use mse_loss or "
                               "binary_cross_entropy_with_logits for float targets"), **_where(_name))
    if tuple(labels.shape) != tuple(log_probs.shape[:-1]):
        raise ShapeError(f"labels of shape {labels.type} do not match logits {log_probs.type}: expected labels "
                         f"of shape ({', '.join(map(str, log_probs.shape[:-1]))})",
                         hint="labels hold one class index per row; squeeze a trailing size-1 axis",
                         **_where(_name))
    # select, not multiply by a one-hot: 0 * -inf is NaN, and a -inf log-probability (a masked class)
    # must not poison the rows whose label is another class
    picked = ops.sum(ops.where(ops.one_hot(labels, log_probs.shape[-1], "bool"), log_probs, 0.0), -1)
    return _reduce(-picked, reduction)


def cross_entropy(logits, labels, reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy of ``logits`` against integer ``labels`` (PyTorch's ``F.cross_entropy``).

    Args:
        logits: unnormalised scores, shape ``(batch..., classes)``.
        labels: integer class indices, shape ``(batch...)``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the per-row losses).
        label_smoothing: in ``[0, 1)``: mixes the one-hot target with the uniform distribution.

    Returns:
        A scalar Tensor (or per-row losses with ``reduction="none"``).

    Raises:
        DTypeError: ``labels`` are not integers.
        ShapeError: ``labels``' shape does not match ``logits``' batch dims, or ``reduction`` is unknown.

    Example:
        ```python
        trainer = gf.Trainer(model, loss_fn=nn.functional.cross_entropy, optimizer="adam",
                             inputs=[gf.TensorSpec(("batch", 64))], targets=gf.TensorSpec(("batch",), "int64"))
        ```
    """
    logp = ops.log_softmax(logits, -1)
    loss = nll_loss(logp, labels, "none", _name="cross_entropy")
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * ops.mean(logp, -1)
    return _reduce(loss, reduction)


def mse_loss(pred, target, reduction: str = "mean"):
    """Mean squared error ``(pred - target)²``.

    Args:
        pred: predictions.
        target: targets, broadcastable to ``pred``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the per-row losses).

    Returns:
        A scalar Tensor (or the elementwise losses with ``reduction="none"``).

    Raises:
        ShapeError: the shapes do not broadcast, or ``reduction`` is unknown.

    Example:
        ```python
        loss_fn = lambda pred, y: nn.functional.mse_loss(pred, y)
        ```
    """
    d = pred - target
    return _reduce(d * d, reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean"):
    """Binary cross-entropy on logits, computed stably: ``max(x, 0) - x * t + log(1 + exp(-|x|))``.

    Args:
        logits: unnormalised scores ``x``.
        targets: float targets ``t`` in ``[0, 1]``, broadcastable to ``logits``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the per-row losses).

    Returns:
        A scalar Tensor (or the elementwise losses with ``reduction="none"``).

    Raises:
        ShapeError: the shapes do not broadcast, or ``reduction`` is unknown.

    Example:
        ```python
        d_loss = nn.functional.binary_cross_entropy_with_logits(disc(fake), gf.full(fake_shape, 0.0))
        ```
    """
    loss = ops.relu(logits) - logits * targets + ops.softplus(-ops.abs(logits))
    return _reduce(loss, reduction)


def accuracy(logits, labels):
    """Fraction of rows whose argmax equals the label (a metric; not differentiable).

    Args:
        logits: scores, shape ``(batch..., classes)``.
        labels: integer class indices, shape ``(batch...)``.

    Returns:
        A float32 scalar Tensor in ``[0, 1]``.

    Raises:
        ShapeError: ``labels``' shape does not match ``logits``' batch dims.

    Example:
        ```python
        trainer = gf.Trainer(..., metrics={"accuracy": nn.functional.accuracy})
        ```
    """
    hits = ops.cast(ops.equal(ops.argmax(logits, -1), ops.cast(labels, "int64")), "float32")
    return ops.mean(hits)

# Spatial sampling (ops/vision_grid.py), under PyTorch's functional names
from ..ops.vision_grid import affine_grid, grid_sample  # noqa: E402,F401

__all__ += ["grid_sample", "affine_grid"]
