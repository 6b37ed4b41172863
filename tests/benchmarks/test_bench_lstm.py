"""Smoke test of benchmarks/bench_lstm.py's parts added for native recurrent export and the KV
cache: at tiny sizes the native and Scan forms compute the same outputs for every case, and the
KV-cached generator produces the no-cache generator's tokens, and the in-graph LSTM generator the
Python loop's. No timing is asserted (shared box)."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("onnxruntime")


def test_onnx_cases_and_kv_generation_run_tiny(tmp_path):
    from benchmarks import bench_lstm

    out = tmp_path / "lstm.json"
    assert bench_lstm.main(["--tiny", "--no-torch", "--part", "onnx_cases,generate_kv,generate", "--json",
                            str(out)]) == 0
    cases, kv, gen = json.loads(out.read_text())["lstm"]
    assert {c["kind"] for c in cases["cases"]} == {"lstm", "gru", "rnn"}
    assert all(c["max_abs_diff"] < 1e-5 and c["native_ms"] > 0 and c["scan_ms"] > 0 for c in cases["cases"])
    assert kv["same_tokens"] and kv["tokens_per_s"]["kv cache"] > 0
    # the in-graph loop and the Python loop over the one-step graph decode the same tokens
    assert gen["same_tokens"] and gen["onnx_nodes"]["loop body"] > 0


@pytest.mark.slow  # ~3 s: two jitted scan gradients
def test_the_hoisted_hand_jax_lstm_has_the_plain_ones_gradients():
    """The bench's "jax hoisted" variant (weight gradients summed after the reverse loop, a
    custom_vjp) computes the autodiff'd hand-JAX loss's value and gradients."""
    import jax
    import numpy as np

    from benchmarks.bench_lstm import _jax_lstm_loss, _jax_lstm_loss_hoisted

    rng = np.random.default_rng(0)
    p = {}
    for k, size in ((0, 3), (1, 5)):
        p[f"lstm.weight_ih_l{k}"] = rng.standard_normal((20, size)).astype(np.float32)
        p[f"lstm.weight_hh_l{k}"] = (0.5 * rng.standard_normal((20, 5))).astype(np.float32)
        p[f"lstm.bias_ih_l{k}"] = rng.standard_normal(20).astype(np.float32)
        p[f"lstm.bias_hh_l{k}"] = rng.standard_normal(20).astype(np.float32)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    want = jax.jit(jax.value_and_grad(_jax_lstm_loss(2)))(p, x)
    got = jax.jit(jax.value_and_grad(_jax_lstm_loss_hoisted(2)))(p, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    for name in p:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-4, atol=1e-5)


def test_onnx_part_times_an_a_a_control(tmp_path):
    """The ONNX inference part times graphforge's file a second time in its own session, in the same
    interleaving: the noise floor printed beside the graphforge / torch.onnx ratio."""
    from benchmarks import bench_lstm

    out = tmp_path / "lstm.json"
    assert bench_lstm.main(["--tiny", "--no-torch", "--part", "onnx", "--json", str(out)]) == 0
    (onnx_part,) = json.loads(out.read_text())["lstm"]
    assert set(onnx_part["results"]) == {"graphforge", "graphforge A/A"}
    assert onnx_part["ratio_aa"] > 0 and onnx_part["ratio_gf_torch"] is None
