"""The name → function tables of the back ends (JAX and ONNX lowerings, ONNX importers) and their
registration decorator, defined once so every table registers the same way.

Kept out of ``graphforge/`` on purpose: the core never imports back ends, and this module imports
nothing, so loading it pulls in no jax or onnx module."""
from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["registrar", "lowering_table"]

F = TypeVar("F", bound=Callable)


def registrar(table: dict[str, F]) -> Callable[..., Callable[[F], F]]:
    """A decorator factory for ``table``: ``@register("a", "b")`` stores the decorated function under
    each of the names (a later registration of a name replaces the earlier one) and returns it unchanged."""
    def register(*names: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            for n in names:
                table[n] = fn
            return fn
        return deco
    return register


def lowering_table() -> tuple[dict[str, Callable], Callable[..., Callable], Callable[[str], bool]]:
    """A fresh lowering table of one back end: ``(LOWERINGS, lowers, has_lowering)``, where
    ``@lowers("relu")`` registers a lowering and ``has_lowering(name)`` says whether one is registered."""
    table: dict[str, Callable] = {}

    def has_lowering(name: str) -> bool:
        return name in table

    return table, registrar(table), has_lowering
