"""Training-mode ONNX BatchNormalization (opset 14+, ``training_mode=1``) as registry ops.

Outputs ``(Y, running_mean, running_var)``: ``Y`` normalises with the batch statistics (mean and the
biased variance over every axis but 1) and the running statistics follow ONNX's momentum convention
``running = input_running * momentum + batch_stat * (1 - momentum)`` (the reverse of the ``batch_norm``
op's PyTorch convention, and ONNX's variance is the biased one, so the op itself is not reused).
"""
from __future__ import annotations

from .importer import attrs_of, unsupported
from .nn_ops import _channel_affine, _normalize

__all__ = ["batch_norm_training"]


def batch_norm_training(ctx, node):
    a = attrs_of(node)
    if ctx.opset < 14:
        unsupported(node, "training-mode BatchNormalization before opset 14 (its outputs differ)")
    x, scale, bias, mean_in, var_in = (ctx.input(node, i) for i in range(5))
    rank = len(x.type.shape)
    if rank < 2:
        unsupported(node, f"input {x.type}: needs (N, C, ...)")
    eps, momentum = float(a.get("epsilon", 1e-5)), float(a.get("momentum", 0.9))
    e = ctx.emit
    axes = [0] + list(range(2, rank))
    # Y through the one spelling of the normalisation (ops/nn_norm.normalize); the variance itself is
    # spelled again for the running statistic (cse merges the shared mean and square)
    xhat, mean, _ = _normalize(ctx, x, axes, eps)
    centred = e("sub", [x, mean])
    var = e("mean", [e("mul", [centred, centred])], axes=axes, keepdims=True)
    y = _channel_affine(ctx, xhat, scale, bias, rank)

    def running(old, batch):
        flat = e("reshape", [batch], shape=[-1])
        return e("add", [e("mul", [old, ctx.scalar(momentum, old.type.dtype)]),
                         e("mul", [ctx.cast(flat, old.type.dtype), ctx.scalar(1.0 - momentum, old.type.dtype)])])

    outs = [y, running(mean_in, mean), running(var_in, var)]
    return outs[:len(node.output)]
