"""The name → function tables of the back ends (JAX and ONNX lowerings, ONNX importers) and their
registration decorator, defined once so every table registers the same way.

A lowering table also answers the question the ``decompose`` pass asks (``passes/decompose.py``):
can this back end lower this node as it is? A lowering registered with ``when=predicate`` handles
only the nodes ``predicate(node, target)`` accepts (``target`` is the back end's export settings, e.g.
the ONNX opset and native-op policy); for the others the pass substitutes the op's registry
decomposition before lowering starts. So a back end never decomposes an op inside itself.

Kept out of ``graphforge/`` on purpose: the core never imports back ends, and this module imports
nothing, so loading it pulls in no jax or onnx module."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

__all__ = ["registrar", "lowering_table", "LoweringTable"]

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


class LoweringTable(dict):
    """op name → lowering function, plus the optional per-op condition under which it applies."""

    def __init__(self):
        super().__init__()
        self.conditions: dict[str, Callable[[Any, Any], bool]] = {}

    def lowers(self, *names: str, when: Callable[[Any, Any], bool] | None = None) -> Callable[[F], F]:
        """``@lowers("relu")`` registers a lowering; ``when=fn(node, target) -> bool`` restricts it to
        the nodes ``fn`` accepts (the rest are decomposed by the ``decompose`` pass first)."""
        def deco(fn: F) -> F:
            for n in names:
                self[n] = fn
                if when is None:
                    self.conditions.pop(n, None)
                else:
                    self.conditions[n] = when
            return fn
        return deco

    def has_lowering(self, name: str) -> bool:
        return name in self

    def can_lower(self, node, target=None) -> bool:
        """Whether this table lowers ``node`` as it is (``target``: the back end's settings)."""
        if node.op not in self:
            return False
        condition = self.conditions.get(node.op)
        return condition is None or bool(condition(node, target))


def lowering_table() -> tuple[LoweringTable, Callable[..., Callable], Callable[[str], bool]]:
    """A fresh lowering table of one back end: ``(LOWERINGS, lowers, has_lowering)``, where
    ``@lowers("relu")`` registers a lowering (``when=`` a condition, see :class:`LoweringTable`) and
    ``has_lowering(name)`` says whether one is registered; ``LOWERINGS.can_lower(node, target)`` is
    what the ``decompose`` pass asks."""
    table = LoweringTable()
    return table, table.lowers, table.has_lowering
