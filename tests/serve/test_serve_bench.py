"""benchmarks/bench_serve.py: its HTTP client and load loop against an in-process server (a short,
bounded run), so the benchmark keeps working as the server changes."""
from __future__ import annotations

import asyncio
import io

import numpy as np

from bench_helpers import bench_serve
from serve_helpers import ort_run, running


def test_bench_model_and_client(tmp_path):
    path = bench_serve.build_mlp(str(tmp_path / "m.onnx"), (784, 16, 10))
    x = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    with running(path, max_wait_ms=5) as (server, _):
        conn = bench_serve.Connection(server.port)

        async def go():
            try:
                ok = await conn.request(bench_serve.http_request("POST", "/v1/predict", buf.getvalue(),
                                                                 "application/x-npy"))
                bad = await conn.request(bench_serve.http_request("POST", "/v1/predict", b"{", "application/json"))
                return ok, bad
            finally:
                await conn.close()

        (status, body), (bad_status, _) = asyncio.run(go())
        assert status == 200 and bad_status == 400
        np.testing.assert_allclose(np.load(io.BytesIO(body)), ort_run(path, {"x": x})[0], rtol=1e-5, atol=1e-6)

        r = asyncio.run(bench_serve.run_load(server.port, 4, 0.3, 10_000, "npy", warmup=0.05))
    assert r["errors"] == 0 and r["requests"] > 0 and r["rows"] == r["requests"]
    assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert 1.0 <= r["mean_batch_rows"] <= 4.0
    merged = bench_serve.merge_runs([r, r])
    assert merged["requests"] == 2 * r["requests"]
    assert abs(merged["throughput_rps"] - r["throughput_rps"]) < 1e-6 * r["throughput_rps"]


def test_soak_checks_every_answer_and_samples_the_server(tmp_path):
    import os

    import onnxruntime as ort

    path = bench_serve.build_mlp(str(tmp_path / "soak.onnx"), (784, 16, 10))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    with running(path, max_wait_ms=2) as (server, _):
        r = asyncio.run(bench_serve.run_soak(server.port, os.getpid(), "soak", 784,
                                             lambda x: session.run(None, {"x": x})[0], clients=4,
                                             max_requests=150, max_seconds=30, sample_every=0.05))
        assert r["requests"] >= 150 and r["errors"] == 0 and r["wrong"] == 0
        assert r["rss_mib_end"] > 0 and r["fds_end"] > 0 and len(r["samples"]) >= 2
        # a wrong reference is caught: every answer is compared
        bad = asyncio.run(bench_serve.run_soak(server.port, os.getpid(), "soak", 784,
                                               lambda x: session.run(None, {"x": x})[0] + 1.0, clients=2,
                                               max_requests=20, max_seconds=30))
        assert bad["wrong"] == bad["requests"] >= 20
