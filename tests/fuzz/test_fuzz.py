"""Differential fuzzing of random valid graphs: reference (float64) vs float32 back ends, passes on/off,
CSE/DCE bitwise, gradients vs jax.grad. The CI tier is bounded; ``make fuzz`` runs 10,000 graphs."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphforge as gf
from fuzz.gen import DataChooser, RandomChooser, generate
from fuzz.oracles import available_backends, check_case, compare, onnx_available

CI_GRAPHS = 300
ORT_EVERY = 3     # onnxruntime session creation costs ~50 ms: a third of the CI sample goes there
ROUNDTRIP_EVERY = 6  # import(export(g)) costs ~70 ms a graph on a loaded CI core
JAX_GRAPHS = 6    # JAX compiles each new op shape: a handful of small graphs, forward and gradient


def _report(findings_by_seed):
    lines = []
    for seed, findings in sorted(findings_by_seed.items())[:5]:
        lines.append(f"seed {seed}: " + "\n    ".join(str(f)[:800] for f in findings))
    return "\n".join(lines)


def test_ci_sample_reference_and_onnxruntime():
    """300 graphs on the reference interpreter (float32 vs float64 twin, default pipeline, cse/dce
    bitwise), every third one on onnxruntime too (vs the reference and vs JAX-free oracle), every sixth
    through ``from_onnx(to_onnx(g))`` on the reference interpreter."""
    ort = onnx_available()
    bad, sizes = {}, []
    for seed in range(CI_GRAPHS):
        case = generate(RandomChooser(seed))
        sizes.append(len(case.graph.nodes))
        backends = (["reference"] + (["onnxruntime"] if ort and seed % ORT_EVERY == 0 else [])
                    + (["roundtrip"] if ort and seed % ROUNDTRIP_EVERY == 1 else []))
        findings = [f for f in check_case(case, backends, gradients=False) if f.kind != "unsupported"]
        if findings:
            bad[seed] = findings
    assert min(sizes) >= 3 and max(sizes) <= 60
    assert not bad, f"{len(bad)} of {CI_GRAPHS} graphs failed:\n{_report(bad)}"


def test_ci_sample_jax_forward_and_gradients():
    """A few small graphs through JAX op by op and jitted, and gf.grad vs jax.grad."""
    names = [b for b in available_backends() if b in ("reference", "jax_eager", "jax", "onnxruntime")]
    bad = {}
    for seed in range(JAX_GRAPHS):
        case = generate(RandomChooser(10_000 + seed), max_nodes=12)
        findings = [f for f in check_case(case, names if seed == 0 else [n for n in names if n != "jax"])
                    if f.kind != "unsupported"]
        if findings:
            bad[seed] = findings
    assert not bad, _report(bad)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_hypothesis_driven_graphs(data):
    """The same generator under hypothesis: a failure shrinks to a small graph and few choices."""
    case = generate(DataChooser(data), max_nodes=12)
    findings = [f for f in check_case(case, ["reference"], gradients=False)]
    assert not findings, "\n".join(map(str, findings)) + "\n" + str(case.graph)


def test_generated_graphs_are_varied():
    """The generator really exercises the registry: many ops, dtypes, symbolic dims, params."""
    ops, dtypes, symbolic, params = collections.Counter(), set(), 0, 0
    for seed in range(60):
        case = generate(RandomChooser(seed))
        ops.update(case.ops)
        dtypes |= {v.type.dtype for n in case.graph.nodes for v in n.outputs}
        symbolic += any(isinstance(d, str) for v in case.graph.inputs for d in v.type.shape)
        params += bool(case.graph.params)
    assert len(ops) >= 50, sorted(ops)
    assert {"float32", "int64", "bool"} <= dtypes
    assert symbolic >= 50 and params >= 30


def test_oracle_flags_a_wrong_lowering(monkeypatch):
    """The oracles can fail: a JAX tanh that is off by 0.1 % is reported as a mismatch."""
    from graphforge.runtimes.jax import LOWERINGS

    def fn(x):
        return gf.tanh(x) * 2.0

    g = gf.trace(fn, gf.TensorSpec(("batch", 4), "float32"))
    case = _case_from(g, [np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)])
    assert check_case(case, ["reference", "jax_eager"], gradients=False) == []
    original = LOWERINGS["tanh"]
    monkeypatch.setitem(LOWERINGS, "tanh", lambda ctx, args, attrs: [o * 1.001 for o in original(ctx, args, attrs)])
    findings = check_case(case, ["reference", "jax_eager"], gradients=False)
    assert any(f.kind == "mismatch" and "jax_eager vs float64" in f.check for f in findings), findings


def test_oracle_allows_float32_sensitivity_but_not_a_wrong_kernel(monkeypatch):
    """acosh just above 1 amplifies cosh's float32 rounding ~16x (long-tier seed 6680: jax vs
    onnxruntime 1.9e-6 apart, both correct float32): the bound grows by the measured sensitivity
    (``rounded_twin``), so the case passes; an acosh off by 0.1 % still fails it."""
    from fuzz.oracles import float32_slack, rounded_twin
    from graphforge.runtimes.jax import LOWERINGS

    g = gf.trace(lambda x: gf.acosh(gf.cosh(gf.log(x))), gf.TensorSpec((4,), "float32"))
    case = _case_from(g, [np.array([1.0633, 0.94, 1.07, 1.0021], np.float32)])
    oracle = gf.run(case.graph64, case.inputs64, backend="reference")
    slack = float32_slack(oracle, rounded_twin(case))
    assert (slack[0] / 2 > 1e-6).any()  # the sensitivity is real, beyond a fixed atol of 1e-6
    # one ulp either way bounds a kernel's own error too (seed 30780: the rounding alone was 4e-6 while
    # onnxruntime's and XLA's acosh(cosh(0.007)) differed by 4e-5)
    ulp = float32_slack(oracle, rounded_twin(case), rounded_twin(case, 1), rounded_twin(case, -1))
    assert (ulp[0] >= slack[0]).all() and (ulp[0] > slack[0]).any()
    pytest.importorskip("onnxruntime")
    assert check_case(case, ["reference", "jax_eager", "onnxruntime"], gradients=False) == []
    original = LOWERINGS["acosh"]
    monkeypatch.setitem(LOWERINGS, "acosh", lambda ctx, args, attrs: [o * 1.001 for o in original(ctx, args, attrs)])
    findings = check_case(case, ["reference", "jax_eager"], gradients=False)
    assert any(f.kind == "mismatch" and "jax_eager vs float64" in f.check for f in findings), findings


def test_roundtrip_oracle_flags_a_wrong_export(monkeypatch):
    """import(export(g)) can fail: an ONNX tanh exported as Sigmoid is reported by the roundtrip oracle."""
    pytest.importorskip("onnxruntime")
    from graphforge.runtimes.onnx.lower import LOWERINGS

    g = gf.trace(lambda x: gf.tanh(x) * 2.0, gf.TensorSpec(("batch", 4), "float32"))
    case = _case_from(g, [np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)])
    assert check_case(case, ["reference", "roundtrip"], gradients=False) == []
    monkeypatch.setitem(LOWERINGS, "tanh", lambda ctx, args, attrs: [ctx.op("Sigmoid", list(args))])
    findings = check_case(case, ["reference", "roundtrip"], gradients=False)
    assert any(f.kind == "mismatch" and "roundtrip vs float64" in f.check for f in findings), findings


def test_compare_passes_equal_infinities_and_flags_nan():
    """Found by ``make fuzz``'s excluded-op campaign: a float8 ``quantize_linear`` without saturation
    gives inf on every back end, and ``inf - inf`` (NaN) failed the comparison; an inf also made
    every other element's atol infinite. Equal infinities pass, a NaN still fails."""
    g = gf.trace(lambda x: x * 1.0, gf.TensorSpec((3,), "float32"))
    want = [np.array([np.inf, -np.inf, 2.0])]
    assert compare([np.array([np.inf, -np.inf, 2.0], np.float32)], want, 1e-5, 1e-6, g) is None
    assert compare([np.array([np.inf, np.inf, 2.0], np.float32)], want, 1e-5, 1e-6, g) is not None
    assert compare([np.array([np.inf, -np.inf, 2.5], np.float32)], want, 1e-5, 1e-6, g) is not None
    nan = [np.array([np.nan, 0.0, 2.0])]
    assert compare([np.array([np.nan, 0.0, 2.0], np.float32)], nan, 1e-5, 1e-6, g) is not None


def test_compare_scales_atol_with_magnitude():
    g = gf.trace(lambda x: x * 1.0, gf.TensorSpec((2,), "float32"))
    want = [np.array([1000.0, 0.0])]
    assert compare([np.array([1000.0, 0.009], np.float32)], want, 1e-4, 1e-5, g) is None
    assert compare([np.array([1000.0, 0.02], np.float32)], want, 1e-4, 1e-5, g) is not None
    assert "dtype" in compare([np.array([1000.0, 0.0])], want, 1e-4, 1e-5, g)


def _case_from(graph, inputs):
    """A FuzzCase for a hand-written float32 graph (its float64 twin is traced from the same text)."""
    from fuzz.gen import FuzzCase

    text = str(graph).replace("f32", "f64")
    g64 = gf.parse(text)
    return FuzzCase(graph, g64, inputs, [a.astype(np.float64) for a in inputs], {})


@pytest.mark.slow
def test_fuzz_long_tier():
    """``make fuzz``'s 10,000 graphs (also runnable as ``python tests/fuzz/run.py``)."""
    from fuzz.run import fuzz

    result = fuzz(10_000, jax_every=20, stream=None)
    counts = result["counts"]
    assert counts["graphs"] == 10_000
    assert counts["mismatch"] == 0 and counts["crash"] == 0, result["failures"][:5]
