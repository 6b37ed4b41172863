"""Smoke test of the benchmark suite: every benchmark module runs end to end at tiny sizes, so
they don't rot. No timing is asserted (this box is shared); what is asserted is what the numbers
rest on — the contenders compute the same function (equal first-step losses, outputs checked
inside the inference benchmark), the counts are positive, the runner writes its JSON and chart.
PyTorch columns are exercised only in the slow tier (torch is the optional ``bench`` extra)."""
from __future__ import annotations

import collections
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax")
pytest.importorskip("onnxruntime")


def _load(path):
    with open(path) as f:
        return json.load(f)


# LeNet's hand-JAX twin is checked in the slow tier: ResNet-8 already takes the convolution path of
# both sides in the default tier, and each convolution case costs ~10 s of compiles.
@pytest.mark.parametrize("cases", ["mlp128,resnet8", pytest.param("lenet", marks=pytest.mark.slow)])
def test_train_step_and_flops_run_tiny(tmp_path, cases):
    from benchmarks import bench_flops, bench_train_step

    train = tmp_path / "train.json"
    assert bench_train_step.main(["--tiny", "--no-torch", "--case", cases, "--json", str(train)]) == 0
    rows = _load(train)["train_step"]
    assert [r["case"] for r in rows] == cases.split(",")
    for r in rows:
        assert set(r["results"]) == {"graphforge", "jax"}
        # same weights, same batch: the first step's loss must agree, or the sides time different models
        assert r["first_loss"]["graphforge"] == pytest.approx(r["first_loss"]["jax"], rel=1e-4)
        assert r["results"]["graphforge"]["median_s"] > 0
    flops = tmp_path / "flops.json"
    assert bench_flops.main(["--tiny", "--train-json", str(train), "--json", str(flops)]) == 0
    out = _load(flops)["flops"]
    assert out["peak"]["peak_gflops"] > 0
    for r in out["rows"]:
        assert r["flops"]["graphforge_count"] > 0
        assert set(r["gflops"]) == {"graphforge", "jax"}


def test_inference_runs_tiny(tmp_path):
    from benchmarks import bench_inference

    path = tmp_path / "inf.json"
    assert bench_inference.main(["--tiny", "--no-torch", "--model", "mlp,transformer", "--batches", "1,3",
                                 "--json", str(path)]) == 0
    models = _load(path)["inference"]
    assert [m["model"] for m in models] == ["mlp", "transformer"]
    for m in models:
        assert m["nodes"]["graphforge"] > 0
        assert [row["batch"] for row in m["rows"]] == [1, 3]
        assert set(m["rows"][0]["results"]) == {"graphforge-ort", "jax", "graphforge-jax"}


def test_export_scaling_and_ort_passes_run_tiny(tmp_path):
    from benchmarks import bench_compile_scaling, bench_export, bench_ort_passes

    exp = tmp_path / "export.json"
    assert bench_export.main(["--tiny", "--no-torch", "--model", "mlp", "--json", str(exp)]) == 0
    (m,) = _load(exp)["export"]
    assert m["results"]["graphforge"]["file_bytes"] > 0
    sc = tmp_path / "scaling.json"
    assert bench_compile_scaling.main(["--tiny", "--json", str(sc)]) == 0
    rows = _load(sc)["scaling"]
    assert [r["nodes"] > 0 for r in rows] == [True, True] and rows[0]["nodes"] < rows[1]["nodes"]
    ort = tmp_path / "ort.json"
    assert bench_ort_passes.main(["--tiny", "--batch", "2", "--json", str(ort)]) == 0
    for r in _load(ort)["ort_passes"]:
        assert r["nodes_opt"] <= r["nodes_raw"]


def test_scan_onnx_runs_tiny_and_the_runner_reports_it(tmp_path, capsys):
    from benchmarks import bench_scan_onnx, run

    out = tmp_path / "scan.json"
    assert bench_scan_onnx.main(["--tiny", "--json", str(out)]) == 0  # outputs checked equal inside
    (row,) = _load(out)["scan_onnx"]
    assert row["ratio"] > 0 and row["nodes"]["graphforge"] > 0
    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "scan_onnx", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    data = _load(res)
    assert data["scan_onnx"] and data["errors"] == {}
    assert any(t["target"].startswith("scan rnn") for t in data["targets"])
    assert "Scan RNN inference in onnxruntime" in capsys.readouterr().out


def test_runner_writes_table_json_and_chart(tmp_path, capsys):
    from benchmarks import run

    res, chart = tmp_path / "results.json", tmp_path / "results.png"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "scaling", "--json", str(res),
                     "--chart", str(chart)]) == 0
    data = _load(res)
    assert data["scaling"] and data["errors"] == {}
    assert any(t["target"].startswith("time per node") for t in data["targets"])
    with open(chart, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Compile-time scaling" in capsys.readouterr().out


def test_runner_rejects_unknown_step(tmp_path):
    from benchmarks import run

    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense", "--json", str(tmp_path / "r.json")])


@pytest.mark.slow
def test_runner_with_torch_tiny(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--only", "train,inference,export", "--cases", "mlp128",
                     "--models", "mlp", "--json", str(res), "--chart", str(tmp_path / "c.png")]) == 0
    data = _load(res)
    (tr,) = data["train_step"]
    assert tr["first_loss"]["torch"] == pytest.approx(tr["first_loss"]["jax"], rel=1e-4)
    assert data["inference"][0]["nodes"]["torch"] > 0
    assert data["export"][0]["speedup_vs_torch"] > 0


@pytest.mark.slow
def test_conv_cases_compute_the_same_step_on_all_three_sides():
    """LeNet and ResNet-8 (training-mode BatchNorm) from the same weights and batch: graphforge, hand
    JAX and PyTorch give the same first *and second* loss (the second shows the updates — and
    ResNet-8's running statistics — agree too)."""
    pytest.importorskip("torch")
    from benchmarks import bench_train_step

    for case in ("lenet", "resnet8"):
        steps, _ = bench_train_step.make_steps(case, tiny=True, torch=True)
        losses = {n: [float(fn()), float(fn())] for n, fn in steps.items()}
        for n in ("jax", "torch"):
            assert losses[n] == pytest.approx(losses["graphforge"], rel=1e-4), (case, losses)


def test_scan_rnn_runs_tiny(tmp_path):
    from benchmarks import bench_scan_rnn

    path = tmp_path / "rnn.json"
    assert bench_scan_rnn.main(["--tiny", "--json", str(path)]) == 0
    (row,) = _load(path)["scan_rnn"]
    assert set(row["results"]) == {"graphforge", "jax"} and row["results"]["graphforge"]["median_s"] > 0
    assert row["first_loss"]["graphforge"] == pytest.approx(row["first_loss"]["jax"], rel=1e-5)


def test_fit_overhead_targets_and_table_from_a_result():
    from benchmarks import run

    r = {"steps_per_epoch": 64, "epoch_ms": {"loop": 10.0, "fit": 10.4}, "epoch_cpu_ms": {"loop": 8.0, "fit": 8.6},
         "ratio": {"fit": 1.04}, "cpu_ratio": {"fit": 1.075}}
    rows = run.check_targets({"fit_overhead": r})
    assert [(t["value"], t["met"]) for t in rows] == [(1.04, True), (1.075, False)]
    table = run.format_table({"fit_overhead": r, "targets": rows})
    assert "| fit | 10.4 | 1.040 | 8.6 | 1.075 |" in table


def test_the_table_has_a_row_for_every_part_of_the_lstm_step():
    from benchmarks import run

    ms = {"median_s": 0.002}
    parts = [
        {"part": "train", "results": {"graphforge": ms, "jax": ms, "torch": ms}, "ratio_gf_best": 1.2},
        {"part": "onnx", "results": {"graphforge": ms, "torch.onnx": ms}, "ratio_gf_torch": 1.01},
        {"part": "onnx_cases", "cases": [{"kind": "lstm", "batch": 8, "seq": 64, "hidden": 128, "native_ms": 1.0,
                                          "scan_ms": 3.0, "scan_over_native": 3.0, "max_abs_diff": 0.0}]},
        {"part": "generate", "tokens_per_s": {"in-graph Loop": 200.0, "python loop": 100.0}, "speedup": 2.0,
         "same_tokens": True, "results": {}},
        {"part": "generate_kv", "tokens_per_s": {"kv cache": 800.0, "no cache": 100.0}, "speedup": 8.0,
         "same_tokens": True, "results": {}},
    ]
    rows = run.check_targets({"lstm": parts})
    table = run.format_table({"lstm": parts, "targets": rows})
    assert "| lstm batch 8 seq 64 hidden 128: native op (median ms) | 1.000 | Scan 3.000 ms | 3.00x |" in table
    assert "| LSTM generation tokens/s | 200 | python loop 100 | 2.00x |" in table
    assert "| Transformer generation, KV cache tokens/s | 800 | no cache 100 | 8.00x |" in table
    assert [r["met"] for r in rows] == [False, False, True, True]


@pytest.mark.slow
def test_fit_overhead_step_reports_its_target(tmp_path, capsys):
    from benchmarks import run

    res = tmp_path / "results.json"
    assert run.main(["--tiny", "--in-process", "--no-torch", "--only", "fit_overhead", "--json", str(res),
                     "--chart", str(tmp_path / "c.png")]) == 0
    data = _load(res)
    assert data["errors"] == {} and data["fit_overhead"]["steps_per_epoch"] > 0
    rows = [t for t in data["targets"] if t["target"].startswith("fit / plain train_step loop")]
    assert [t["bound"] for t in rows] == ["<= 1.05", "<= 1.05"] and all(t["value"] > 0 for t in rows)
    assert "fit vs a plain train_step loop" in capsys.readouterr().out


@pytest.mark.slow
def test_conv_candidates_run_tiny_and_compute_the_same_step(tmp_path):
    from benchmarks import bench_conv_candidates

    out = tmp_path / "conv.json"
    assert bench_conv_candidates.main(["--tiny", "--no-torch", "--case", "lenet", "--variants", "xla,banded,im2col,shift",
                                       "--json", str(out)]) == 0
    (row,) = _load(out)["conv_candidates"]
    losses = list(row["first_loss"].values())
    assert len(losses) == 4 and all(v == pytest.approx(losses[0], rel=1e-4) for v in losses)
    assert set(row["ms"]) == {"gf-xla", "gf-banded", "gf-im2col", "gf-shift", "jax"}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_contender_orders_are_balanced_for_carry_over(n):
    from benchmarks.common import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(o) == list(range(n)) for o in orders)
    follows = collections.Counter((o[i], o[i + 1]) for o in orders for i in range(n - 1))
    # every ordered pair of distinct contenders: one after the other equally often
    assert len(follows) == n * (n - 1) and len(set(follows.values())) <= 1


def test_interleaved_medians_visits_the_balanced_orders():
    from benchmarks import common

    seen = []
    fns = {k: (lambda k=k: seen.append(k)) for k in "abcd"}
    common.interleaved_medians(fns, rounds=4, warmup=0, min_chunk_s=0.0)
    calls = seen[4:]   # after one sizing call each
    rounds = [calls[i:i + 4] for i in range(0, 16, 4)]
    assert [["abcd".index(c) for c in r] for r in rounds] == common.balanced_orders(4)


def test_interleaved_medians_settles_untimed_before_each_chunk(monkeypatch):
    """``settle_s`` pauses before every chunk (the other contenders' onnxruntime workers stop
    spinning) and the pause is not part of the time."""
    from benchmarks import common

    sleeps = []
    monkeypatch.setattr(common.time, "sleep", lambda s: sleeps.append(s))
    res = common.interleaved_medians({"a": lambda: None, "b": lambda: None}, rounds=3, warmup=1,
                                     min_chunk_s=0.0, settle_s=0.05)
    assert sleeps == [0.05] * 6
    assert all(r["median_s"] < 0.01 for r in res.values())
    sleeps.clear()
    common.interleaved_medians({"a": lambda: None}, rounds=2, warmup=1, min_chunk_s=0.0)
    assert sleeps == []
