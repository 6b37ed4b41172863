"""Tracing: the symbolic Tensor, the Builder and ``gf.trace``."""
from .builder import Builder, active_builder, current_builder
from .tensor import SymDim, Tensor, apply, wrap
from .tracer import trace

__all__ = ["Builder", "active_builder", "current_builder", "SymDim", "Tensor", "apply", "wrap", "trace"]
