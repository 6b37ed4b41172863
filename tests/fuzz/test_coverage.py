"""The fuzzer covers the whole registry: every op is drawn, or excluded with a reason (issue 20)."""
from __future__ import annotations

import collections

import pytest

from fuzz.gen import EXCLUDED, FUZZ_OPS, RandomChooser, drawable, generate, registry_ops


def test_every_registry_op_is_drawn_or_excluded_with_a_reason():
    ops = set(registry_ops())
    assert not set(EXCLUDED) - ops, f"EXCLUDED names ops the registry no longer has: {sorted(set(EXCLUDED) - ops)}"
    assert all(isinstance(r, str) and len(r.split()) >= 3 for r in EXCLUDED.values()), "give each exclusion a reason"
    missing = sorted(op for op in ops - set(EXCLUDED) if not drawable(op))
    assert not missing, (f"registry ops the fuzzer cannot draw: {missing}; give them a float32 conformance "
                         "sample the generator can use, or list them in tests/fuzz/gen.py EXCLUDED with the reason")


def test_fuzz_op_list_comes_from_the_registry():
    assert set(FUZZ_OPS) == set(registry_ops()) - set(EXCLUDED)


def test_a_bounded_campaign_reaches_most_ops():
    seen = collections.Counter()
    for seed in range(40):
        seen.update(generate(RandomChooser(seed)).ops)
    assert len(seen) >= 0.6 * len(FUZZ_OPS), sorted(set(FUZZ_OPS) - set(seen))


def test_an_op_without_usable_samples_is_reported(monkeypatch):
    import fuzz.gen as gen

    monkeypatch.setattr(gen, "FUZZ_OPS", {k: v for k, v in gen.FUZZ_OPS.items() if k != "tanh"})
    assert not gen.drawable("tanh") and gen.drawable("relu")


def test_excluded_ops_are_fuzzed_on_their_own():
    """The ops the generator cannot draw run as one-node graphs with fresh values (fuzz/excluded.py):
    reference vs onnxruntime here (JAX too in ``make fuzz``), two seeds each."""
    pytest.importorskip("onnxruntime")
    from fuzz.excluded import fuzz_excluded

    result = fuzz_excluded(2, start=100, jax=False)
    assert result["counts"]["cases"] == 2 * len(EXCLUDED)
    assert not result["findings"], "\n".join(str(f)[:600] for f in result["findings"][:5])


def test_excluded_campaign_reports_a_disagreement(monkeypatch):
    pytest.importorskip("onnxruntime")
    import numpy as np

    from fuzz import excluded

    real = excluded._run
    monkeypatch.setattr(excluded, "_run", lambda g, ins, backend: [np.asarray(o) + (backend == "onnxruntime")
                                                                   for o in real(g, ins, backend)])
    findings = excluded.check_excluded_op("dequantize_linear", 0, jax=False)
    assert any(f.kind == "mismatch" and "onnxruntime vs reference" in f.check for f in findings), findings
