"""Load generator for ``graphforge serve``: latency percentiles and throughput, batching on vs off.

Builds the README's 784-128-10 MLP as ONNX (with ``onnx.helper``, random weights, symbolic batch
dim), starts ``python -m graphforge.serve`` on a free 127.0.0.1 port for each setting, and drives it
with asyncio + httpx at concurrency 1, 4, 16 and 64: every client sends one-row requests back to
back for ``--duration`` seconds (or until ``--max-requests``), after a short warm-up. It reports
p50/p95/p99 latency, throughput, and the mean rows per onnxruntime call read from ``/metrics``.
Everything is bounded (time, requests) and stays on loopback; servers are stopped at the end.

    python benchmarks/bench_serve.py [--duration 3] [--format npy|json] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["build_mlp", "ServerProcess", "run_load", "main"]

HOST = "127.0.0.1"


def build_mlp(path: str, seed: int = 0) -> str:
    """The 784-128-10 MLP (MatMul+Add+Relu+MatMul+Add) with a ``batch`` dim_param."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = {"w1": rng.standard_normal((784, 128)) * 0.05, "b1": np.zeros(128),
             "w2": rng.standard_normal((128, 10)) * 0.1, "b2": np.zeros(10)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_serve")
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m graphforge.serve`` in a child process on a free loopback port."""

    def __init__(self, model: str, *flags: str, start_timeout: float = 60.0):
        import httpx

        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "graphforge.serve", model, "--host", HOST,
                                      "--port", str(self.port), "--log-level", "warning", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start (exit code {self.proc.poll()})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _batch_stats(url: str) -> tuple[float, float]:
    """(onnxruntime calls, rows) so far, from /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    calls = rows = 0.0
    for fam in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in fam.samples:
            if s.name == "graphforge_serve_batch_size_count":
                calls = s.value
            elif s.name == "graphforge_serve_batch_size_sum":
                rows = s.value
    return calls, rows


async def run_load(url: str, concurrency: int, duration: float, max_requests: int, fmt: str,
                   warmup: float = 0.3) -> dict:
    """``concurrency`` clients posting one-row requests back to back; latency stats in ms."""
    import httpx

    rng = np.random.default_rng(concurrency)
    rows = rng.standard_normal((64, 1, 784)).astype(np.float32)
    if fmt == "npy":
        bodies = []
        for r in rows:
            buf = io.BytesIO()
            np.save(buf, r)
            bodies.append(buf.getvalue())
        headers = {"content-type": "application/x-npy"}
    else:
        bodies = [json.dumps({"inputs": {"x": r.tolist()}}).encode() for r in rows]
        headers = {"content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    # one single-connection AsyncClient per simulated user: a shared pool of many connections
    # costs the client more CPU than the server spends per request
    clients = [httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=1))
               for _ in range(concurrency)]

    async def client_loop(cid: int, until: float, record: bool) -> None:
        nonlocal errors
        client, k = clients[cid], cid
        while time.perf_counter() < until and (not record or len(latencies) < max_requests):
            t0 = time.perf_counter()
            try:
                resp = await client.post("/v1/predict", content=bodies[k % len(bodies)], headers=headers)
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            dt = time.perf_counter() - t0
            k += concurrency
            if not ok:
                errors += 1
            elif record:
                latencies.append(dt)

    try:
        await asyncio.gather(*(client_loop(c, time.perf_counter() + warmup, False) for c in range(concurrency)))
        calls0, rows0 = await asyncio.to_thread(_batch_stats, url)
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(c, t0 + duration, True) for c in range(concurrency)))
        elapsed = time.perf_counter() - t0
        calls1, rows1 = await asyncio.to_thread(_batch_stats, url)
    finally:
        for client in clients:
            await client.aclose()
    lat = np.asarray(latencies) * 1000.0
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors, "seconds": elapsed,
            "throughput_rps": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "mean_batch_rows": (rows1 - rows0) / (calls1 - calls0) if calls1 > calls0 else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per cell (default 3)")
    parser.add_argument("--max-requests", type=int, default=20000, help="cap on requests per cell")
    parser.add_argument("--format", choices=["npy", "json"], default="npy", help="request body format")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="batching window when batching is on")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                        help="extra flag for the server, e.g. --server-flag=--intra-op-threads=1 (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    settings = {"batching on": ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)],
                "batching off": ["--max-batch", "1"]}
    results = []
    print(f"# graphforge serve, MLP 784-128-10 float32, one row per request, {args.format} bodies; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.duration:g} s per cell")
    print(f"{'setting':<13} {'conc':>4} {'reqs':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'rows/call':>9} {'errors':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_mlp(os.path.join(tmp, "mlp.onnx"))
        for name, flags in settings.items():
            server = ServerProcess(model, *flags, *args.server_flag)
            try:
                for c in levels:
                    r = asyncio.run(run_load(server.url, c, args.duration, args.max_requests, args.format))
                    r["setting"] = name
                    results.append(r)
                    print(f"{name:<13} {c:>4} {r['requests']:>6} {r['throughput_rps']:>8.0f} {r['p50_ms']:>8.2f} "
                          f"{r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['mean_batch_rows']:>9.1f} {r['errors']:>6}",
                          flush=True)
            finally:
                server.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
