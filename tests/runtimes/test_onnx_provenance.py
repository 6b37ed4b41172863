"""runtimes/onnx/provenance.py: where an export keeps node provenance (``provenance=True | "metadata" |
False``), the compact names of the compact modes, the defaults (float graphs: names and doc strings;
quantized graphs: the metadata table), reading the table back, and gf.from_onnx restoring scopes."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402
from graphforge.runtimes.onnx.provenance import METADATA_KEY, node_provenance, walk_nodes  # noqa: E402


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.proj(x).relu())


def _graph():
    return gf.trace(_Net(), gf.TensorSpec(("batch", 6)), seed=0, training=False)


def _x(n=5):
    return np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)


def _run(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_metadata_mode_moves_names_and_doc_strings_into_one_table():
    g = _graph()
    full, meta, bare = (gf.to_onnx(g, provenance=p) for p in (True, "metadata", False))
    assert all(n.name and n.doc_string for n in full.graph.node)
    for m in (meta, bare):
        assert not any(n.name or n.doc_string for n in m.graph.node)
    assert METADATA_KEY in {p.key for p in meta.metadata_props}
    assert METADATA_KEY not in {p.key for p in bare.metadata_props}
    # the table says what the names and doc strings said, node for node
    want = [(scope, loc) for _, scope, loc in node_provenance(full)]
    assert [(scope, loc) for _, scope, loc in node_provenance(meta)] == want
    assert ("proj", next(n.loc for n in g.nodes if n.scope == "proj")) in want
    assert len(bare.SerializeToString()) < len(meta.SerializeToString()) < len(full.SerializeToString())
    x = _x()
    np.testing.assert_array_equal(_run(meta, x), _run(full, x))
    np.testing.assert_array_equal(_run(bare, x), _run(full, x))


def test_compact_modes_use_short_names_but_keep_the_graph_interface():
    g = _graph()
    full, meta = gf.to_onnx(g), gf.to_onnx(g, provenance="metadata")
    assert [v.name for v in meta.graph.input] == [v.name for v in full.graph.input]
    assert [v.name for v in meta.graph.output] == [v.name for v in full.graph.output]
    inner = [o for n in meta.graph.node for o in n.output if o not in {v.name for v in meta.graph.output}]
    names = inner + [t.name for t in meta.graph.initializer]
    assert len(set(names)) == len(names) and max(map(len, names)) <= 2, names


def test_identical_initializers_are_stored_once_in_compact_modes():
    g = gf.trace(nn.seq().add(nn.Linear(4, 40)).add(nn.Linear(40, 40)), gf.TensorSpec(("batch", 4)), seed=0)
    g.params["0.bias"][:] = 0.0
    g.params["1.bias"][:] = 0.0  # two equal 40-float initializers
    full, meta = gf.to_onnx(g), gf.to_onnx(g, provenance="metadata")
    assert len(meta.graph.initializer) == len(full.graph.initializer) - 1
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_run(meta, x), _run(full, x), rtol=1e-6)


def test_defaults_names_for_float_graphs_the_table_for_quantized_ones():
    g = _graph()
    assert all(n.name for n in gf.to_onnx(g).graph.node)
    for qg in (gf.quantize(g, [_x(16)]), gf.quantize(g, mode="int8-dynamic")):
        m = gf.to_onnx(qg)
        assert not any(n.name or n.doc_string for n in m.graph.node)
        table = json.loads({p.key: p.value for p in m.metadata_props}[METADATA_KEY])
        assert len(table["nodes"]) == len(m.graph.node)
        assert {"proj", "head"} <= {scope for _, scope, _ in node_provenance(m)}
        assert all(n.name for n in gf.to_onnx(qg, provenance=True).graph.node)  # asked: the readable form


@pytest.mark.parametrize("bad", ["names", 1, 2.0, "True"])
def test_unknown_provenance_mode_is_an_export_error(bad):
    with pytest.raises(gf.ExportError, match="provenance must be"):
        gf.to_onnx(_graph(), provenance=bad)


def test_from_onnx_restores_scopes_from_the_table():
    m = gf.to_onnx(_graph(), provenance="metadata")
    back = gf.from_onnx(m)
    assert {"proj", "head"} <= {n.scope for n in back.nodes}
    x = _x()
    np.testing.assert_allclose(gf.run(back, x, backend="reference")[0], _run(m, x), rtol=1e-5, atol=1e-6)


def test_a_table_that_does_not_match_the_nodes_is_a_load_error_and_import_ignores_it():
    m = gf.to_onnx(_graph(), provenance="metadata")
    entry = next(p for p in m.metadata_props if p.key == METADATA_KEY)
    table = json.loads(entry.value)
    entry.value = json.dumps(dict(table, nodes=table["nodes"][:-1]))
    with pytest.raises(gf.LoadError, match="provenance table"):
        node_provenance(m)
    assert len(gf.from_onnx(m).nodes) > 0


def test_subgraph_nodes_are_in_the_table_and_read_outer_values_by_their_new_names():
    w = np.arange(3, dtype=np.float32)

    def f(x):
        c = gf.constant(w)
        return gf.cond(x.sum() > 0, lambda a: a * c, lambda a: a - c, x)

    g = gf.trace(f, gf.TensorSpec((3,)))
    full, meta = gf.to_onnx(g), gf.to_onnx(g, provenance="metadata")
    assert len(list(walk_nodes(meta.graph))) == len(list(walk_nodes(full.graph))) > len(meta.graph.node)
    assert [p[1:] for p in node_provenance(meta)] == [p[1:] for p in node_provenance(full)]
    for x in (np.ones(3, np.float32), -np.ones(3, np.float32)):
        np.testing.assert_array_equal(_run(meta, x), _run(full, x))


def test_in_memory_sessions_and_profiles_of_quantized_graphs_keep_readable_names():
    from graphforge.runtimes.onnx import OrtSession

    qg = gf.quantize(_graph(), mode="int8-dynamic")
    assert all(n.name for n in OrtSession(qg).proto.graph.node)  # onnxruntime's errors name the node
    report = gf.profile(qg, _x(4), backend="onnxruntime", repeat=2, warmup=1)
    assert {"proj", "head"} <= {row.scope for row in report.rows}
