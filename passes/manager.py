"""Pipeline strings and the :class:`PassManager` (passes and their contracts live in
:mod:`graphforge.passes.registry`; ``register_pass`` is re-exported here).

A pass is a function ``pass(graph) -> (graph, changed)`` registered by name::

    @register_pass("cse", preserves=("typed",))
    def cse(graph): ...

Passes may edit the graph they are given in place (that is what makes them fast); the
:class:`PassManager` therefore gives an in-place pass its own ``graph.copy()`` and never touches the
caller's graph. It honours each pass's contract: a required property (``typed``) that the graph does
not have yet is established first by running the pass that provides it (recorded in the report).
Call a registered pass directly only on a graph you own.

Pipeline strings list pass names separated by commas. A parenthesised group followed by ``*``
iterates to a fixed point (until no pass in it reports a change), at most ``max_iterations`` times
(``*N`` sets the cap for that group)::

    "infer,(fold,simplify,cse,dce)*,fuse"
    "(simplify,cse)*3,dce"

``"default"`` names :data:`DEFAULT_PIPELINE`.

Change tracking: within a fixed-point group, from its second iteration on, a pass is skipped (its
record says ``skipped``) when no pass has reported a change since it last ran on the same graph and
either that run changed nothing (a pass is a function of the graph: it would change nothing again)
or the pass is registered ``idempotent`` (its own result is a fixed point of it). So the confirming
iteration does not re-run ``dce`` after ``fold``, ``simplify`` and ``cse`` found nothing.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from graphforge.errors import GraphforgeError, PassError
from graphforge.ir.gcpause import gc_paused
from graphforge.ir.graph import Graph

from .registry import _PASSES, get_pass, list_passes, pass_info, providers_of, register_pass  # noqa: F401

__all__ = ["register_pass", "get_pass", "list_passes", "PassManager", "PassReport", "PassRecord",
           "optimize", "parse_pipeline", "DEFAULT_PIPELINE", "PIPELINES", "MAX_ITERATIONS"]

#: The pipeline ``gf.optimize(g)`` runs: canonicalise to a fixed point, fuse, clean up again.
DEFAULT_PIPELINE = "infer,(fold,simplify,cse,dce)*,fuse,hoist,(fold,simplify,cse,dce)*"
PIPELINES = {"default": DEFAULT_PIPELINE, "canonicalize": "infer,(fold,simplify,cse,dce)*", "none": ""}
MAX_ITERATIONS = 10


# ---- pipeline strings ---------------------------------------------------------------------------

@dataclass
class _Group:
    items: list  # of str (pass names) and _Group
    repeat: bool = False
    cap: int = MAX_ITERATIONS

    def names(self) -> Iterable[str]:
        for item in self.items:
            if isinstance(item, _Group):
                yield from item.names()
            else:
                yield item

    def __str__(self) -> str:
        body = ",".join(str(i) for i in self.items)
        if not self.repeat:
            return body
        return f"({body})*" + ("" if self.cap == MAX_ITERATIONS else str(self.cap))


_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|(?P<punct>[(),])|(?P<star>\*(?P<cap>\d+)?))")


def parse_pipeline(text: str, max_iterations: int = MAX_ITERATIONS) -> _Group:
    """Parse a pipeline string into a (possibly nested) group; unknown names raise PassError."""
    if not isinstance(text, str):
        raise PassError(f"a pipeline must be a string like 'fold,cse,dce', got {type(text).__name__}")
    text = PIPELINES.get(text.strip(), text)
    known = set(list_passes())
    pos = 0
    tokens: list[tuple[str, str, int]] = []
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PassError(f"malformed pipeline {text!r}: unexpected {text[pos:].strip()[:1]!r} at column {pos + 1}",
                            hint=f"write pass names separated by commas, '(a,b)*' to iterate; known passes: "
                                 f"{', '.join(sorted(known))}")
        if m.group("name"):
            tokens.append(("name", m.group("name"), m.start("name")))
        elif m.group("punct"):
            tokens.append((m.group("punct"), m.group("punct"), m.start("punct")))
        else:
            tokens.append(("*", m.group("cap") or "", m.start("star")))
        pos = m.end()
    i = 0

    def err(msg: str, at: int | None = None):
        where = f" at column {at + 1}" if at is not None else ""
        return PassError(f"malformed pipeline {text!r}: {msg}{where}",
                         hint=f"example: 'infer,(fold,simplify,cse,dce)*,fuse'; known passes: {', '.join(sorted(known))}")

    def parse_seq(depth: int) -> _Group:
        nonlocal i
        items: list = []
        expect_item = True
        while i < len(tokens):
            kind, val, at = tokens[i]
            if kind == ")":
                if depth == 0:
                    raise err("unbalanced ')'", at)
                break
            if kind == "," :
                if expect_item:
                    raise err("empty pass name", at)
                expect_item = True
                i += 1
                continue
            if not expect_item:
                raise err(f"expected ',' before {val!r}", at)
            if kind == "name":
                if val not in known:
                    raise PassError(f"unknown pass {val!r} in pipeline {text!r}; known passes: "
                                    f"{', '.join(sorted(known))}")
                items.append(val)
                i += 1
            elif kind == "(":
                i += 1
                group = parse_seq(depth + 1)
                if i >= len(tokens) or tokens[i][0] != ")":
                    raise err("missing ')'", at)
                i += 1
                if i < len(tokens) and tokens[i][0] == "*":
                    group.repeat = True
                    cap = tokens[i][1]
                    group.cap = int(cap) if cap else max_iterations
                    if group.cap < 1:
                        raise err("an iteration cap must be at least 1", tokens[i][2])
                    i += 1
                if not group.items:
                    raise err("empty group '()'", at)
                items.append(group)
            elif kind == "*":
                raise err("'*' must follow a parenthesised group", at)
            expect_item = False
        if expect_item and items:
            raise err("trailing ','")
        return _Group(items)

    root = parse_seq(0)
    if i != len(tokens):
        raise err("unbalanced ')'", tokens[i][2])
    return root


# ---- reports ------------------------------------------------------------------------------------

@dataclass
class PassRecord:
    name: str
    iteration: int  # 1-based iteration of the innermost fixed-point group (1 outside groups)
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    stats: dict = field(default_factory=dict)  # per-run counts the pass reported (matches per rule)
    required_by: str = ""  # set when the manager ran this pass to establish what that pass requires
    skipped: bool = False  # not run: nothing changed since its last run (see the module docstring)


@dataclass
class PassReport:
    """Per-pass wall time and node counts of one PassManager run; ``str(report)`` is a table."""

    pipeline: str
    records: list[PassRecord] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0

    def by_pass(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.records:
            e = out.setdefault(r.name, {"runs": 0, "seconds": 0.0, "changed": 0, "removed": 0, "skipped": 0})
            e["runs"] += 1
            e["skipped"] += int(r.skipped)
            e["seconds"] += r.seconds
            e["changed"] += int(r.changed)
            e["removed"] += r.nodes_before - r.nodes_after
        return out

    def stats(self, name: str | None = None) -> dict[str, int]:
        """Counts the passes reported (e.g. matches per rewrite rule), summed over their runs;
        ``name`` restricts them to one pass."""
        total: dict[str, int] = {}
        for r in self.records:
            if name is None or r.name == name:
                for key, count in r.stats.items():
                    total[key] = total.get(key, 0) + count
        return total

    def table(self) -> str:
        rows = [("pass", "iter", "time ms", "nodes in", "nodes out", "changed")]
        for r in self.records:
            rows.append((r.name + (f" (for {r.required_by})" if r.required_by else ""), str(r.iteration), f"{r.seconds * 1e3:.2f}", str(r.nodes_before),
                         str(r.nodes_after), "yes" if r.changed else "skipped" if r.skipped else "no"))
        rows.append(("total", "", f"{self.seconds * 1e3:.2f}", str(self.nodes_before), str(self.nodes_after), ""))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        lines = [f"pipeline: {self.pipeline}"]
        for k, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in
                                   enumerate(zip(row, widths))).rstrip())
            if k == 0 or k == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ---- the manager --------------------------------------------------------------------------------

def _emit(stream, text: str) -> None:
    if stream is None:
        stream = sys.stderr
    if callable(stream) and not hasattr(stream, "write"):
        stream(text)
    else:
        stream.write(text if text.endswith("\n") else text + "\n")


class PassManager:
    """Runs a pipeline of registered passes on a copy of a graph.

    ``verify=True`` checks ``graph.verify()`` after every pass; ``print_after`` (a pass name or a
    list of them) writes the IR after each run of those passes to ``stream`` (a file-like object or a
    callable taking the text; default ``sys.stderr``). After :meth:`run`, ``self.report`` holds the
    :class:`PassReport`.
    """

    def __init__(self, pipeline: str = "default", *, verify: bool = False, print_after=None, stream=None,
                 max_iterations: int = MAX_ITERATIONS):
        self.pipeline_text = PIPELINES.get(pipeline.strip(), pipeline) if isinstance(pipeline, str) else pipeline
        self.plan = parse_pipeline(pipeline, max_iterations)
        self.verify = verify
        if print_after is None:
            self.print_after: set[str] = set()
        else:
            self.print_after = {print_after} if isinstance(print_after, str) else set(print_after)
        unknown = sorted(n for n in self.print_after if n not in list_passes())
        if unknown:
            raise PassError(f"print_after names unknown pass(es) {', '.join(unknown)}; known passes: "
                            f"{', '.join(list_passes())}")
        absent = sorted(n for n in self.print_after if n not in unknown and n not in self.passes)
        if absent:
            # otherwise nothing would ever be printed, with no word why
            raise PassError(f"print_after names pass(es) {', '.join(absent)} not in the pipeline "
                            f"{str(self.plan)!r}", hint="add the pass to the pipeline or print after one it runs")
        self.stream = stream
        self.report: PassReport | None = None

    @property
    def passes(self) -> list[str]:
        return list(self.plan.names())

    def __repr__(self) -> str:
        return f"PassManager({str(self.plan)!r}, verify={self.verify})"

    def run(self, graph: Graph) -> Graph:
        """Optimise a copy of ``graph`` and return it (the input is left untouched)."""
        if not isinstance(graph, Graph):
            raise PassError(f"passes run on a gf.Graph, got {type(graph).__name__}")
        # Passes allocate many small, long-lived objects; the cyclic GC's full collections would
        # make large graphs superlinear, so it is paused while the pipeline runs.
        with gc_paused():
            start = time.perf_counter()
            report = PassReport(str(self.plan), nodes_before=len(graph.nodes))
            self.report = report
            self._history: list[str] = []
            # The caller's graph is copied only before the first in-place pass; a pass that
            # builds a new graph (in_place=False) hands over one the manager owns.
            self._owned = False
            self._properties: frozenset[str] = frozenset()
            # Change tracking: how many pass runs reported a change so far, and per pass name the
            # graph, that count and its own ``changed`` at the end of its last run.
            self._changes = 0
            self._last_runs: dict[str, tuple[Graph, int, bool]] = {}
            if self.verify:
                try:
                    graph.verify()
                except GraphforgeError as exc:
                    raise PassError(f"the input graph is invalid before any pass ran: {exc}") from exc
            g, _ = self._run_group(self.plan, graph, 1)
            if not self._owned:
                g = g.copy()  # every pass left it alone (or none ran): still return a new graph
            report.seconds = time.perf_counter() - start
            report.nodes_after = len(g.nodes)
        return g

    def _run_group(self, group: _Group, g: Graph, iteration: int) -> tuple[Graph, bool]:
        rounds = group.cap if group.repeat else 1
        any_change = False
        for k in range(rounds):
            changed_here = False
            for item in group.items:
                if isinstance(item, _Group):
                    g, changed = self._run_group(item, g, 1)
                else:
                    g, changed = self._run_pass(item, g, k + 1 if group.repeat else iteration)
                changed_here |= changed
            any_change |= changed_here
            if not changed_here:
                break
        return g, any_change

    def _establish(self, info, g: Graph) -> Graph:
        """Run the passes that provide what ``info`` requires and the graph lacks."""
        for prop in info.requires:
            if prop in self._properties:
                continue
            providers = [p for p in providers_of(prop) if not pass_info(p).requires]
            if not providers:
                raise PassError(f"pass {info.name!r} requires the graph to be {prop!r}, and no registered "
                                "pass provides it")
            g, _ = self._run_pass(providers[0], g, 1, required_by=info.name)
        return g

    def _run_pass(self, name: str, g: Graph, iteration: int, required_by: str = "") -> tuple[Graph, bool]:
        info = pass_info(name)
        if iteration > 1 and name not in self.print_after and self._unchanged_since_last_run(info, g):
            self._properties = info.after(self._properties)  # as if it ran (conservative)
            self.report.records.append(PassRecord(name, iteration, 0.0, len(g.nodes), len(g.nodes), False,
                                                  {}, required_by, skipped=True))
            return g, False
        g = self._establish(info, g)
        fn = info.fn
        if info.in_place and not self._owned:
            g = g.copy()
            self._owned = True
        before = len(g.nodes)
        previous = ", ".join(self._history) if self._history else "none"
        stats: dict[str, int] = {}
        t0 = time.perf_counter()
        try:
            result = fn(g, stats=stats) if info.stats else fn(g)
            if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Graph)):
                raise TypeError(f"a pass must return (Graph, changed), got {type(result).__name__}")
            if not info.in_place and result[0] is not g:
                self._owned = True
            g, changed = result[0], bool(result[1])
        except PassError as exc:
            raise PassError(f"pass {name!r} failed (passes run before it: {previous}): {exc.detail}",
                            scope=exc.scope, op=exc.op, loc=exc.loc, hint=exc.hint) from exc
        except Exception as exc:  # noqa: BLE001 - every failure is reported with the pass that caused it
            raise PassError(f"pass {name!r} failed (passes run before it: {previous}): "
                            f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - t0
        if changed:
            self._changes += 1
        self._last_runs[name] = (g, self._changes, changed)
        self._properties = info.after(self._properties)
        self._history.append(name)
        if self.verify:
            try:
                g.verify()
            except GraphforgeError as exc:
                raise PassError(f"pass {name!r} left an invalid graph (passes run before it: {previous}): "
                                f"{exc}") from exc
        self.report.records.append(PassRecord(name, iteration, seconds, before, len(g.nodes), changed,
                                              stats, required_by))
        if name in self.print_after:
            _emit(self.stream, f"// IR after {name} (run {len(self._history)}, iteration {iteration})\n{g}")
        return g, changed

    def _unchanged_since_last_run(self, info, g: Graph) -> bool:
        """Whether running pass ``info`` on ``g`` now would change nothing: no pass reported a change
        since its last run on this same graph, which itself changed nothing or was idempotent."""
        last = self._last_runs.get(info.name)
        if last is None:
            return False
        graph, changes, changed = last
        return graph is g and changes == self._changes and (not changed or info.idempotent)


def optimize(graph: Graph, pipeline: str | None = "default", *, verify: bool = False, report=False,
             print_after=None, stream=None) -> Graph:
    """Run ``pipeline`` (``"default"``, or e.g. ``"fold,cse,dce,fuse"``) on a copy of ``graph``.

    ``verify``: run ``graph.verify()`` after every pass. ``report``: True writes the per-pass table
    (time, node counts) to ``stream``; a file-like object gets the table itself; a callable receives
    the :class:`PassReport`. ``pipeline=None`` means ``"default"``.
    ``print_after``: pass name(s) after which the IR is written to ``stream``. ``stream``: a file-like
    object or a callable taking text (default ``sys.stderr``). Returns the new graph; the input
    graph is never modified."""
    manager = PassManager("default" if pipeline is None else pipeline, verify=verify, print_after=print_after,
                          stream=stream)
    out = manager.run(graph)
    if report is not False and report is not None:
        if hasattr(report, "write"):
            _emit(report, manager.report.table())
        elif callable(report):
            report(manager.report)
        elif report:
            _emit(stream, manager.report.table())
    return out
