"""``make gpu-check`` (benchmarks/gpu_check.py) on a machine without a GPU: it says so and exits 0
without writing results; its sections record failures instead of stopping; its bf16 step and memory
figures work (checked on the CPU at tiny sizes); ``make bench``'s target table has the issue-21 rows."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax")

from benchmarks import gpu_check  # noqa: E402


def test_cpu_only_machine_says_so_and_exits_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "gpu_devices", lambda: {"jax": [], "torch": []})
    out = tmp_path / "gpu"
    assert gpu_check.main(["--out", str(out)]) == 0
    assert "no GPU here" in capsys.readouterr().out
    assert not out.exists()


def test_device_probe_reports_lists():
    found = gpu_check.gpu_devices()
    assert set(found) == {"jax", "torch"} and all(isinstance(v, list) for v in found.values())


def test_a_failing_section_is_recorded_and_the_table_says_so():
    res = {"date": "2026-01-01T00:00:00+00:00", "devices": {"jax": ["gpu:0"], "torch": ["H200"]}}
    gpu_check._section(res, "onnx", lambda: 1 / 0)
    gpu_check._section(res, "memory", lambda: [{"case": "lenet", "jax_peak_bytes": 2 ** 20, "torch_peak_bytes": None}])
    assert res["onnx"]["ok"] is False and "ZeroDivisionError" in res["onnx"]["error"]
    md = gpu_check.format_markdown(res)
    assert "failed: `ZeroDivisionError" in md
    assert "| lenet | 1.0 | - |" in md
    assert gpu_check.BF16_NOTE in md    # the bf16 table states it is a cast-based step


def test_bf16_step_trains_the_same_model_tiny():
    """The cast-based bf16 step starts from the float32 weights: its first loss is the float32 loss
    to bf16 precision, its params are bf16 and the step updates them."""
    from benchmarks.bench_train_step import TINY_BATCH
    from benchmarks.models import MODELS, TINY

    spec = MODELS["lenet"].scaled(**TINY["lenet"])
    x, y = spec.inputs(TINY_BATCH)
    t = gpu_check._gf_trainer(spec)
    step = gpu_check._gf_bf16_step(t, x, y)
    first = float(np.asarray(step()).astype(np.float32))
    ref = float(np.asarray(t.train_step(x, y)["loss"]))
    assert first == pytest.approx(ref, rel=2e-2)
    before = {k: np.asarray(v).astype(np.float32) for k, v in step.state[0].items()}
    step()
    after = step.state[0]
    assert all(str(v.dtype) == "bfloat16" for v in after.values())
    assert any(not np.array_equal(before[k], np.asarray(v).astype(np.float32)) for k, v in after.items())


def test_memory_section_measures_the_compiled_step_tiny():
    rows = gpu_check._memory_rows(["mlp128", "resnet8"], torch_device="cpu", tiny=True)
    assert [r["case"] for r in rows] == ["mlp128", "resnet8"]
    assert all(r["jax_peak_bytes"] > 0 and r["torch_peak_bytes"] is None for r in rows)


def test_target_table_has_the_convolution_and_overhead_rows():
    from benchmarks.run import check_targets

    def row(case, jax_ratio, torch_ratio):
        return {"case": case, "ratio_gf_jax": jax_ratio, "ratio_gf_torch": torch_ratio}

    rows = {r["target"]: r for r in check_targets({"train_step": [
        row("mlp128", 1.03, 0.3), row("lenet", 0.95, 1.2), row("resnet8", 0.99, 0.9), row("transformer", 1.04, 0.9)]})}
    assert rows["train mlp128: graphforge/JAX"]["met"] is False          # bound 1.02
    assert rows["train transformer: graphforge/JAX"]["met"] is True      # bound 1.05
    assert rows["train lenet: graphforge/PyTorch eager"]["met"] is False
    assert rows["train resnet8: graphforge/PyTorch eager"]["met"] is True
    assert "train mlp128: graphforge/PyTorch eager" not in rows


def test_precision_remat_section_renders(monkeypatch):
    # the measurement itself is tests/benchmarks/test_bench_precision_remat.py's; here: the section's rows
    from benchmarks import bench_precision_remat

    fake = [{"contender": c, "step_ms": 1.0, "time_ratio": 1.0, "est_peak_ratio": 0.5, "xla_peak_bytes": 2 ** 20,
             "xla_peak_ratio": 0.6} for c in bench_precision_remat.CONTENDERS]
    monkeypatch.setattr(bench_precision_remat, "measure", lambda **kw: fake)
    rows = gpu_check._precision_rows(rounds=1, tiny=True)
    res = {"date": "2026-01-01T00:00:00+00:00", "devices": {"jax": ["gpu:0"], "torch": ["H200"]}}
    gpu_check._section(res, "precision_remat", lambda: rows)
    assert "bf16-mixed" in gpu_check.format_markdown(res)
