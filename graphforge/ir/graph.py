"""The typed SSA graph: Value, Node, Graph.

Values know their producer and their uses; every edit goes through the methods here
(``replace_all_uses_with``, ``set_input``, ``remove_nodes``) so the use lists never go stale.
"""
from __future__ import annotations

import itertools
import re
from builtins import type as builtins_type
from typing import Any, Iterable

import numpy as np

from ..errors import VerifyError
from .types import TensorType

__all__ = ["Value", "Node", "Graph", "VALUE_KINDS"]

# input: a runtime input; param: trainable weight; buffer: non-trainable state (running stats);
# const: a large constant tensor held beside the params (e.g. produced by folding); node: an op result.
VALUE_KINDS = ("input", "param", "buffer", "const", "node")
_ids = itertools.count()
_VALUE_NAME = re.compile(r"[\w.\-/]+")  # what the parser reads after '%' (module paths, ONNX-style names)


class Value:
    """One SSA value. ``name`` is None for anonymous intermediates (printed by number)."""

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
    (several, separated by ``;``, when a node absorbed others in a fusion)."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "scope", "loc", "_id", "type_stamp")

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
        for i, value in enumerate(self.inputs):
            value.uses.append((self, i))
        self.outputs = [Value(t, producer=self, index=i) for i, t in enumerate(output_types)]

    @property
    def output(self) -> Value:
        return self.outputs[0]

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

    def provenance(self) -> str:
        parts = [p for p in (self.scope, self.loc) if p]
        return " @ ".join(parts)

    def __repr__(self) -> str:
        return f"Node({self.op}, scope={self.scope!r}, loc={self.loc!r})"


class Graph:
    """A typed SSA graph with named inputs, outputs and parameter tensors."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.output_names: list[str] = []
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.param_values: dict[str, Value] = {}

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

    def append(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

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
        for node in self.nodes:
            yield from node.outputs

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
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
        dead = list(dead)
        dead_ids = {id(n) for n in dead}
        if not dead_ids:
            return
        outputs = {id(o) for o in self.outputs}
        for node in dead:
            for out in node.outputs:
                if id(out) in outputs:
                    raise VerifyError(f"cannot remove {node.op} ({node.provenance() or 'no provenance'}): "
                                      f"its result {out!r} is a graph output")
                live = [user for user, _ in out.uses if id(user) not in dead_ids]
                if live:
                    raise VerifyError(f"cannot remove {node.op} ({node.provenance() or 'no provenance'}): "
                                      f"its result is still used by {live[0].op}",
                                      hint="redirect the uses with graph.replace_all_uses_with first")
        # Filter each touched use list once (detaching node by node would search a shared
        # value's use list once per removed user: quadratic for a constant used everywhere).
        touched: dict[int, Value] = {}
        kept: list[Node] = []
        for node in self.nodes:  # one scan: collect the touched use lists and the survivors
            if id(node) in dead_ids:
                for value in node.inputs:
                    touched[id(value)] = value
            else:
                kept.append(node)
        for value in touched.values():
            value.uses = [(n, i) for n, i in value.uses if id(n) not in dead_ids]
        self.nodes = kept

    def remove_param(self, name: str) -> None:
        self.param_values.pop(name, None)
        self.params.pop(name, None)

    def toposort(self) -> None:
        """Restore topological order after edits, keeping the current order where it is valid."""
        order: list[Node] = []
        state: dict[int, int] = {}  # 1 = visiting, 2 = done
        for root in self.nodes:
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
                    if producer is not None:
                        s = state.get(id(producer))
                        if s == 1:
                            raise VerifyError(f"cycle through node {producer.op} ({producer.provenance()})")
                        if s is None:
                            stack.append((producer, 0))
                else:
                    state[id(node)] = 2
                    order.append(node)
        if len(order) != len(self.nodes):
            raise VerifyError("a node depends on a node that is not in the graph")
        self.nodes = order

    def copy(self) -> "Graph":
        """A structural copy: new Values and Nodes, shared (immutable) parameter arrays."""
        new = Graph(self.name)
        mapping: dict[int, Value] = {}
        for v in self.inputs:
            mapping[id(v)] = new.add_input(v.name, v.type)
        for name, v in self.param_values.items():
            mapping[id(v)] = new.add_param(name, v.type, self.params.get(name), v.kind)
        for node in self.nodes:
            copy = Node(node.op, [mapping[id(i)] for i in node.inputs], node.attrs,
                        [o.type for o in node.outputs], scope=node.scope, loc=node.loc)
            copy.type_stamp = node.type_stamp  # same op, equal types, equal attrs: still valid
            for old, fresh in zip(node.outputs, copy.outputs):
                fresh.name = old.name
                mapping[id(old)] = fresh
            new.nodes.append(copy)
        new.set_outputs([mapping[id(o)] for o in self.outputs], list(self.output_names))
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
