"""Where an exported model keeps each node's provenance: ``provenance=`` of ``to_onnx`` / ``save_onnx``.

Rule 5 of the design: every node's provenance (module scope and source location) reaches the ONNX
file. The exporter first writes it the readable way — node name ``<scope>/<OpType>_<k>``, ``doc_string``
``scope @ file:line`` — and :func:`apply_provenance` then keeps it in one of three places:

* ``True`` — node names and ``doc_string`` fields (the default for float graphs; what Netron,
  onnxruntime's error messages and profiles show);
* ``"metadata"`` — no node names or ``doc_string`` fields; one ``metadata_props`` entry
  (:data:`METADATA_KEY`) holds the table instead, JSON: the module scopes as a tree (``[parent,
  name]`` entries), each distinct source location once, the distinct (scope, location) pairs as index
  pairs, and per node (depth-first over the graph and its subgraphs, see :func:`walk_nodes`) the
  index of its pair (-1: none).
  That is the default for graphs holding quantize / dequantize nodes (deployment files, where the
  names and doc strings of a small model can be a sixth of the file) — a few bytes per node rather than
  ~80; :func:`node_provenance` reads it back, and ``gf.from_onnx`` restores the scopes from it;
* ``False`` — none at all (the smallest file; provenance is lost).

Both compact modes also give the initializers and the values nodes compute the shortest free names
(``a``, ``b``, … ``aB``; a name is stored where it is made and once per reader): which module a
parameter or a value belongs to is the provenance of the nodes that read or make it. Graph inputs and
outputs keep their names.
"""
from __future__ import annotations

import itertools
import json
import string

import onnx

from graphforge.errors import ExportError, LoadError

from .control_flow import subgraphs

__all__ = ["METADATA_KEY", "PROVENANCE_MODES", "check_provenance", "apply_provenance", "walk_nodes",
           "node_provenance"]

METADATA_KEY = "graphforge_provenance"
PROVENANCE_MODES = (True, False, "metadata")


def check_provenance(mode):
    """``mode`` itself when it is one of :data:`PROVENANCE_MODES`; ExportError otherwise."""
    if not any(mode is m if isinstance(m, bool) else mode == m for m in PROVENANCE_MODES):
        raise ExportError(f"provenance must be True, False or 'metadata', got {mode!r}",
                          hint="True: node names and doc strings; 'metadata': one compact table in the "
                               "model's metadata_props; False: none")
    return mode


def walk_nodes(graph: onnx.GraphProto):
    """Every node of ``graph``, depth-first: each node, then the nodes of its subgraphs (If branches,
    Loop/Scan bodies), in attribute order — the order of the metadata table."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from walk_nodes(sub)


def _scope_and_loc(node: onnx.NodeProto) -> tuple[str, str]:
    """(scope, source location) of a node as the exporter wrote them: name ``<scope>/<OpType>_<k>``,
    ``doc_string`` ``scope @ loc`` (either part may be missing)."""
    doc = node.doc_string
    scope = node.name.rsplit("/", 1)[0] if "/" in node.name else ""
    if scope and doc.startswith(scope + " @ "):
        return scope, doc[len(scope) + 3:]
    if scope and doc == scope:
        return scope, ""
    if not scope:
        return "", doc
    return doc, ""  # a name not in the exporter's form: keep what the doc string says


class _ScopeTree:
    """Module scopes as a tree: entry ``[parent, name]`` is scope ``<parent's scope>.<name>`` (parent -1:
    a top-level module), so ``encoder.layers.0.attn.q_proj`` shares its first four parts."""

    def __init__(self):
        self.entries: list[list] = []
        self._ids: dict[str, int] = {}

    def index(self, scope: str) -> int:
        """The entry of ``scope`` (added with its parents when new); -1 for the empty scope."""
        if not scope:
            return -1
        if scope not in self._ids:
            parent, _, name = scope.rpartition(".")
            p = self.index(parent)
            self._ids[scope] = len(self.entries)
            self.entries.append([p, name])
        return self._ids[scope]

    @staticmethod
    def paths(entries) -> list[str]:
        out: list[str] = []
        for parent, name in entries:
            out.append(f"{out[parent]}.{name}" if parent >= 0 else name)
        return out


def apply_provenance(model: onnx.ModelProto, mode) -> onnx.ModelProto:
    """Move the provenance the exporter wrote into node names / doc strings to where ``mode`` keeps it
    (in place; returns ``model``)."""
    if check_provenance(mode) is True:
        return model
    tree = _ScopeTree()
    locs: dict[str, int] = {}
    sources: dict[tuple[int, int], int] = {}
    index = []
    for node in walk_nodes(model.graph):
        scope, loc = _scope_and_loc(node)
        if scope or loc:
            key = (tree.index(scope), locs.setdefault(loc, len(locs)) if loc else -1)
            index.append(sources.setdefault(key, len(sources)))
        else:
            index.append(-1)
        node.ClearField("doc_string")
        node.ClearField("name")
    if mode == "metadata":
        table = {"version": 1, "scopes": tree.entries, "locs": list(locs), "sources": [list(k) for k in sources],
                 "nodes": index}
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(table, separators=(",", ":"))
        model.graph.ClearField("doc_string")  # (it names the graph, as the graphforge_graph entry does)
    _shorten_names(model.graph)
    return model


def _short_names():
    """``a`` … ``z``, ``A`` … ``Z``, then two characters (``aa``, ``ab`` …, a letter first), and so on."""
    first = string.ascii_letters
    rest = string.ascii_letters + string.digits + "_"
    for width in itertools.count(1):
        for head in first:
            for tail in itertools.product(rest, repeat=width - 1):
                yield head + "".join(tail)


def _shorten_names(graph: onnx.GraphProto) -> None:
    """Give the initializers and the values the top-level nodes compute the shortest free names (a name
    is stored once where it is made and once per reader): which module a value or a parameter belongs
    to is the provenance of the nodes that make or read it. Initializers with the same type, shape and
    bytes (the zero points of equally wide weights, say) are stored once. Graph inputs and outputs keep
    their names."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    taken = set(keep)
    for node in walk_nodes(graph):
        for sub in subgraphs(node):  # (names a subgraph declares itself)
            taken.update(v.name for v in list(sub.input) + list(sub.output) + list(sub.initializer))
            taken.update(o for inner in walk_nodes(sub) for o in inner.output)
    fresh = (n for n in _short_names() if n not in taken)
    renamed, first, kept = {}, {}, []
    for t in graph.initializer:
        if t.name in keep:
            kept.append(t)
            continue
        key = (t.data_type, tuple(t.dims), t.raw_data) if t.HasField("raw_data") else None
        if key is not None and key in first:
            renamed[t.name] = first[key]
            continue
        renamed[t.name] = t.name = next(fresh)
        kept.append(t)
        if key is not None:
            first[key] = t.name
    if len(kept) != len(graph.initializer):
        copies = [onnx.TensorProto() for _ in kept]
        for c, t in zip(copies, kept):
            c.CopyFrom(t)
        del graph.initializer[:]
        graph.initializer.extend(copies)
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name and name not in keep:
                renamed[name] = node.output[i] = next(fresh)
    for node in walk_nodes(graph):  # (a subgraph reads outer values by name, may return one as it is)
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        for sub in subgraphs(node):
            for vi in list(sub.output) + list(sub.value_info):
                if vi.name in renamed:
                    vi.name = renamed[vi.name]
    for vi in graph.value_info:
        if vi.name in renamed:
            vi.name = renamed[vi.name]


def node_provenance(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str, str]]:
    """``(node, scope, source location)`` for every node (order of :func:`walk_nodes`), read from the
    metadata table when the model has one, else from the nodes' names and doc strings ("" where there
    is none)."""
    nodes = list(walk_nodes(model.graph))
    table = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    if table is None:
        return [(n, *_scope_and_loc(n)) for n in nodes]
    try:
        data = json.loads(table)
        scopes, locs, index = _ScopeTree.paths(data["scopes"]), list(data["locs"]), list(data["nodes"])
        sources = [(scopes[s] if s >= 0 else "", locs[l] if l >= 0 else "") for s, l in data["sources"]]
        if len(index) != len(nodes):
            raise ValueError(f"{len(index)} entries for {len(nodes)} nodes")
        return [(n, *(sources[i] if i >= 0 else ("", ""))) for n, i in zip(nodes, index)]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise LoadError(f"the model's {METADATA_KEY!r} metadata is not a graphforge provenance table: {exc}",
                        hint="was the model edited after export? Re-export it from the graph") from exc
