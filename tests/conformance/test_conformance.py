"""onnx's backend test suite against graphforge (import → IR → JAX back end), onnx's tolerances kept.

CI tier (bounded, ~240 cases): ``suite.ci_sample()`` — the first and last node case of every ONNX op the
importer claims (``supported_op_types()``) plus the few cases that reach the remaining registry ops. Every
sampled case must pass, and every registry op must occur in a passing case (``exclusions.NO_NODE_CASE``
may name an op without one, with its reason).
Slow tier (``make test-slow``; ``make conformance`` prints the same numbers): every category; each
claimed op passes ≥ 98 % of its non-excluded node cases and ≥ 60 % of all node cases pass.
"""
from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from graphforge.ops.registry import all_ops  # noqa: E402

from .exclusions import EXCLUDED, NO_NODE_CASE, exclusion_reason  # noqa: E402
from .run import sample_misses  # noqa: E402
from .suite import (COVERAGE_CASES, ci_sample, claimed_ops, node_case_ops, per_op,  # noqa: E402
                    run_suite, summarize)


@pytest.fixture(scope="module")
def sample_results():
    return run_suite(("Node",), names=ci_sample())


def test_ci_sample_passes(sample_results):
    ran = {r.name for r in sample_results}
    assert set(COVERAGE_CASES) <= ran, f"COVERAGE_CASES not in onnx's suite: {sorted(set(COVERAGE_CASES) - ran)}"
    runnable = {op for n, op in node_case_ops().items()
                if op in set(claimed_ops()) and "_expanded" not in n and not exclusion_reason("Node", n)}
    assert {node_case_ops()[n] for n in ran} >= runnable  # every claimed op with a runnable case is sampled
    bad = [f"{r.name} ({r.status}): {r.detail[:200]}" for r in sample_results if r.status in ("fail", "error")]
    assert not bad, bad


def test_every_registry_op_has_a_passing_case(sample_results):
    # the same rule `make conformance --check` holds CI to (run.sample_misses), on the sample alone
    misses = [m for m in sample_misses(sample_results) if not m.startswith("CI-sample case")]
    assert not misses, misses


def test_exclusions_have_reasons():
    assert all(isinstance(why, str) and len(why) > 15 for why in EXCLUDED.values())
    assert all(len(why) > 15 for why in NO_NODE_CASE.values())


@pytest.fixture(scope="module")
def full_results():
    return run_suite()


def _op_of(name):
    return node_case_ops().get(name)


@pytest.mark.slow
def test_every_claimed_op_passes_98_percent(full_results):
    bad = {}
    table = per_op(full_results)
    for op in claimed_ops():
        c = table.get(op)
        if not c:
            continue  # no node case has this op as its first node (e.g. only inside other cases)
        run = sum(c.values()) - c["excluded"]
        if run and c["pass"] / run < 0.98:
            fails = [f"{r.name}: {r.detail[:200]}" for r in full_results
                     if r.category == "Node" and r.status in ("fail", "error") and _op_of(r.name) == op]
            bad[op] = (c["pass"], run, fails[:3])
    assert not bad, bad


@pytest.mark.slow
def test_full_suite_rates(full_results):
    table = summarize(full_results)
    print({k: f"{v['pass']}/{v['total']} ({v['rate_all']:.1%})" for k, v in table.items()})
    assert table["Node"]["rate_all"] >= 0.60, table["Node"]
    assert table["PyTorchOperator"]["rate_run"] >= 0.95
    assert table["PyTorchConverted"]["rate_run"] >= 0.75


def test_shards_together_run_each_case_once():
    """``make conformance --jobs 2``: the shards partition the selected cases; excluded ones are
    reported once."""
    pick = r"^test_(abs|relu|sign|ceil)$|^test_bernoulli$"
    whole = run_suite(("Node",), include=pick, backend="reference")
    parts = [run_suite(("Node",), include=pick, backend="reference", shard=(i, 2)) for i in range(2)]
    assert len(whole) >= 4 and all(parts)
    key = lambda r: (r.name, r.status)  # noqa: E731
    assert sorted(map(key, parts[0] + parts[1])) == sorted(map(key, whole))


def test_full_run_check_includes_the_sample_checks(monkeypatch):
    """``make conformance --check`` fails on what the two sample tests above would fail on (CI runs it
    and deselects them): a failing or missing sampled case, a registry op no passing case reaches."""
    from . import run as runner
    from .suite import Outcome

    sample = sorted(ci_sample())
    every_op = set(all_ops())
    monkeypatch.setattr(runner, "registry_ops_covered", lambda results: every_op - set(NO_NODE_CASE))
    passing = [Outcome("Node", n, "pass") for n in sample]
    assert runner.sample_misses(passing) == []
    failing = [Outcome("Node", sample[0], "fail")] + passing[1:]
    assert runner.sample_misses(failing) == [f"CI-sample case {sample[0]}: fail"]
    assert runner.sample_misses(passing[1:]) == [f"CI-sample case {sample[0]}: not run"]
    monkeypatch.setattr(runner, "registry_ops_covered", lambda results: set())
    assert any("registry ops in no passing node case" in m for m in runner.sample_misses(passing))
