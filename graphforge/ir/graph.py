"""The typed SSA graph: Value, Node, Block, Graph.

Values know their producer and their uses; every edit goes through the methods here
(``replace_all_uses_with``, ``set_input``, insertion before/after a node, ``erase``/``remove_nodes``)
so the use lists never go stale and no pass needs to rebuild or re-sort a node list.

A :class:`Block` is an ordered, doubly linked list of nodes: O(1) insertion before/after a node and
O(1) unlinking, while iteration, ``len``, indexing and ``in`` read like a list. The graph's top level
is a Block (``graph.nodes``); a node's ``regions`` (empty today; control flow adds them) are Blocks
too, so :meth:`Graph.walk` and the verifier already descend into nested regions.
"""
from __future__ import annotations

import itertools
import re
from builtins import type as builtins_type
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import VerifyError
from .types import TensorType

__all__ = ["Value", "Node", "Block", "Graph", "VALUE_KINDS", "YIELD", "is_terminator"]

# input: a runtime input; param: trainable weight; buffer: non-trainable state (running stats);
# const: a large constant tensor held beside the params (e.g. produced by folding); node: an op result;
# arg: an argument of a region (the branch of a cond, a loop body).
VALUE_KINDS = ("input", "param", "buffer", "const", "node", "arg")

# The terminator of every region: ``yield(%a, %b)`` names the region's results. It is no registered
# op (it computes nothing, has no lowering and no VJP); the IR, the verifier and the region-aware
# walkers know it by this name.
YIELD = "yield"


def is_terminator(node) -> bool:
    """Whether ``node`` is a region's ``yield`` (passes leave it where it is)."""
    return node.op == YIELD
_ids = itertools.count()
_VALUE_NAME = re.compile(r"[\w.\-/]+")  # what the parser reads after '%' (module paths, ONNX-style names)


class Value:
    """One SSA value. ``name`` is None for anonymous intermediates (printed by number).

    Args:
        type: its TensorType.
        name: see above.
        producer: the Node whose result it is (None for inputs and params).
        index: which of the producer's results it is.
        kind: ``"input"``, ``"param"``, ``"buffer"``, ``"const"`` or ``"node"``.
    """

    __slots__ = ("name", "type", "producer", "index", "uses", "kind", "_id")

    def __init__(self, type: TensorType, *, name: str | None = None, producer: "Node | None" = None,
                 index: int = 0, kind: str = "node"):
        if builtins_type(type) is not TensorType:  # a TensorSpec (or other subclass) compares unequal
            type = TensorType(type.shape, type.dtype)
        self.type = type
        self.name = name
        self.producer = producer
        self.index = index
        self.uses: list[tuple[Node, int]] = []
        self.kind = kind
        self._id = next(_ids)

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def users(self) -> list["Node"]:
        seen, out = set(), []
        for node, _ in self.uses:
            if id(node) not in seen:
                seen.add(id(node))
                out.append(node)
        return out

    def __repr__(self) -> str:
        return f"Value({self.name or '#' + str(self._id)}: {self.type})"


class Node:
    """One op application. ``scope`` is the module path, ``loc`` the user's ``file:line``
    (several, separated by ``;``, when a node absorbed others in a fusion).

    Args:
        op: the registered op name.
        inputs: the input Values.
        attrs: the op's attributes.
        output_types: the result types (checked by the op's type rule when built by tracing).
    """

    __slots__ = ("op", "inputs", "attrs", "outputs", "scope", "loc", "_id", "type_stamp", "regions",
                 "_block", "_prev", "_next")

    def __init__(self, op: str, inputs: Iterable[Value], attrs: dict[str, Any] | None,
                 output_types: Iterable[TensorType], *, scope: str = "", loc: str = ""):
        self.op = op
        self.inputs: list[Value] = list(inputs)
        self.attrs = dict(attrs) if attrs else {}
        self.scope = scope or ""
        self.loc = loc or ""
        self._id = next(_ids)
        # What the op's type rule was last checked against (``ops.registry.type_stamp``), so that
        # ``infer`` need not re-run rules on nodes nothing changed; None = never checked.
        self.type_stamp = None
        # Nested blocks this node owns (the branches of a conditional, a loop body).
        self.regions: tuple[Block, ...] = ()
        # Position: the Block holding the node (None while detached or once erased) and neighbours.
        self._block: Block | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        for i, value in enumerate(self.inputs):
            value.uses.append((self, i))
        self.outputs = [Value(t, producer=self, index=i) for i, t in enumerate(output_types)]

    @classmethod
    def adopting(cls, op: str, inputs: Iterable[Value], attrs: dict[str, Any], output_types: Iterable[TensorType],
                 scope: str = "", loc: str = "") -> "Node":
        """``Node(op, inputs, attrs, output_types, scope=, loc=)`` that takes ``attrs`` as it is (a
        dict the caller just built and hands over, such as ``registry.check_attrs``'s result) instead
        of copying it, and fills the slots directly: the builder makes one per traced op."""
        node = cls.__new__(cls)
        node.op = op
        node.inputs = inputs = list(inputs)
        node.attrs = attrs
        node.scope = scope or ""
        node.loc = loc or ""
        node._id = next(_ids)
        node.type_stamp = None
        node.regions = ()
        node._block = node._prev = node._next = None
        for i, value in enumerate(inputs):
            value.uses.append((node, i))
        outputs = []
        new_value = Value.__new__
        for i, t in enumerate(output_types):
            if builtins_type(t) is not TensorType:
                t = TensorType(t.shape, t.dtype)
            out = new_value(Value)
            out.type, out.name, out.producer, out.index, out.uses, out.kind = t, None, node, i, [], "node"
            out._id = next(_ids)
            outputs.append(out)
        node.outputs = outputs
        return node

    @property
    def output(self) -> Value:
        return self.outputs[0]

    def set_regions(self, regions: Iterable["Block"]) -> None:
        """Make ``regions`` this node's nested blocks (each names this node as its owner)."""
        regions = tuple(regions)
        for region in regions:
            region.owner = self
        self.regions = regions

    def set_input(self, index: int, value: Value) -> None:
        old = self.inputs[index]
        old.uses.remove((self, index))
        self.inputs[index] = value
        value.uses.append((self, index))

    def detach(self) -> None:
        """Drop this node's uses of its inputs (before removing it from a graph)."""
        for i, value in enumerate(self.inputs):
            try:
                value.uses.remove((self, i))
            except ValueError:
                pass

    @property
    def block(self) -> "Block | None":
        """The block holding this node (None when it is in no graph)."""
        return self._block

    @property
    def next(self) -> "Node | None":
        return self._next if self._block is not None else None

    @property
    def prev(self) -> "Node | None":
        return self._prev if self._block is not None else None

    def provenance(self) -> str:
        parts = [p for p in (self.scope, self.loc) if p]
        return " @ ".join(parts)

    def __repr__(self) -> str:
        return f"Node({self.op}, scope={self.scope!r}, loc={self.loc!r})"


class Block:
    """An ordered list of nodes, doubly linked through the nodes themselves.

    Reads like a list (``for n in block``, ``len``, ``block[i]``, ``reversed``, ``node in block``,
    ``block == [...]``); edits go through :meth:`append`, :meth:`insert_before`,
    :meth:`insert_after`, :meth:`move_before` and :meth:`erase`, all O(1) (``erase`` is O(uses of
    the node's inputs)). Iteration tolerates edits made while it runs: nodes erased ahead of the
    cursor are skipped, nodes inserted ahead of it are visited, nodes inserted behind it are not.

    ``owner`` is the node whose region this block is (None for a graph's top level); ``arguments``
    are the values a region receives from its owner (none at the top level, whose values come from
    the graph's inputs and parameters)."""

    __slots__ = ("_head", "_tail", "_len", "owner", "arguments")

    def __init__(self, owner: Node | None = None, arguments: Iterable[Value] = ()):
        self._head: Node | None = None
        self._tail: Node | None = None
        self._len = 0
        self.owner = owner
        self.arguments: list[Value] = list(arguments)

    # ---- reading (list-like) ------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[Node]:
        node = self._head
        while node is not None:
            # An erased node keeps its forward link, so a cursor standing on it still moves on.
            if node._block is self:
                yield node
            node = node._next

    def __reversed__(self) -> Iterator[Node]:
        node = self._tail
        while node is not None:
            if node._block is self:
                yield node
            node = node._prev

    def __contains__(self, node) -> bool:
        return isinstance(node, Node) and node._block is self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        if not isinstance(index, int):
            raise TypeError(f"block indices must be integers or slices, not {type(index).__name__}")
        n = self._len
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("block index out of range")
        if index < n // 2:
            node = self._head
            for _ in range(index):
                node = node._next
        else:
            node = self._tail
            for _ in range(n - 1 - index):
                node = node._prev
        return node

    def index(self, node: Node) -> int:
        for i, n in enumerate(self):
            if n is node:
                return i
        raise ValueError(f"{node!r} is not in this block")

    def __eq__(self, other) -> bool:
        if isinstance(other, (Block, list, tuple)):
            return len(self) == len(other) and all(a is b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # mutable, compared by content

    @property
    def first(self) -> Node | None:
        return self._head

    @property
    def results(self) -> tuple:
        """What the region yields: the inputs of its terminating ``yield`` (() for a top level)."""
        last = self._tail
        if last is not None and last.op == YIELD:
            return tuple(last.inputs)
        return ()

    @property
    def terminator(self) -> Node | None:
        """The region's ``yield`` node (None at the top level or while it is being built)."""
        last = self._tail
        return last if last is not None and last.op == YIELD else None

    def add_argument(self, type: TensorType, index: int | None = None, name: str | None = None) -> Value:
        """A new region argument (at ``index``, default the end)."""
        value = Value(type, name=name, kind="arg")
        if index is None:
            self.arguments.append(value)
        else:
            self.arguments.insert(index, value)
        return value

    @property
    def last(self) -> Node | None:
        return self._tail

    def walk(self) -> Iterator[Node]:
        """Every node of this block and, depth first, of the regions each node owns."""
        for node in self:
            yield node
            for region in node.regions:
                yield from region.walk()

    def __repr__(self) -> str:
        return f"<Block of {self._len} nodes{' in ' + self.owner.op if self.owner is not None else ''}>"

    # ---- editing ---------------------------------------------------------------------------
    def _adopt(self, node: Node) -> None:
        if not isinstance(node, Node):
            raise VerifyError(f"only Nodes go into a graph, got {type(node).__name__}")
        if node._block is not None:
            raise VerifyError(f"{node!r} is already in a graph; erase it there first or use move_before")
        node._block = self
        self._len += 1

    def append(self, node: Node) -> Node:
        self._adopt(node)
        node._prev, node._next = self._tail, None
        if self._tail is None:
            self._head = node
        else:
            self._tail._next = node
        self._tail = node
        return node

    def _anchor(self, anchor: Node) -> None:
        if not isinstance(anchor, Node) or anchor._block is not self:
            raise VerifyError(f"cannot insert next to {anchor!r}: it is not in this block")

    def insert_before(self, anchor: Node | None, node: Node) -> Node:
        """Insert ``node`` right before ``anchor`` (``None``: at the end)."""
        if anchor is None:
            return self.append(node)
        self._anchor(anchor)
        self._adopt(node)
        prev = anchor._prev
        node._prev, node._next = prev, anchor
        anchor._prev = node
        if prev is None:
            self._head = node
        else:
            prev._next = node
        return node

    def insert_after(self, anchor: Node, node: Node) -> Node:
        """Insert ``node`` right after ``anchor``."""
        self._anchor(anchor)
        return self.insert_before(anchor._next, node)

    def _unlink(self, node: Node) -> None:
        # The node keeps its own links: an iterator standing on it continues from there. No cycle
        # remains: its neighbours no longer point back at it.
        prev, nxt = node._prev, node._next
        if prev is None:
            self._head = nxt
        else:
            prev._next = nxt
        if nxt is None:
            self._tail = prev
        else:
            nxt._prev = prev
        node._block = None
        self._len -= 1

    def move_before(self, anchor: Node | None, node: Node) -> Node:
        """Move ``node`` (already in this block) right before ``anchor`` (``None``: to the end)."""
        if node._block is not self:
            raise VerifyError(f"cannot move {node!r}: it is not in this block")
        if anchor is node:
            return node
        if anchor is not None:
            self._anchor(anchor)
        self._unlink(node)
        return self.insert_before(anchor, node)

    def erase(self, node: Node) -> None:
        """Remove ``node``; its results must be unused (redirect them first), else VerifyError."""
        if node._block is not self:
            raise VerifyError(f"cannot erase {node!r}: it is not in this block")
        for out in node.outputs:
            if out.uses:
                raise VerifyError(f"cannot erase {node.op} ({node.provenance() or 'no provenance'}): its "
                                  f"result is still used by {out.uses[0][0].op}",
                                  hint="redirect the uses with graph.replace_all_uses_with first")
        node.detach()
        self._forget(node)

    def _forget(self, node: Node) -> None:
        """Unlink an erased node and drop its references to values: a removed node then forms no
        Node↔Value cycle and is freed by reference counting, not by the cyclic GC."""
        self._unlink(node)
        node.inputs = []
        node.outputs = []
        for region in node.regions:
            for inner in list(region):
                inner.detach()
                region._forget(inner)

    def _relink(self, order: list[Node]) -> None:
        """Put the block's nodes (exactly these, in any order) in ``order``."""
        prev = None
        for node in order:
            node._prev = prev
            if prev is not None:
                prev._next = node
            prev = node
        if prev is not None:
            prev._next = None
        self._head = order[0] if order else None
        self._tail = prev

    def toposort(self) -> None:
        """Restore a topological order, keeping the current one where it is valid (stable).

        Values from outside the block (graph inputs, parameters, an enclosing block) count as
        defined; a value produced by a node in no block is an error, like a cycle."""
        order: list[Node] = []
        state: dict[int, int] = {}  # 1 = visiting, 2 = done
        for root in self:
            if state.get(id(root)) == 2:
                continue
            stack = [(root, 0)]
            while stack:
                node, i = stack.pop()
                if i == 0:
                    if state.get(id(node)) == 2:
                        continue
                    state[id(node)] = 1
                if i < len(node.inputs):
                    stack.append((node, i + 1))
                    producer = node.inputs[i].producer
                    if producer is None:
                        continue
                    if producer._block is not self:
                        if producer._block is None:
                            raise VerifyError(f"{node.op} ({node.provenance() or 'no provenance'}) reads a "
                                              f"result of a {producer.op} node that is not in the graph")
                        continue
                    s = state.get(id(producer))
                    if s == 1:
                        raise VerifyError(f"cycle through node {producer.op} ({producer.provenance()})")
                    if s is None:
                        stack.append((producer, 0))
                else:
                    state[id(node)] = 2
                    order.append(node)
        self._relink(order)
        for node in order:
            for region in node.regions:
                region.toposort()


class Graph:
    """A typed SSA graph with named inputs, outputs and parameter tensors.

    Args:
        name: the graph's name (printed in its header).
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.output_names: list[str] = []
        self.body = Block()
        self.params: dict[str, np.ndarray] = {}
        self.param_values: dict[str, Value] = {}
        # Called with the arrays after gf.load_params installs them into this graph: an owner that
        # keeps live copies of the weights elsewhere (a gf.Trainer, on the device) stays in sync.
        # Not copied by copy(): a copy has no owner.
        self.params_loaded_listeners: list = []
        # Module scopes to rematerialise in the backward pass (scope -> policy, see passes/remat.py),
        # marked by nn.remat / gf.checkpoint while tracing; copied by copy(), not printed.
        self.remat_scopes: dict[str, str] = {}

    def compiled_cache(self, backend: str) -> dict:
        """``backend``'s cache of compiled forms of this graph (``gf.run``'s jitted functions and
        onnxruntime sessions), held by the graph itself so that it is freed with the graph. (A
        module-level ``WeakKeyDictionary`` keyed by the graph never freed anything: a compiled form
        references its graph, so the key stayed alive, and every graph ever run leaked its
        executables and onnxruntime's threads.) Not copied by :meth:`copy`."""
        caches = self.__dict__.setdefault("_compiled", {})
        return caches.setdefault(backend, {})

    # ---- construction -------------------------------------------------------------------
    def _check_name(self, name) -> None:
        # Input and parameter names are printed bare (``%layer1.weight``); all-digit names would
        # collide with the numbering of anonymous values.
        if not isinstance(name, str) or not _VALUE_NAME.fullmatch(name) or name.isdigit():
            raise VerifyError(f"invalid value name {name!r}: use letters, digits, '_', '.', '-' and '/', "
                              "not only digits")

    def add_input(self, name: str, type: TensorType) -> Value:
        self._check_name(name)
        if any(v.name == name for v in self.inputs) or name in self.param_values:
            raise VerifyError(f"graph {self.name!r} already has a value named {name!r}")
        value = Value(type, name=name, kind="input")
        self.inputs.append(value)
        return value

    def add_param(self, name: str, type: TensorType, value: np.ndarray | None = None,
                  kind: str = "param") -> Value:
        if kind not in ("param", "buffer", "const"):
            raise VerifyError(f"unknown parameter kind {kind!r}")
        self._check_name(name)
        if name in self.param_values or any(v.name == name for v in self.inputs):
            raise VerifyError(f"graph {self.name!r} already has a value named {name!r}")
        v = Value(type, name=name, kind=kind)
        self.param_values[name] = v
        if value is not None:
            self.params[name] = value
        return v

    def fresh_param_name(self, stem: str) -> str:
        if stem not in self.param_values:
            return stem
        for i in itertools.count(1):
            if f"{stem}.{i}" not in self.param_values:
                return f"{stem}.{i}"
        raise AssertionError("unreachable")

    @property
    def nodes(self) -> Block:
        """The top-level nodes in topological order (a :class:`Block`; read it like a list)."""
        return self.body

    def append(self, node: Node) -> Node:
        return self.body.append(node)

    def insert_before(self, anchor: Node, node: Node) -> Node:
        """Insert ``node`` right before ``anchor``, in ``anchor``'s block."""
        return self._block_of(anchor).insert_before(anchor, node)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        """Insert ``node`` right after ``anchor``, in ``anchor``'s block."""
        return self._block_of(anchor).insert_after(anchor, node)

    def erase(self, node: Node) -> None:
        """Remove one node whose results are unused and are not graph outputs (else VerifyError)."""
        block = self._block_of(node)
        if any(self.is_output(o) for o in node.outputs):
            raise VerifyError(f"cannot erase {node.op} ({node.provenance() or 'no provenance'}): its result "
                              "is a graph output", hint="redirect it with graph.replace_all_uses_with first")
        block.erase(node)

    @staticmethod
    def _block_of(node: Node) -> Block:
        if not isinstance(node, Node) or node._block is None:
            raise VerifyError(f"{node!r} is not in a graph")
        return node._block

    def walk(self) -> Iterator[Node]:
        """Every node, in order, descending into the regions nodes own (depth first)."""
        return self.body.walk()

    def set_outputs(self, values: list[Value], names: list[str] | None = None) -> None:
        self.outputs = list(values)
        self.output_names = list(names) if names else [f"output{i}" if i else "output" for i in range(len(values))]

    # ---- queries -------------------------------------------------------------------------
    @property
    def trainable_names(self) -> list[str]:
        return [n for n, v in self.param_values.items() if v.kind == "param"]

    @property
    def state_updates(self) -> dict[str, int]:
        """Buffers updated by this graph (BatchNorm running stats): buffer name → output index."""
        return {n[len("update:"):]: i for i, n in enumerate(self.output_names) if n.startswith("update:")}

    def input(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise KeyError(name)

    def all_values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.param_values.values()
        yield from self._block_values(self.body)

    def _block_values(self, block: Block) -> Iterable[Value]:
        yield from block.arguments
        for node in block:
            yield from node.outputs
            for region in node.regions:
                yield from self._block_values(region)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.walk():
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    def is_output(self, value: Value) -> bool:
        return any(o is value for o in self.outputs)

    def has_uses(self, value: Value) -> bool:
        return bool(value.uses) or self.is_output(value)

    # ---- editing -------------------------------------------------------------------------
    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        """Redirect every use of ``old`` (and the graph outputs that are ``old``) to ``new``, which
        must have the same type (else VerifyError and no change)."""
        if old is new:
            return
        if old.type != new.type:
            raise VerifyError(f"cannot replace {old!r} with {new!r}: the types differ")
        # O(uses): move the whole use list at once (set_input per use would search old.uses
        # each time, quadratic for a value with many users such as a shared constant).
        moved, old.uses = old.uses, []
        for node, index in moved:
            node.inputs[index] = new
            new.uses.append((node, index))
        if any(o is old for o in self.outputs):
            self.outputs = [new if o is old else o for o in self.outputs]

    def remove_nodes(self, dead: Iterable[Node]) -> None:
        """Remove nodes; their outputs must be unused outside ``dead`` and not be graph outputs
        (redirect them first with :meth:`replace_all_uses_with`), else VerifyError and no change."""
        dead = list({id(n): n for n in dead}.values())
        dead_ids = {id(n) for n in dead}
        if not dead_ids:
            return
        outputs = {id(o) for o in self.outputs}
        # Plain loops (no comprehensions): passes remove tens of thousands of nodes at a time.
        touched: dict[int, Value] = {}
        for node in dead:
            if not isinstance(node, Node) or node._block is None:
                raise VerifyError(f"cannot remove {node!r}: it is not in a graph")
            for out in node.outputs:
                if id(out) in outputs:
                    raise VerifyError(f"cannot remove {node.op} ({node.provenance() or 'no provenance'}): "
                                      f"its result {out!r} is a graph output")
                for user, _ in out.uses:
                    if id(user) not in dead_ids:
                        raise VerifyError(f"cannot remove {node.op} ({node.provenance() or 'no provenance'}): "
                                          f"its result is still used by {user.op}",
                                          hint="redirect the uses with graph.replace_all_uses_with first")
            for value in node.inputs:
                touched[id(value)] = value
        # Filter each touched use list once (detaching node by node would search a shared
        # value's use list once per removed user: quadratic for a constant used everywhere).
        for value in touched.values():
            uses = value.uses
            if len(uses) == 1:  # most values: their one reader is what is being removed
                if id(uses[0][0]) in dead_ids:
                    value.uses = []
                continue
            value.uses = [(n, i) for n, i in uses if id(n) not in dead_ids]
        for node in dead:
            if node._block is not None:  # not already gone with the region of another removed node
                node._block._forget(node)

    def remove_param(self, name: str) -> None:
        self.param_values.pop(name, None)
        self.params.pop(name, None)

    def toposort(self) -> None:
        """Restore topological order after edits, keeping the current order where it is valid.

        Passes do not need it (they insert replacements where they belong); it is kept for code
        that builds nodes out of order, such as importers."""
        self.body.toposort()

    def copy(self) -> "Graph":
        """A structural copy: new Values and Nodes, shared (immutable) parameter arrays."""
        new = Graph(self.name)
        mapping: dict[int, Value] = {}
        for v in self.inputs:
            mapping[id(v)] = new.add_input(v.name, v.type)
        for name, v in self.param_values.items():
            mapping[id(v)] = new.add_param(name, v.type, self.params.get(name), v.kind)
        _copy_block(self.body, new.body, mapping)
        new.set_outputs([mapping[id(o)] for o in self.outputs], list(self.output_names))
        new.remat_scopes = dict(self.remat_scopes)
        return new

    # ---- analyses and printing ----------------------------------------------------------
    def verify(self) -> "Graph":
        from .verify import verify_graph
        verify_graph(self)
        return self

    def to_networkx(self):
        """A networkx DiGraph: one vertex per node/input/param, edges labelled with types."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        ids: dict[int, str] = {}
        for v in list(self.inputs) + list(self.param_values.values()):
            ids[id(v)] = f"{v.kind}:{v.name}"
            g.add_node(ids[id(v)], kind=v.kind, label=v.name, type=str(v.type))
        for i, node in enumerate(self.nodes):
            key = f"n{i}:{node.op}"
            g.add_node(key, kind="node", op=node.op, label=node.op, scope=node.scope, loc=node.loc)
            for out in node.outputs:
                ids[id(out)] = key
            for value in node.inputs:
                g.add_edge(ids[id(value)], key, type=str(value.type))
        for i, out in enumerate(self.outputs):
            key = f"output:{self.output_names[i]}"
            g.add_node(key, kind="output", label=self.output_names[i])
            g.add_edge(ids[id(out)], key, type=str(out.type))
        return g

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.params)} params>"


def _copy_block(src: Block, dst: Block, mapping: dict[int, Value]) -> None:
    # The copy of a million-node graph builds millions of Nodes and Values: ``Node.adopting`` fills
    # their slots directly (no re-checks a copy of a valid graph does not need), and the copies are
    # linked in one go below.
    adopting = Node.adopting
    prev = dst._tail
    count = 0
    for node in src:
        copy = adopting(node.op, [mapping[id(i)] for i in node.inputs], dict(node.attrs),
                        [o.type for o in node.outputs], node.scope, node.loc)
        copy.type_stamp = node.type_stamp  # same op, equal types, equal attrs: still valid
        for old, fresh in zip(node.outputs, copy.outputs):
            fresh.name = old.name
            mapping[id(old)] = fresh
        if node.regions:
            regions = []
            for region in node.regions:
                args = [Value(a.type, name=a.name, kind=a.kind) for a in region.arguments]
                mapping.update((id(a), b) for a, b in zip(region.arguments, args))
                inner = Block(copy, args)
                _copy_block(region, inner, mapping)
                regions.append(inner)
            copy.set_regions(regions)
        # append, inlined
        copy._block = dst
        copy._prev = prev
        copy._next = None
        if prev is None:
            dst._head = copy
        else:
            prev._next = copy
        prev = copy
        count += 1
    dst._tail = prev
    dst._len += count
