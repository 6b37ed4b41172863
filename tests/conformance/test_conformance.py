"""onnx's backend test suite against graphforge (import → IR → JAX back end).

CI tier: the node cases (without the ``_expanded`` function-body duplicates) of every ONNX op the
importer claims (``supported_op_types()``) run on the default back end (JAX); each claimed op must pass ≥ 98 % of its non-excluded cases, and every registry op
must occur in some passing case (or be listed in ``exclusions.NO_NODE_CASE`` with a reason).
Slow tier: every category; ≥ 60 % of all node cases must pass.
"""
from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from graphforge.ops.registry import all_ops  # noqa: E402

from .exclusions import EXCLUDED, NO_NODE_CASE  # noqa: E402
from .suite import claimed_ops, per_op, registry_ops_covered, run_suite, summarize  # noqa: E402


@pytest.fixture(scope="module")
def claimed_results():
    return run_suite(("Node",), op_types=set(claimed_ops()), expanded=False)


def test_every_claimed_op_passes_98_percent(claimed_results):
    bad = {}
    table = per_op(claimed_results)
    for op in claimed_ops():
        c = table.get(op)
        if not c:
            continue  # no node case has this op as its first node (e.g. only inside other cases)
        run = sum(c.values()) - c["excluded"]
        if run and c["pass"] / run < 0.98:
            fails = [f"{r.name}: {r.detail[:200]}" for r in claimed_results
                     if r.status in ("fail", "error") and _op_of(r.name) == op]
            bad[op] = (c["pass"], run, fails[:3])
    assert not bad, bad
    assert sum(1 for r in claimed_results if r.status == "pass") > 400


def _op_of(name):
    from .suite import node_case_ops
    return node_case_ops().get(name)


def test_every_registry_op_has_a_passing_case(claimed_results):
    covered = registry_ops_covered(claimed_results)
    missing = sorted(set(all_ops()) - covered - set(NO_NODE_CASE))
    assert not missing, f"registry ops in no passing ONNX node case: {missing}"
    stale = sorted(set(NO_NODE_CASE) & covered)
    assert not stale, f"NO_NODE_CASE lists ops that are now covered: {stale}"


def test_exclusions_have_reasons():
    assert all(isinstance(why, str) and len(why) > 15 for why in EXCLUDED.values())
    assert all(len(why) > 15 for why in NO_NODE_CASE.values())


@pytest.mark.slow
def test_full_suite_rates():
    results = run_suite()
    table = summarize(results)
    print({k: f"{v['pass']}/{v['total']} ({v['rate_all']:.1%})" for k, v in table.items()})
    assert table["Node"]["rate_all"] >= 0.60, table["Node"]
    assert table["PyTorchOperator"]["rate_run"] >= 0.95
    assert table["PyTorchConverted"]["rate_run"] >= 0.75
