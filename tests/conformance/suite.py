"""Run onnx's own backend test suite (``onnx.backend.test.BackendTest``) against graphforge.

Categories: Node (generated in memory from the cases shipped in the onnx package), Simple,
PyTorchConverted, PyTorchOperator (model dirs shipped in ``onnx/backend/test/data``) and Real (URLs only:
never downloaded, excluded). onnx's tolerances are kept. Exclusions live in ``exclusions.py``.
"""
from __future__ import annotations

import os
import re
import time
import unittest
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import onnx.backend.test
from onnx.backend.test.loader import load_node_model_tests

from graphforge.runtimes.onnx_backend import GraphforgeBackend
from graphforge.runtimes.onnx_import import supported_op_types

from .exclusions import EXCLUDED, exclusion_reason

__all__ = ["Outcome", "run_suite", "node_case_ops", "summarize", "per_op", "registry_ops_covered", "claimed_ops",
           "ci_sample", "COVERAGE_CASES", "CATEGORIES", "USED_OPS"]

CATEGORIES = ("Node", "Simple", "PyTorchConverted", "PyTorchOperator", "Real")


USED_OPS: dict[str, set[str]] = defaultdict(set)  # case name -> graphforge ops in its imported graph(s)
_CURRENT = [""]


class CPUBackend(GraphforgeBackend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        inner, case = rep._graph_for, _CURRENT[0]

        def recording(feed):
            graph, rest = inner(feed)
            USED_OPS[case].update(graph.op_counts())
            return graph, rest

        rep._graph_for = recording
        return rep


def make_backend(backend_name: str | None):
    return type("GF_" + (backend_name or "default"), (CPUBackend,), {"backend_name": backend_name})


@dataclass
class Outcome:
    category: str
    name: str
    status: str  # pass | fail | error | excluded
    detail: str = ""
    seconds: float = 0.0


_NODE_OPS: dict[str, str] | None = None


def node_case_ops() -> dict[str, str]:
    """Node test name (without device suffix) → ONNX op type of its (first) node."""
    global _NODE_OPS
    if _NODE_OPS is None:
        _NODE_OPS = {}
        cases = load_node_model_tests()
        for case in cases:
            nodes = case.model.graph.node
            _NODE_OPS[case.name] = nodes[0].op_type if nodes else ""
        for case in cases:  # an expanded (function-body) case counts for the op it expands
            base = re.sub(r"_expanded(_ver\d+)?$", "", case.name)
            if base != case.name and base in _NODE_OPS:
                _NODE_OPS[case.name] = _NODE_OPS[base]
    return _NODE_OPS


def _base(name: str) -> str:
    return re.sub(r"_cpu$", "", name)


def run_suite(categories=CATEGORIES, *, include: str | None = None, backend: str | None = None,
              op_types: set[str] | None = None, names: set[str] | None = None, expanded: bool = True,
              progress=None, shard: tuple[int, int] = (0, 1)) -> list[Outcome]:
    """Run the selected cases one by one; ``op_types`` limits Node cases to those ops, ``names`` to those
    case names; ``expanded`` False skips the ``*_expanded`` duplicates (the op's function body run as a
    graph); ``shard=(i, n)`` runs every n-th selected case from the i-th (excluded cases are reported
    by shard 0 only), so n processes together run each case once."""
    index, count = shard
    position = -1
    bt = onnx.backend.test.BackendTest(make_backend(backend), __name__)
    items = bt._filtered_test_items  # category -> name -> TestItem
    ops = node_case_ops()
    results: list[Outcome] = []
    inc = re.compile(include) if include else None
    for category in categories:
        for name, item in sorted(items.get(category + "Model", {}).items()):
            if not name.endswith("_cpu"):
                continue
            base = _base(name)
            if inc and not inc.search(base):
                continue
            if not expanded and "_expanded" in base:
                continue
            if names is not None and base not in names:
                continue
            if category == "Node" and op_types is not None and ops.get(base) not in op_types:
                continue
            reason = exclusion_reason(category, base)
            if reason:
                if index == 0:
                    results.append(Outcome(category, base, "excluded", reason))
                continue
            position += 1
            if position % count != index:
                continue
            _CURRENT[0] = base
            tc = type("T", (unittest.TestCase,), {"test": item.func})("test")
            res = unittest.TestResult()
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tc.run(res)
            dt = time.perf_counter() - t0
            if res.failures:
                lines = res.failures[0][1].strip().splitlines()
                status, detail = "fail", " | ".join(ln.strip() for ln in lines if "Mismatch" in ln or "Max abs" in ln
                                                    or "shape" in ln.lower())[:300] or lines[-1]
            elif res.errors:
                lines = res.errors[0][1].strip().splitlines()
                ours = [ln for ln in lines if ln.startswith("graphforge.")]
                status, detail = "error", (ours[-1] if ours else lines[-1])
            elif res.skipped:
                status, detail = "excluded", res.skipped[0][1]
            else:
                status, detail = "pass", ""
            results.append(Outcome(category, base, status, detail[:300], dt))
            if progress:
                progress(results[-1])
    return results


# Node cases added to the CI sample because they are the ones that reach a registry op (the sample's
# per-op picks alone do not).
COVERAGE_CASES = ("test_range_int32_type_negative_delta", "test_training_dropout_zero_ratio_mask", "test_gather_0",
                  "test_attention_4d_causal", "test_erf", "test_flatten_axis1")


def ci_sample(per_op_cases: int = 2) -> set[str]:
    """The bounded CI tier: for every claimed ONNX op its first and last non-expanded, non-excluded node
    case (by name), plus :data:`COVERAGE_CASES`."""
    claimed = set(claimed_ops())
    by_op: dict[str, list[str]] = defaultdict(list)
    for name, op in sorted(node_case_ops().items()):
        if op in claimed and "_expanded" not in name and not exclusion_reason("Node", name):
            by_op[op].append(name)
    picked: set[str] = set()
    for names in by_op.values():
        picked.update(names[:1] + names[-1:] if per_op_cases >= 2 else names[:per_op_cases])
    return picked | set(COVERAGE_CASES)


def summarize(results: list[Outcome]) -> dict:
    """Per category: total, passed, excluded, rate over all cases and over non-excluded ones."""
    per = defaultdict(Counter)
    for r in results:
        per[r.category][r.status] += 1
    table = {}
    for cat, c in per.items():
        total = sum(c.values())
        run = total - c["excluded"]
        table[cat] = {"total": total, "pass": c["pass"], "fail": c["fail"], "error": c["error"],
                      "excluded": c["excluded"], "rate_all": c["pass"] / total if total else 0.0,
                      "rate_run": c["pass"] / run if run else 0.0}
    return table


def per_op(results: list[Outcome]) -> dict[str, Counter]:
    ops = node_case_ops()
    out: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        if r.category == "Node":
            out[ops.get(r.name, "?")][r.status] += 1
    return out


def registry_ops_covered(results: list[Outcome]) -> set[str]:
    """graphforge registry ops that occur in the imported graph of at least one passing case."""
    out: set[str] = set()
    for r in results:
        if r.status == "pass":
            out |= USED_OPS.get(r.name, set())
    return out


def claimed_ops() -> list[str]:
    return supported_op_types()
