"""PassManager: pipeline parsing, fixed points, verify, reports, print_after, failures."""
import io

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import PassError
from graphforge.ir.graph import Node
from graphforge.passes import (DEFAULT_PIPELINE, PassManager, list_passes, optimize, parse_pipeline,
                               register_pass)
from graphforge.passes import manager as manager_mod

IR = """
graph g(%x: f32[batch,4]) {
  %one: f32[] = constant() {value=tensor<f32[]>[1.0]}
  %a: f32[batch,4] = mul(%x, %one)
  %b: f32[batch,4] = exp(%a)
  %c: f32[batch,4] = exp(%a)
  %d: f32[batch,4] = add(%b, %c)
  %unused: f32[batch,4] = tanh(%x)
  return %d as out
}"""


@pytest.fixture
def temp_passes():
    added = []

    def add(name, fn):
        register_pass(name)(fn)
        added.append(name)
        return fn
    yield add
    for name in added:
        manager_mod._PASSES.pop(name, None)


def test_builtin_passes_and_default_pipeline():
    assert {"infer", "fold", "cse", "dce", "simplify", "fuse"} <= set(list_passes())
    assert PassManager("default").passes == PassManager(DEFAULT_PIPELINE).passes
    assert "fuse" in PassManager("default").passes


def test_pipeline_parsing_groups_and_caps():
    plan = parse_pipeline("infer, (fold,cse)*, ((simplify,dce)*3, fuse)")
    assert list(plan.names()) == ["infer", "fold", "cse", "simplify", "dce", "fuse"]
    assert str(plan) == "infer,(fold,cse)*,(simplify,dce)*3,fuse"
    assert str(parse_pipeline("")) == ""


@pytest.mark.parametrize("text, fragment", [
    ("fold,,cse", "empty pass name"),
    ("(fold,cse", "missing ')'"),
    ("fold)", "unbalanced ')'"),
    ("*", "'*' must follow"),
    ("()", "empty group"),
    ("fold cse", "expected ','"),
    ("fold,", "trailing ','"),
    ("fold;cse", "unexpected ';'"),
    ("(fold)*0", "at least 1"),
])
def test_malformed_pipelines(text, fragment):
    with pytest.raises(PassError) as err:
        parse_pipeline(text)
    assert fragment in str(err.value)
    assert "known passes" in str(err.value)


def test_unknown_pass_lists_known_ones():
    with pytest.raises(PassError) as err:
        optimize(gf.parse(IR), "fold,cse,frobnicate")
    msg = str(err.value)
    assert "'frobnicate'" in msg and "cse" in msg and "simplify" in msg and "known passes" in msg


def test_optimize_returns_new_graph_and_leaves_input_intact():
    g = gf.parse(IR)
    text = str(g)
    out = gf.optimize(g, "simplify,cse,dce", verify=True)
    assert out is not g and str(g) == text
    assert out.op_counts() == {"add": 1, "exp": 1}
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(gf.run(out, {"x": x})[0], gf.run(g, {"x": x})[0])


def test_fixed_point_iterates_until_no_change_and_respects_cap(temp_passes):
    calls = []

    def countdown(graph):
        calls.append(1)
        return graph, len(calls) < 3
    temp_passes("test_countdown", countdown)
    pm = PassManager("(test_countdown)*", verify=True)
    pm.run(gf.parse(IR))
    assert len(calls) == 3
    assert [r.iteration for r in pm.report.records] == [1, 2, 3]
    calls.clear()
    PassManager("(test_countdown)*2").run(gf.parse(IR))
    assert len(calls) == 2


def test_report_records_time_and_node_counts():
    stream = io.StringIO()
    g = optimize(gf.parse(IR), "(simplify,cse,dce)*", report=True, stream=stream)
    table = stream.getvalue()
    assert "pipeline: (simplify,cse,dce)*" in table
    for name in ("simplify", "cse", "dce", "total", "nodes in", "time ms"):
        assert name in table
    direct = io.StringIO()
    optimize(gf.parse(IR), None, report=direct)
    assert "pipeline: infer,(fold,simplify,cse,dce)*,fuse" in direct.getvalue()
    got = []
    optimize(gf.parse(IR), "(simplify,cse,dce)*", report=got.append)
    report = got[0]
    assert report.nodes_before == 6 and report.nodes_after == len(g.nodes) == 2
    assert [r.name for r in report.records] == ["simplify", "cse", "dce"] * 2
    assert report.records[0].changed and not any(r.changed for r in report.records[3:])
    assert report.by_pass()["dce"]["runs"] == 2
    assert all(r.seconds >= 0 for r in report.records)


def test_print_after_dumps_ir_to_stream_or_callback():
    stream = io.StringIO()
    optimize(gf.parse(IR), "simplify,cse,dce", print_after="cse", stream=stream)
    text = stream.getvalue()
    assert text.startswith("// IR after cse")
    assert "tanh" in text  # dce has not run yet when cse's IR is printed
    assert text.count("graph g(") == 1
    seen = []
    optimize(gf.parse(IR), "simplify,cse,dce", print_after=["simplify", "dce"], stream=seen.append)
    assert len(seen) == 2 and "IR after dce" in seen[1] and "tanh" not in seen[1]
    with pytest.raises(PassError, match="unknown pass"):
        PassManager("cse", print_after="nope")


def test_failure_names_the_pass_and_those_before(temp_passes):
    def explode(graph):
        raise ZeroDivisionError("boom")
    temp_passes("test_explode", explode)
    with pytest.raises(PassError) as err:
        optimize(gf.parse(IR), "simplify,cse,test_explode,dce")
    msg = str(err.value)
    assert "'test_explode' failed" in msg and "simplify, cse" in msg and "ZeroDivisionError: boom" in msg
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_verify_catches_a_pass_that_breaks_the_graph(temp_passes):
    def break_it(graph):
        node = graph.nodes[1]
        graph.nodes.move_before(graph.nodes.first, node)  # out of topological order
        return graph, True
    temp_passes("test_break", break_it)
    with pytest.raises(PassError) as err:
        optimize(gf.parse(IR), "cse,test_break", verify=True)
    assert "'test_break' left an invalid graph" in str(err.value) and "cse" in str(err.value)
    optimize(gf.parse(IR), "cse,test_break", verify=False)  # unchecked without verify


def test_pass_must_return_graph_and_flag(temp_passes):
    temp_passes("test_bad_return", lambda graph: graph)
    with pytest.raises(PassError, match="must return"):
        optimize(gf.parse(IR), "test_bad_return")


def test_registering_twice_is_refused(temp_passes):
    temp_passes("test_twice", lambda g: (g, False))
    with pytest.raises(PassError, match="already registered"):
        register_pass("test_twice")(lambda g: (g, False))


def test_default_pipeline_verifies_on_a_traced_model():
    from graphforge import nn

    net = nn.seq().add(nn.Linear(6, 5)).add_fn(gf.relu).add(nn.Linear(5, 3)).add_fn(gf.softmax)
    g = gf.trace(net, gf.TensorSpec(("batch", 6), "float32"))
    out = gf.optimize(g, verify=True)
    assert out.op_counts() == {"linear": 2, "softmax": 1}
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(gf.run(out, {"x": x})[0], gf.run(g, {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert isinstance(out.nodes[0], Node)
