"""Dropout: the counter-based ``dropout`` op in training mode, the identity in eval mode."""
from __future__ import annotations

from .. import ops
from ..errors import ConfigError
from ..trace.builder import current_builder
from ..trace.tensor import Tensor
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training mode only);
    each call site draws its own key from the graph's ``rng`` input."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        try:
            ok = 0.0 <= float(p) <= 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"nn.Dropout: p is the probability of zeroing an element and must be in [0, 1], got {p!r}",
                              hint="e.g. nn.Dropout(0.1); p=0 disables dropout")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        builder = current_builder()
        return ops.dropout(x, self.p, Tensor(builder.rng_key(), builder))

    def extra_repr(self) -> str:
        return f"p={self.p}"
