"""``nn.remat(module)`` and ``gf.checkpoint(fn)``: mark code for rematerialisation.

Marking records the traced scope in ``graph.remat_scopes`` (scope -> policy); ``gf.grad`` (and so
``gf.Trainer``) then recomputes that region's activations in the backward pass instead of keeping
them alive from the forward pass (:mod:`graphforge.passes.remat` has the policies: ``"nothing"``
saves only the region's inputs, ``"dots"`` also keeps matmul/conv results). Parameter names and
numerics are unchanged; only the gradient graph's schedule (and peak memory) is.
"""
from __future__ import annotations

import functools

from ..errors import ConfigError, TraceError
from ..trace.builder import active_builder

__all__ = ["remat", "checkpoint", "REMAT_POLICIES"]

REMAT_POLICIES = ("nothing", "dots")


def _check(policy: str) -> str:
    if policy not in REMAT_POLICIES:
        raise ConfigError(f"remat policy {policy!r}: use one of {', '.join(REMAT_POLICIES)}")
    return policy


def remat(module, policy: str = "nothing"):
    """Mark ``module`` (an ``nn.Module``) for rematerialisation and return it (same object, same
    parameter names): every call of it inside a trace marks its scope (a submodule's: the
    top-level module traced itself has no scope to mark).

    Args:
        module: the ``nn.Module`` whose calls are rematerialised.
        policy: what the backward pass keeps of the region: ``"nothing"`` (only its inputs; the
            default) or ``"dots"`` (also matmul/conv results).

    Returns:
        ``module`` itself, now marked.

    Raises:
        ConfigError: ``module`` is not an ``nn.Module``, or an unknown ``policy``.

    Example:
        ```python
        model = nn.Sequential(nn.remat(nn.Linear(4, 8)), nn.ReLU(), nn.Linear(8, 4))
        g = gf.trace(model, gf.TensorSpec(("batch", 4)))   # g.remat_scopes == {"0": "nothing"}
        ```
    """
    from .module import Module

    if not isinstance(module, Module):
        raise ConfigError(f"nn.remat takes an nn.Module, got {type(module).__name__}",
                          hint="for a function use gf.checkpoint(fn)")
    _check(policy)
    forward = module.forward  # the bound method of its class (or an earlier wrapper)

    @functools.wraps(forward)
    def marked_forward(*args, **kwargs):
        builder = active_builder()
        if builder is not None and builder.current_scope:
            builder.graph.remat_scopes[builder.current_scope] = policy
        return forward(*args, **kwargs)

    # an instance attribute shadows the class's forward: Module.__call__ (which pushes the module's
    # scope) calls it, so the mark is the module's own scope
    object.__setattr__(module, "forward", marked_forward)
    return module


def checkpoint(fn=None, *, policy: str = "nothing"):
    """``gf.checkpoint(fn)`` (or ``@gf.checkpoint(policy="dots")``): a function whose traced ops are
    rematerialised. Its own ops get a scope ``<caller>.checkpoint<N>``; modules it calls keep their
    paths and are marked too."""
    _check(policy)
    if fn is None:
        return lambda f: checkpoint(f, policy=policy)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        builder = active_builder()
        if builder is None:
            raise TraceError("gf.checkpoint: the function was called outside gf.trace",
                             hint="call it from a model's forward (or a function) being traced")
        parent = builder.current_scope
        n = sum(1 for s in builder.graph.remat_scopes if s.rsplit(".", 1)[-1].startswith("checkpoint"))
        scope = f"{parent}.checkpoint{n}" if parent else f"checkpoint{n}"
        with builder.recording() as nodes, builder.scope(scope):
            out = fn(*args, **kwargs)
        builder.graph.remat_scopes[scope] = policy
        for node in nodes:  # modules called inside trace under their own paths
            if node.scope and node.scope != scope and not node.scope.startswith(scope + "."):
                builder.graph.remat_scopes.setdefault(node.scope, policy)
        return out

    return wrapper
