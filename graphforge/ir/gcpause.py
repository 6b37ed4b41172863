"""Pause Python's cyclic garbage collector while a large graph is built or rewritten.

A graph is a web of reference cycles (a Value names its producer, the Node lists its outputs;
the node list links neighbours both ways). While tracing, a pass pipeline or an export allocates
hundreds of thousands of such objects, the collector's full collections rescan every live one of
them again and again: measured at ~96k nodes, 1.5 s of a 10 s trace + optimise + export went to it.
Nothing those stages drop is cyclic garbage — ``Graph.erase`` unlinks an erased node from its
values and neighbours, so reference counting frees it — so pausing the collector loses nothing,
and it runs as usual afterwards. Nested pauses are fine; a collector the caller had disabled stays off.

Leaving the outermost pause, the objects it created are *promoted* to the oldest generation
(``gc.freeze()`` then ``gc.unfreeze()``, O(1)) instead of being examined at once by the young
collection the next allocation would trigger: that pass over every new object cost 0.50 CPU-s of a
~11.5 CPU-s 100k-node compile (0.02 s promoted; docs/benchmarks.md). Promoted objects are examined
by the next full collection, like any long-lived object; since the collector does not count them
towards its own full-collection trigger, at most :data:`PROMOTE_BUDGET` objects are promoted between
two full collections (a process compiling graphs in a loop keeps its garbage bounded), and nothing
is promoted while the application has frozen objects of its own (``gc.get_freeze_count()``).
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["gc_paused", "PROMOTE_BUDGET"]

#: How many objects pauses may promote unexamined between two full collections (0: never promote).
#: ~4M objects is what a 400k-node trace or pipeline allocates; larger graphs take the usual path.
PROMOTE_BUDGET = 4_000_000

_promoted = 0  # objects promoted since the last full collection


def _on_collection(phase: str, info: dict) -> None:
    global _promoted
    if phase == "stop" and info.get("generation") == 2:
        _promoted = 0  # everything promoted so far has now been examined


gc.callbacks.append(_on_collection)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the ``with`` block, restoring its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _promote_young()
            gc.enable()


def _promote_young() -> None:
    global _promoted
    young = gc.get_count()[0]  # tracked objects allocated (net) since the last collection
    if young <= 0 or _promoted + young > PROMOTE_BUDGET or gc.get_freeze_count():
        return  # the usual young collection examines them
    gc.freeze()
    gc.unfreeze()
    _promoted += young
