"""Helpers shared by the passes: constant lookup, safe value replacement, dead-node cleanup,
provenance merging and building replacements with the ordinary graphforge functional API."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.trace.builder import Builder
from graphforge.trace.tensor import Tensor

__all__ = ["constant_array", "scalar_value", "splat_number", "merge_provenance", "can_replace", "replace_value",
           "erase_dead", "Rewriter", "output_ids"]


def constant_array(graph: Graph, value: Value) -> np.ndarray | None:
    """The array of a ``constant`` node's result or of a ``const`` parameter, else None."""
    producer = value.producer
    if producer is not None:
        if producer.op == "constant":
            return producer.attrs["value"]
        return None
    if value.kind == "const":
        return graph.params.get(value.name)
    return None


def scalar_value(graph: Graph, value: Value, max_elements: int = 1 << 16) -> float | None:
    """The single value of a constant whose elements are all equal (a splat), else None."""
    array = constant_array(graph, value)
    if array is None or array.size == 0 or array.size > max_elements:
        return None
    return splat_number(array)


# One-element constants by (dtype, bytes) -> their number: the rewrite engine's pre-checks ask for
# the number of every constant operand of every candidate node, and formatting a float32 as its
# shortest decimal costs microseconds. Keyed by value (not by array identity), so it can never go
# stale; bounded.
_SPLAT_CACHE: dict = {}
_MAX_SPLAT_CACHE = 4096


def splat_number(array: np.ndarray) -> float | None:
    """The single value of a non-empty array whose elements are all equal, else None."""
    if array.size == 1:
        key = (array.dtype, array.tobytes())
        try:
            return _SPLAT_CACHE[key]
        except KeyError:
            number = _splat_number(array)
            if len(_SPLAT_CACHE) >= _MAX_SPLAT_CACHE:
                _SPLAT_CACHE.clear()
            _SPLAT_CACHE[key] = number
            return number
        except TypeError:  # an unhashable dtype: no caching
            pass
    return _splat_number(array)


def _splat_number(array: np.ndarray) -> float | None:
    flat = array.reshape(-1)
    first = flat[0]
    if flat.size > 1 and not np.all(flat == first):
        return None
    try:
        if array.dtype.kind == "f" and array.dtype.itemsize < 8 or array.dtype.name == "bfloat16":
            # The shortest decimal that round-trips in the constant's own precision: a float32
            # ``1e-5`` reads back as 1e-05, not 9.99999974738e-06.
            return float(str(first))
        return float(first)
    except (TypeError, ValueError):
        return None


def merge_provenance(nodes: Iterable[Node]) -> tuple[str, str]:
    """Scope and location of a node that absorbs ``nodes``: the deepest module path that contains
    every absorbed scope, and the absorbed ``file:line`` locations joined with ``;`` (rule 5)."""
    scopes: list[str] = []
    locs: list[str] = []
    for node in nodes:
        if node.scope and node.scope not in scopes:
            scopes.append(node.scope)
        for loc in node.loc.split(";") if node.loc else ():
            if loc and loc not in locs:
                locs.append(loc)
    if not scopes:
        scope = ""
    elif len(scopes) == 1:
        scope = scopes[0]
    else:
        parts = [s.split(".") for s in scopes]
        common = []
        for column in zip(*parts):
            if all(c == column[0] for c in column):
                common.append(column[0])
            else:
                break
        scope = ".".join(common)
    return scope, ";".join(locs)


def output_ids(graph: Graph) -> set[int]:
    return {id(o) for o in graph.outputs}


def can_replace(graph: Graph, old: Value, new: Value, outs: set[int] | None = None) -> bool:
    """Whether ``old`` may be replaced by ``new`` without changing the graph's outputs' identity:
    a graph output may not become an input, a parameter, or a value that is already an output."""
    if old is new or old.type != new.type:
        return old is new
    outs = output_ids(graph) if outs is None else outs
    if id(old) in outs and (new.kind != "node" or id(new) in outs):
        return False
    return True


def replace_value(graph: Graph, old: Value, new: Value, outs: set[int] | None = None) -> bool:
    """Redirect every use of ``old`` (and the graph outputs) to ``new`` when :func:`can_replace`."""
    if old is new or not can_replace(graph, old, new, outs):
        return False
    if outs is not None and id(old) in outs:
        outs.discard(id(old))
        outs.add(id(new))
    graph.replace_all_uses_with(old, new)
    return True


def erase_dead(graph: Graph, candidates: Iterable[Node], outs: set[int] | None = None,
               dead: dict[int, Node] | None = None) -> int:
    """Remove ``candidates`` whose results are unused, then their producers that became unused.

    Uses by nodes already found dead do not count. Without ``dead``, the dead nodes are removed at
    once with ``graph.remove_nodes``. With ``dead`` (id → node) given, they are only recorded there
    and the caller removes them in one batch later (keeping a sweep of many rewrites linear)."""
    outs = output_ids(graph) if outs is None else outs
    defer = dead is not None
    dead = {} if dead is None else dead
    newly: list[Node] = []
    stack = list(candidates)
    while stack:
        node = stack.pop()
        if id(node) in dead or not _unused(node, outs, dead):
            continue
        dead[id(node)] = node
        newly.append(node)
        for v in node.inputs:
            if v.producer is not None and id(v.producer) not in dead:
                stack.append(v.producer)
    if newly and not defer:
        graph.remove_nodes(newly)
    return len(newly)


def _unused(node: Node, outs: set[int], dead) -> bool:
    """No result of ``node`` is a graph output or read by a node outside ``dead``."""
    for o in node.outputs:
        if id(o) in outs:
            return False
        for user, _ in o.uses:
            if id(user) not in dead:
                return False
    return True


class Rewriter:
    """Builds replacement subgraphs with the ordinary functional API::

        rw = Rewriter(graph)
        with rw.at(nodes, before=root) as b:   # provenance merged from the nodes being replaced
            y = graphforge.ops.linear(rw.t(x), rw.t(w), rw.t(b))

    New nodes go right before ``before`` (default: the end of the graph), so the graph stays in
    topological order when they read only values defined before that node. If the block raises a
    :class:`GraphforgeError` (a type rule refused the replacement), the nodes it emitted are removed
    and :class:`RewriteRefused` is raised instead; :meth:`undo` removes them later (a replacement
    that turned out unusable). ``rw.emitted`` lists the nodes of the last ``at`` block."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.builder = Builder(graph, capture_locations=False)
        self.emitted: list[Node] = []

    def t(self, value: Value) -> Tensor:
        return Tensor(value, self.builder)

    def at(self, nodes: Iterable[Node], before: Node | None = None) -> "_At":
        """Context: build the replacement of ``nodes`` before ``before`` (see the class doc)."""
        return _At(self, nodes, before)

    def undo(self) -> None:
        """Remove the nodes the last :meth:`at` block emitted (unused by anything else)."""
        if self.emitted:
            self.graph.remove_nodes(self.emitted)
        self.emitted = []

    def clone(self, node: Node, inputs=None, attrs=None) -> list[Value]:
        """Emit ``node``'s op again with other ``inputs`` and/or ``attrs`` (its type rule re-run),
        under ``node``'s own provenance and with its result names: the edited node, as a new one."""
        with self.builder.provenance(node.scope, node.loc):
            outs = self.builder.emit(node.op, list(node.inputs if inputs is None else inputs),
                                     dict(node.attrs if attrs is None else attrs))
        if len(outs) == len(node.outputs):
            for new, old in zip(outs, node.outputs):
                if new.name is None:
                    new.name = old.name
        return outs


class _At:
    """The context of :meth:`Rewriter.at` (a class, not a generator: the engine enters one per rewrite)."""

    __slots__ = ("rw", "absorbed", "before", "contexts")

    def __init__(self, rw: Rewriter, nodes: Iterable[Node], before: Node | None):
        self.rw, self.absorbed, self.before, self.contexts = rw, nodes, before, ()

    def __enter__(self) -> Builder:
        rw, b = self.rw, self.rw.builder
        scope, loc = merge_provenance(self.absorbed)
        place = b.inserting_at_end() if self.before is None else b.inserting_before(self.before)
        recording = b.recording()
        contexts = (place, recording, b.activate(), b.provenance(scope, loc))
        entered = []
        try:
            for ctx in contexts:
                value = ctx.__enter__()
                if ctx is recording:
                    rw.emitted = value
                entered.append(ctx)
        except BaseException:
            for ctx in reversed(entered):
                ctx.__exit__(None, None, None)
            raise
        self.contexts = contexts
        return b

    def __exit__(self, kind, exc, tb) -> bool:
        place, recording, activated, provenance = self.contexts
        provenance.__exit__(kind, exc, tb)
        activated.__exit__(kind, exc, tb)
        try:
            if exc is not None and isinstance(exc, GraphforgeError):
                self.rw.undo()
                raise RewriteRefused(str(exc)) from exc
        finally:
            recording.__exit__(kind, exc, tb)
            place.__exit__(kind, exc, tb)
        return False


class RewriteRefused(Exception):
    """A replacement could not be built (its types did not check); the match is skipped."""


__all__.append("RewriteRefused")
