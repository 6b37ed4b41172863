"""The Builder: the one way new nodes enter a graph (tracing, decompositions, VJP rules, passes).

``emit`` validates attributes, runs the op's type rule and stamps provenance (module scope and the
user's ``file:line``). A type error becomes a :class:`ShapeError` naming the module path, the op,
the input types and the source line.

New nodes go to the builder's insertion point: the end of the graph by default, or before/after a
given node (``with builder.inserting_before(node):``), so a pass puts a replacement where it belongs
instead of appending and re-sorting. ``with builder.recording() as new:`` collects what was emitted.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator, Sequence

from ..errors import GraphforgeError, ShapeError, TraceError
from ..ir.graph import YIELD, Block, Graph, Node, Value
from ..ops import registry

__all__ = ["Builder", "RegionFrame", "active_builder", "current_builder", "user_location", "INTERNAL_DIRS"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PARENT = os.path.dirname(_PKG_DIR)
# Source frames inside these directories are graphforge's own; a node's location is the first
# frame outside them (works for the editable layout, where passes/, runtimes/ and apps/ are
# siblings of graphforge/, and for an installed wheel, where they are subpackages).
INTERNAL_DIRS = tuple(os.path.join(p, "") for p in (
    _PKG_DIR, os.path.join(_PARENT, "passes"), os.path.join(_PARENT, "runtimes"), os.path.join(_PARENT, "apps")))

_local = threading.local()


def _stack() -> list["Builder"]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def active_builder() -> "Builder | None":
    stack = _stack()
    return stack[-1] if stack else None


def current_builder() -> "Builder":
    builder = active_builder()
    if builder is None:
        raise TraceError("no graph is being built here: graphforge ops run on symbolic tensors inside "
                         "gf.trace(...)", hint="wrap the code in a function or nn.Module and call "
                         "gf.trace(model, gf.TensorSpec(shape, dtype)); run it with gf.run(graph, inputs)")
    return builder


# co_filename -> its basename, or None for graphforge's own (and frozen) files. Emitting a node
# walks several internal frames; deciding each by a dict hit instead of prefix tests and
# os.path.basename keeps that walk cheap. Bounded: code compiled from ever new names (exec) only
# stops being cached.
_FILE_NAMES: dict[str, str | None] = {}
_MAX_CACHED_FILES = 4096


def _file_name(filename: str) -> str | None:
    if filename.startswith(INTERNAL_DIRS) or filename.startswith("<frozen"):
        name = None
    else:
        name = os.path.basename(filename)
    if len(_FILE_NAMES) < _MAX_CACHED_FILES:
        _FILE_NAMES[filename] = name
    return name


def user_location(full: bool = False) -> str:
    """``file:line`` of the innermost frame outside graphforge (the user's code)."""
    frame = sys._getframe(1)
    names = _FILE_NAMES
    while frame is not None:
        filename = frame.f_code.co_filename
        name = names[filename] if filename in names else _file_name(filename)
        if name is not None:
            return f"{filename if full else name}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class RegionFrame:
    """One region being traced: its block, the values it may read (``local``), and the outer values
    it captured (``captured``, in argument order; ``map``: id(outer) -> argument)."""

    def __init__(self, block: Block, capture_at: int):
        self.block = block
        self.capture_at = capture_at
        self.local: set[int] = {id(a) for a in block.arguments}
        self.captured: list[Value] = []
        self.map: dict[int, Value] = {}


class Builder:
    """Adds typed nodes to ``graph`` at its insertion point; the scope stack names the module being
    traced."""

    def __init__(self, graph: Graph, *, capture_locations: bool = True, scope: str = "", loc: str = ""):
        self.graph = graph
        self.capture_locations = capture_locations
        self._scopes: list[str] = [scope] if scope else []
        self._loc = loc
        self.param_names: dict[int, str] = {}  # id(Parameter) -> graph param name
        self.param_objects: dict[int, Any] = {}  # keep Parameters alive while their ids are keys
        self.state_updates: dict[str, Value] = {}
        self.adopted: list = []  # modules named during this trace (their paths are reset after it)
        self.training = False
        self._rng: Value | None = None
        self._rng_sites = 0
        self.seed = 0
        # Insertion point: new nodes go into ``_block`` before ``_before`` (None: at its end).
        self._block: Block = graph.body
        self._before: Node | None = None
        self._records: list[list[Node]] = []
        # Regions being traced, innermost last (gf.cond/scan/while_loop bodies): what each may read
        # and the outer values it captured as extra operands (the capture rule is explicit).
        self._frames: list[RegionFrame] = []

    # ---- context ---------------------------------------------------------------------------
    # The contexts below are small classes rather than ``contextlib.contextmanager`` generators:
    # the tracer enters one per module call and the rewrite engine four per rewrite, and a
    # generator context costs several times more to enter and leave (measured on the 100k-node
    # compile benchmark, docs/benchmarks.md).
    def activate(self) -> "_Activated":
        """Context: this builder is the current one (``active_builder()``) inside the block."""
        return _Activated(self)

    def scope(self, path: str) -> "_Scoped":
        """Context: nodes emitted inside get module scope ``path``."""
        return _Scoped(self, path)

    def provenance(self, scope: str, loc: str) -> "_Provenance":
        """Stamp every node emitted inside with this provenance (used by passes and VJP rules)."""
        return _Provenance(self, scope, loc)

    # ---- insertion point ---------------------------------------------------------------------
    def _insertion(self, block: Block, before: Node | None) -> "_Insertion":
        return _Insertion(self, block, before)

    def inserting_before(self, node: Node):
        """Context: emitted nodes go right before ``node``, in emission order."""
        return self._insertion(self._block_of(node), node)

    def inserting_after(self, node: Node):
        """Context: emitted nodes go right after ``node``, in emission order."""
        # Inserting before the node that follows keeps successive emissions in order.
        return self._insertion(self._block_of(node), node.next)

    def inserting_at_end(self, block: Block | None = None):
        """Context: emitted nodes go to the end of ``block`` (default: the graph's top level)."""
        return self._insertion(self.graph.body if block is None else block, None)

    @staticmethod
    def _block_of(node: Node) -> Block:
        if not isinstance(node, Node) or node.block is None:
            raise TraceError(f"cannot insert next to {node!r}: it is not in a graph")
        return node.block

    def recording(self) -> "_Recording":
        """Context yielding a list that collects every node emitted inside it (to undo a rewrite)."""
        return _Recording(self)

    @property
    def current_scope(self) -> str:
        return self._scopes[-1] if self._scopes else ""

    # ---- regions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def tracing_region(self, block: Block, capture_at: int = 0) -> Iterator["RegionFrame"]:
        """Context: nodes emitted inside go to the end of ``block`` (a region being traced). An
        input from outside the region is captured: it gets a new argument of ``block`` (inserted
        at ``capture_at`` + the number captured so far) and the frame's ``captured`` lists the outer
        value, which the caller passes to the region's owner as an operand."""
        frame = RegionFrame(block, capture_at)
        self._frames.append(frame)
        try:
            with self._insertion(block, None):
                yield frame
        finally:
            self._frames.pop()

    def _resolve(self, value: Value, depth: int) -> Value:
        frame = self._frames[depth]
        if id(value) in frame.local:
            return value
        arg = frame.map.get(id(value))
        if arg is None:
            outer = self._resolve(value, depth - 1) if depth > 0 else value
            arg = frame.block.add_argument(value.type, index=frame.capture_at + len(frame.captured))
            frame.captured.append(outer)
            frame.map[id(value)] = arg
            frame.local.add(id(arg))
        return arg

    def _visible(self, value: Value) -> bool:
        """Whether ``value`` may be read at the insertion point: a top-level value (captured if a
        region is being traced), a value of a region being traced, or one of the insertion block or
        a block enclosing it."""
        producer = value.producer
        if value.kind != "arg" and (producer is None or producer._block is None or producer._block.owner is None):
            return True
        for frame in self._frames:
            if id(value) in frame.local:
                return True
        block = self._block
        while block is not None:
            if producer is not None and producer._block is block:
                return True
            if value.kind == "arg" and any(a is value for a in block.arguments):
                return True
            block = block.owner._block if block.owner is not None else None
        return False

    def _captured_inputs(self, inputs: Sequence[Value]) -> list[Value]:
        if not self._frames or self._block is not self._frames[-1].block:
            return list(inputs)
        depth = len(self._frames) - 1
        return [self._resolve(v, depth) for v in inputs]

    def emit_yield(self, values: Sequence[Value]) -> Node:
        """End the region being built with ``yield(values)`` (outer values are captured)."""
        values = self._captured_inputs(values)
        node = Node(YIELD, values, None, [], scope=self.current_scope,
                    loc=user_location() if self.capture_locations else self._loc)
        self._block.append(node)
        for record in self._records:
            record.append(node)
        return node

    # ---- emitting --------------------------------------------------------------------------
    def emit(self, op: str, inputs: Sequence[Value], attrs: dict | None = None,
             regions: Sequence[Block] | None = None) -> list[Value]:
        scope = self.current_scope
        loc = user_location() if self.capture_locations else self._loc
        for v in inputs:
            if not self._visible(v):
                owner = v.producer._block.owner.op if v.producer is not None and v.producer._block.owner else "a region"
                raise TraceError(f"{op} reads a value computed inside the body of {owner} from outside that body",
                                 scope=scope or None, op=op, loc=(user_location(full=True) if self.capture_locations
                                                                  else loc) or None,
                                 hint="return the value from the body (as a carry, a scanned output or a branch "
                                      "result) and use the op's result instead")
        if self._frames:
            inputs = self._captured_inputs(inputs)
        in_types = [v.type for v in inputs]
        try:
            opdef = registry.get_op(op)
            checked = registry.check_attrs(opdef, attrs or {})
            out_types, stamp = registry.infer_and_stamp(opdef, in_types, checked, regions=regions)
        except GraphforgeError as exc:
            full_loc = user_location(full=True) if self.capture_locations else loc
            detail = exc.detail
            if detail.startswith(op + ": "):
                detail = detail[len(op) + 2:]
            if inputs and isinstance(exc, ShapeError):
                detail += f" (inputs: {', '.join(str(v.type) for v in inputs)})"
            raise type(exc)(detail, scope=scope or None, op=op, loc=full_loc or None,
                            hint=exc.hint) from None
        node = Node.adopting(op, inputs, checked, out_types, scope, loc)  # check_attrs built `checked`
        if regions:
            node.set_regions(regions)
        node.type_stamp = stamp
        if self._before is None:
            self._block.append(node)
        else:
            self._block.insert_before(self._before, node)
        for record in self._records:
            record.append(node)
        if self._frames and self._block is self._frames[-1].block:
            self._frames[-1].local.update(id(o) for o in node.outputs)
        return node.outputs

    def emit1(self, op: str, inputs: Sequence[Value], attrs: dict | None = None,
              regions: Sequence[Block] | None = None) -> Value:
        return self.emit(op, inputs, attrs, regions=regions)[0]

    # ---- parameters and randomness ---------------------------------------------------------
    def register_param(self, param, name: str, value) -> Value:
        from ..ir.types import TensorType

        kind = "param" if param.trainable else "buffer"
        graph_value = self.graph.add_param(name, TensorType(param.shape, param.dtype), value, kind)
        self.param_names[id(param)] = name
        self.param_objects[id(param)] = param
        return graph_value

    def param_value(self, param) -> Value:
        name = self.param_names.get(id(param))
        if name is None:
            # A Parameter that is not an attribute of any traced module: name it by scope.
            stem = ".".join(p for p in (self.current_scope, "param") if p)
            name = self.graph.fresh_param_name(stem)
            self.register_param(param, name, param.materialize(name, self.seed))
        return self.graph.param_values[name]

    def rng_key(self) -> Value:
        """A fresh per-site RNG key (u32 scalar) derived from the graph's ``rng`` input."""
        from ..ir.types import TensorType
        import numpy as np

        if self._rng is None:
            self._rng = self.graph.add_input("rng", TensorType((), "uint32"))
        self._rng_sites += 1
        salt = self.emit1("constant", [], {"value": np.array(self._rng_sites * 0x9E3779B9 & 0xFFFFFFFF, dtype=np.uint32)})
        return self.emit1("add", [self._rng, salt])


class _Activated:
    __slots__ = ("builder",)

    def __init__(self, builder: Builder):
        self.builder = builder

    def __enter__(self) -> Builder:
        _stack().append(self.builder)
        return self.builder

    def __exit__(self, *exc) -> bool:
        _stack().pop()
        return False


class _Scoped:
    __slots__ = ("builder", "path")

    def __init__(self, builder: Builder, path: str):
        self.builder, self.path = builder, path

    def __enter__(self) -> None:
        self.builder._scopes.append(self.path)

    def __exit__(self, *exc) -> bool:
        self.builder._scopes.pop()
        return False


class _Provenance:
    __slots__ = ("builder", "scope", "loc", "saved")

    def __init__(self, builder: Builder, scope: str, loc: str):
        self.builder, self.scope, self.loc, self.saved = builder, scope, loc, None

    def __enter__(self) -> None:
        b = self.builder
        self.saved = (b._scopes, b._loc, b.capture_locations)
        b._scopes, b._loc, b.capture_locations = ([self.scope] if self.scope else []), self.loc, False

    def __exit__(self, *exc) -> bool:
        b = self.builder
        # The saved list itself, not a copy: nothing appends to it while it is not the current one.
        b._scopes, b._loc, b.capture_locations = self.saved
        return False


class _Insertion:
    __slots__ = ("builder", "block", "before", "saved")

    def __init__(self, builder: Builder, block: Block, before: Node | None):
        self.builder, self.block, self.before, self.saved = builder, block, before, None

    def __enter__(self) -> Builder:
        b = self.builder
        self.saved = (b._block, b._before)
        b._block, b._before = self.block, self.before
        return b

    def __exit__(self, *exc) -> bool:
        self.builder._block, self.builder._before = self.saved
        return False


class _Recording:
    __slots__ = ("builder", "record")

    def __init__(self, builder: Builder):
        self.builder, self.record = builder, []

    def __enter__(self) -> list:
        self.builder._records.append(self.record)
        return self.record

    def __exit__(self, *exc) -> bool:
        records, record = self.builder._records, self.record
        if records and records[-1] is record:
            records.pop()
        else:  # by identity: two records holding the same nodes compare equal
            records[:] = [r for r in records if r is not record]
        return False
