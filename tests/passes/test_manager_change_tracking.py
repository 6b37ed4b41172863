"""PassManager change tracking: a fixed-point group's confirming iteration skips a pass when no pass
changed the graph since it ran and that run changed nothing or the pass is idempotent."""
import pytest

import graphforge as gf
from graphforge.passes import PassManager, optimize, register_pass
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

    def add(name, fn, **contract):
        register_pass(name, **contract)(fn)
        added.append(name)
        return fn
    yield add
    for name in added:
        manager_mod._PASSES.pop(name, None)


def _calls_recorder(temp_passes, name, changes, **contract):
    """A pass that reports ``changes[i]`` on its i-th call (False after) and counts its calls."""
    calls = []

    def fn(graph):
        calls.append(1)
        return graph, len(calls) <= len(changes) and changes[len(calls) - 1]
    temp_passes(name, fn, **contract)
    return calls


def test_idempotent_pass_is_skipped_when_nothing_changed_since_it_ran(temp_passes):
    first = _calls_recorder(temp_passes, "test_ct_first", [True])
    last = _calls_recorder(temp_passes, "test_ct_last", [True], idempotent=True)
    pm = PassManager("(test_ct_first,test_ct_last)*")
    pm.run(gf.parse(IR))
    # iteration 2: first finds nothing; last changed in iteration 1 but is idempotent and nothing
    # changed since: skipped
    assert len(first) == 2 and len(last) == 1
    records = [(r.name, r.iteration, r.changed, r.skipped) for r in pm.report.records]
    assert records == [("test_ct_first", 1, True, False), ("test_ct_last", 1, True, False),
                       ("test_ct_first", 2, False, False), ("test_ct_last", 2, False, True)]
    assert pm.report.by_pass()["test_ct_last"]["skipped"] == 1
    assert "skipped" in pm.report.table()


def test_pass_that_changed_runs_again_unless_idempotent(temp_passes):
    first = _calls_recorder(temp_passes, "test_ct_a", [True])
    last = _calls_recorder(temp_passes, "test_ct_b", [True])  # not idempotent: must confirm itself
    PassManager("(test_ct_a,test_ct_b)*").run(gf.parse(IR))
    assert len(first) == 2 and len(last) == 2


def test_pass_that_found_nothing_is_skipped_until_another_changes_the_graph(temp_passes):
    quiet = _calls_recorder(temp_passes, "test_ct_quiet", [])
    busy = _calls_recorder(temp_passes, "test_ct_busy", [True])
    tail = _calls_recorder(temp_passes, "test_ct_tail", [])
    pm = PassManager("(test_ct_quiet,test_ct_busy,test_ct_tail)*")
    pm.run(gf.parse(IR))
    # it1: quiet no, busy changes, tail (after busy) no; it2: quiet runs again (busy changed the graph
    # after it ran), busy runs (it changed and is not idempotent), tail is skipped (nothing changed
    # since its run found nothing)
    assert (len(quiet), len(busy), len(tail)) == (2, 2, 1)
    assert [r.name for r in pm.report.records if r.skipped] == ["test_ct_tail"]


def test_only_inside_fixed_point_groups_and_never_for_print_after(temp_passes):
    calls = _calls_recorder(temp_passes, "test_ct_once", [], idempotent=True)
    PassManager("test_ct_once,test_ct_once").run(gf.parse(IR))
    assert len(calls) == 2  # a pipeline that names a pass twice runs it twice
    calls.clear()
    other = _calls_recorder(temp_passes, "test_ct_other", [True])
    printed = []
    PassManager("(test_ct_other,test_ct_once)*", print_after="test_ct_once", stream=printed.append).run(
        gf.parse(IR))
    assert len(calls) == 2 and len(printed) == 2  # never skipped while its IR is to be printed


def test_default_pipeline_skips_dce_in_the_confirming_iteration_with_the_same_result():
    g = gf.parse(IR)
    report = []
    out = optimize(g, report=report.append, verify=True)
    skipped = [(r.name, r.iteration) for r in report[0].records if r.skipped]
    assert ("dce", 2) in skipped
    assert all(r.name == "dce" for r in report[0].records if r.skipped)
    # the same graph as running every pass of every iteration
    full = g.copy()
    from graphforge.passes import get_pass
    for name in ["infer"] + ["fold", "simplify", "cse", "dce"] * 2 + ["fuse", "hoist"] + ["fold", "simplify", "cse", "dce"] * 2:
        full, _ = get_pass(name)(full)
    assert str(out) == str(full)
