"""The pass registry: every pass, by name, with its contract.

A pass is ``fn(graph) -> (graph, changed)`` registered with::

    @register_pass("fuse", requires=("typed",), preserves=("typed",), stats=True)
    def fuse(graph, *, stats=None): ...

The contract (a :class:`PassInfo`) tells the :class:`~graphforge.passes.manager.PassManager` how to
run the pass:

* ``in_place`` (default True): the pass edits the graph it is given (and returns it). The manager
  then gives it a graph it owns (a copy of the caller's). A pass that builds a new graph and leaves
  its argument alone says ``in_place=False``.
* ``requires``: properties the graph must have before the pass runs. The manager establishes a
  missing one by running the pass that ``provides`` it first (e.g. ``infer`` provides ``typed``:
  every node's declared types checked against its type rule, default attributes filled in).
* ``provides``: properties the pass establishes; ``preserves``: properties it keeps. Any other
  property is assumed lost after the pass (the safe default for a pass that declares nothing).
* ``stats`` (default False): the pass takes a keyword ``stats`` (a dict) and fills it with
  per-run counts (matches per rewrite rule); the manager stores them in the pass's report record.
* ``idempotent`` (default False): running the pass again on its own result changes nothing (``dce``
  removes every dead node in one run). A fixed-point group then skips its confirming run when no
  pass changed the graph since it ran (see :class:`~graphforge.passes.manager.PassManager`).

This module imports no pass: the built-in passes register themselves when ``graphforge.passes`` is
imported, which always happens before this module can be used."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from graphforge.errors import PassError
from graphforge.ir.graph import Graph

__all__ = ["register_pass", "get_pass", "pass_info", "list_passes", "providers_of", "PassInfo", "PROPERTIES"]

PassFn = Callable[[Graph], "tuple[Graph, bool]"]

#: Graph properties a pass may require, provide or preserve.
PROPERTIES = {
    "typed": "every node's result types checked against its op's type rule; default attributes filled in",
}


@dataclass(frozen=True)
class PassInfo:
    """A registered pass and its contract (see the module docstring)."""

    name: str
    fn: PassFn
    in_place: bool = True
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    preserves: tuple[str, ...] = ()
    stats: bool = False
    doc: str = field(default="", compare=False)
    idempotent: bool = False

    def after(self, properties: frozenset[str]) -> frozenset[str]:
        """The properties a graph has after this pass ran on one with ``properties``."""
        return frozenset((set(properties) & set(self.preserves)) | set(self.provides))


_PASSES: dict[str, PassInfo] = {}


def _check_properties(name: str, what: str, props) -> tuple[str, ...]:
    props = (props,) if isinstance(props, str) else tuple(props)
    unknown = [p for p in props if p not in PROPERTIES]
    if unknown:
        raise PassError(f"pass {name!r}: unknown {what} propert{'y' if len(unknown) == 1 else 'ies'} "
                        f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(PROPERTIES))}")
    return props


def register_pass(name: str, *, replace: bool = False, in_place: bool = True, requires=(), provides=(),
                  preserves=(), stats: bool = False, idempotent: bool = False):
    """Decorator registering ``fn(graph) -> (graph, changed)`` under ``name`` with its contract."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
        raise PassError(f"invalid pass name {name!r}", hint="use letters, digits, '_' and '-'")
    info_args = dict(in_place=bool(in_place), requires=_check_properties(name, "required", requires),
                     provides=_check_properties(name, "provided", provides),
                     preserves=_check_properties(name, "preserved", preserves), stats=bool(stats),
                     idempotent=bool(idempotent))

    def deco(fn: PassFn) -> PassFn:
        old = _PASSES.get(name)
        if old is not None and not replace and old.fn is not fn:
            raise PassError(f"a pass named {name!r} is already registered; pass replace=True to override it")
        _PASSES[name] = PassInfo(name, fn, doc=(fn.__doc__ or "").strip(), **info_args)
        fn.pass_name = name
        return fn
    return deco


def _unregister(name: str) -> None:
    """Drop a pass (tests registering temporary passes clean up with it)."""
    _PASSES.pop(name, None)


def list_passes() -> list[str]:
    return sorted(_PASSES)


def pass_info(name: str) -> PassInfo:
    try:
        return _PASSES[name]
    except KeyError:
        raise PassError(f"unknown pass {name!r}; known passes: {', '.join(sorted(_PASSES))}",
                        hint="pipelines look like 'infer,(fold,simplify,cse,dce)*,fuse'") from None


def get_pass(name: str) -> PassFn:
    return pass_info(name).fn


def providers_of(prop: str) -> list[str]:
    """Names of the passes that establish ``prop``."""
    return sorted(n for n, info in _PASSES.items() if prop in info.provides)
