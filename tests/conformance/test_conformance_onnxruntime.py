"""onnx's backend test suite on graphforge's **onnxruntime** back end (slow tier only).

Each case is imported (``from_onnx``), exported again by graphforge's ONNX back end and run in
onnxruntime — the path a deployed model takes — with onnx's tolerances, exclusions as on the JAX
back end (``exclusions.py``). The JAX back end's figures are in ``test_conformance.py``; the two differ
where onnxruntime lacks a kernel graphforge's export relies on (float4 QuantizeLinear/Cast, some
float8 and string cases), which the bars below leave room for. ``make conformance`` prints the same
table with ``--backend onnxruntime``.
"""
from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from .suite import run_suite, summarize  # noqa: E402

# measured on onnx 1.23.2 / onnxruntime 1.32 (docs/onnx_import.md): Node 1771/1884 (94.0 %), Simple 15/23,
# PyTorchConverted 82/82, PyTorchOperator 35/35; the bars sit a little below
NODE_RATE_ALL = 0.92
OPERATOR_RATE_RUN = 0.95
CONVERTED_RATE_RUN = 0.95


@pytest.fixture(scope="module")
def ort_results():
    return run_suite(("Node", "Simple", "PyTorchConverted", "PyTorchOperator"), backend="onnxruntime")


@pytest.mark.slow
def test_node_suite_on_onnxruntime_holds_the_bar(ort_results):
    table = summarize(ort_results)
    print({k: f"{v['pass']}/{v['total']} ({v['rate_all']:.1%})" for k, v in table.items()})
    assert table["Node"]["rate_all"] >= NODE_RATE_ALL, table["Node"]


@pytest.mark.slow
def test_model_suites_on_onnxruntime_hold_the_bar(ort_results):
    table = summarize(ort_results)
    assert table["PyTorchOperator"]["rate_run"] >= OPERATOR_RATE_RUN, table["PyTorchOperator"]
    assert table["PyTorchConverted"]["rate_run"] >= CONVERTED_RATE_RUN, table["PyTorchConverted"]
