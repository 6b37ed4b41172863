"""No pass or runtime edits a graph's node container directly (DESIGN rule 4): they insert before/after
a node, erase, and redirect uses; nothing assigns, appends to, slices, or re-sorts ``graph.nodes``.

The scan reads the source with ``ast``: an assignment to ``<x>.nodes``, a mutating method called on
it (``append``, ``insert``, ``pop``, ``remove``, ``extend``, ``reverse``, ``sort``, ``clear``), a
``del`` of or a slice of it, and in passes/ any ``.toposort()`` call (passes keep the order as they
go)."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MUTATORS = {"append", "insert", "pop", "remove", "extend", "reverse", "sort", "clear"}
# Not graph node containers: the ONNX emitter's list of onnx NodeProtos, and a pattern Match's tuple
# of the nodes it covered; the ONNX exporter swaps in a fresh NodeProto list per control-flow subgraph.
ALLOWED = {("runtimes/onnx/lower.py", "self.nodes"), ("passes/pattern.py", "self.nodes"),
           ("runtimes/onnx/control_flow.py", "ctx.nodes")}


def _nodes_attr(node) -> str | None:
    """``'<receiver>.nodes'`` when ``node`` is an ``<receiver>.nodes`` attribute, else None."""
    if isinstance(node, ast.Attribute) and node.attr == "nodes":
        return f"{ast.unparse(node.value)}.nodes"
    return None


def violations(source: str, path: str, *, forbid_toposort: bool) -> list[str]:
    found = []

    def flag(node, what: str, target: str | None = None):
        if target is not None and (path, target) in ALLOWED:
            return
        found.append(f"{path}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    name = _nodes_attr(sub)
                    if name:
                        flag(node, f"assigns or deletes {name}", name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = _nodes_attr(node.func.value)
            if name and node.func.attr in MUTATORS:
                flag(node, f"calls {name}.{node.func.attr}()", name)
            if forbid_toposort and node.func.attr == "toposort":
                flag(node, "re-sorts a graph (toposort)")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            name = _nodes_attr(node.value)
            if name:
                flag(node, f"slices {name}", name)
    return found


def _sources(folder: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()


@pytest.mark.parametrize("folder", ["passes", "runtimes"])
def test_no_direct_node_container_edits(folder):
    bad = []
    for path, source in _sources(folder):
        bad += violations(source, path, forbid_toposort=folder == "passes")
    assert not bad, "edit graphs through insert_before/insert_after/erase/replace_all_uses_with:\n" + "\n".join(bad)


@pytest.mark.parametrize("snippet", [
    "graph.nodes = []",
    "g.nodes.append(n)",
    "graph.nodes.insert(0, graph.nodes.pop())",
    "del graph.nodes[3:]",
    "extra = graph.nodes[mark:]",
    "graph.nodes.sort(key=order)",
    "self.graph.nodes += more",
    "graph.toposort()",
])
def test_the_scan_catches_each_kind_of_edit(snippet):
    assert violations(snippet, "passes/x.py", forbid_toposort=True)


def test_the_scan_allows_reads_and_the_block_api():
    ok = ("for n in graph.nodes: pass\nfirst = graph.nodes[0]\nn = len(graph.nodes)\n"
          "graph.nodes.insert_before(a, b)\ngraph.erase(n)\nlist(graph.nodes)\n")
    assert violations(ok, "passes/x.py", forbid_toposort=True) == []
