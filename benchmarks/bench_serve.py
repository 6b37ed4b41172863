"""Load generator for ``graphforge serve``: latency percentiles and throughput, batching on vs off.

For each model it builds an ONNX MLP with ``onnx.helper`` (random weights, symbolic ``batch`` dim),
starts two ``python -m graphforge.serve`` children on free 127.0.0.1 ports, one with dynamic
batching (``--max-batch 64 --max-wait-ms 2``) and one without (``--max-batch 1``), and drives them at
concurrency 1, 4, 16 and 64: every simulated client keeps one keep-alive connection and sends
one-row requests back to back (closed loop) for ``--duration`` seconds or ``--max-requests``, after a
short warm-up. The two settings are measured cell by cell, ``--rounds`` times in alternating order,
so a neighbour's load on a shared machine hits both alike. It reports p50/p95/p99 latency, throughput, the mean
rows per onnxruntime call read from ``/metrics``, and the server's CPU time per request.

Models: ``mlp`` is the README's 784-128-10 (about 0.1 M multiply-adds a row: the HTTP request costs
far more than the inference, so batching can only save the per-call overhead); ``wide`` is
784-2048-2048-10 (5.8 M multiply-adds and 23 MB of weights a row: one-row calls stream all the
weights from memory for each request, a batched call streams them once for 64 rows).

The client speaks HTTP/1.1 over asyncio streams by itself: a general HTTP client library costs
more CPU per request than the server, and on a small machine it would measure itself.
Everything is bounded (time, requests, an overall ``--timeout``) and stays on loopback; the
servers are stopped (SIGTERM, then SIGKILL) at the end.

A bounded **soak** follows (``--soak`` runs only it, ``--no-soak`` skips it): one batching server,
``--soak-clients`` (32) keep-alive clients sending one-row requests over the Open Inference
Protocol's binary tensors until ``--soak-requests`` (200 000) or ``--soak-seconds`` have passed;
every answer is checked against onnxruntime run directly, and the server's resident memory and open
file descriptors are sampled twice a second. It reports wrong answers, errors, throughput, and RSS
and fd counts after warm-up vs at the end (flat = RSS grew < 32 MiB, fds by <= 2).

    python benchmarks/bench_serve.py [--models mlp,wide] [--duration 1.5] [--rounds 2] [--format npy|json]
                                     [--soak | --no-soak] [--soak-requests N] [--soak-seconds S] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_json  # noqa: E402

__all__ = ["MODELS", "build_mlp", "ServerProcess", "Connection", "http_request", "run_load", "merge_runs",
           "batch_stats", "v2_binary_request", "process_rss_fds", "run_soak", "main"]

HOST = "127.0.0.1"
MODELS = {"mlp": (784, 128, 10), "wide": (784, 2048, 2048, 10)}
"""Benchmark models: layer widths of a MatMul+Add(+Relu) MLP."""


def build_mlp(path: str, dims=MODELS["mlp"], seed: int = 0) -> str:
    """An MLP with layer widths ``dims`` (ReLU between layers) and a ``batch`` dim_param."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "x"
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(d_out, np.float32), f"b{i}")]
        last = i == len(dims) - 2
        nodes += [helper.make_node("MatMul", [cur, f"w{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], ["y" if last else f"pre{i}"])]
        if not last:
            nodes.append(helper.make_node("Relu", [f"pre{i}"], [f"h{i}"]))
            cur = f"h{i}"
    graph = helper.make_graph(
        nodes, "mlp_" + "_".join(map(str, dims)),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dims[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dims[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_serve")
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# -- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection: ``await request(raw_bytes) -> (status, body)``.

    Requests are pre-serialised (:func:`http_request`); replies must carry Content-Length, which is
    what the server sends. A closed connection is reopened once per request.
    """

    _STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
    _LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_head = b""  # the status line and headers of the last reply

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                await self._open()
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        status = self._STATUS.match(head)
        length = self._LENGTH.search(head)
        if status is None or length is None:
            raise ConnectionError(f"unexpected reply head {head[:120]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        self.last_head = head
        if b"connection: close" in head.lower():
            await self.close()
        return int(status.group(1)), body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass
        self.reader = self.writer = None


def http_request(method: str, path: str, body: bytes = b"", content_type: str | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = Connection(port)
    try:
        return await conn.request(http_request("GET", path))
    finally:
        await conn.close()


class ServerProcess:
    """``python -m graphforge.serve`` in a child process on a free loopback port."""

    def __init__(self, model: str, *flags: str, start_timeout: float = 60.0):
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "graphforge.serve", model, "--host", HOST,
                                      "--port", str(self.port), "--log-level", "warning", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if asyncio.run(_get(self.port, "/healthz"))[0] == 200:
                    return
            except OSError:
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


async def batch_stats(port: int) -> tuple[float, float]:
    """(onnxruntime calls, rows) so far, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = await _get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    calls = rows = 0.0
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "graphforge_serve_batch_size_count":
                calls = s.value
            elif s.name == "graphforge_serve_batch_size_sum":
                rows = s.value
    return calls, rows


def _bodies(d_in: int, fmt: str, seed: int, n: int = 64) -> list[bytes]:
    rows = np.random.default_rng(seed).standard_normal((n, 1, d_in)).astype(np.float32)
    out = []
    for r in rows:
        if fmt == "npy":
            buf = io.BytesIO()
            np.save(buf, r)
            out.append(http_request("POST", "/v1/predict", buf.getvalue(), "application/x-npy"))
        else:
            body = json.dumps({"inputs": {"x": r.tolist()}}).encode()
            out.append(http_request("POST", "/v1/predict", body, "application/json"))
    return out


_HEADER_LENGTH = re.compile(rb"\r\ninference-header-content-length:\s*(\d+)", re.IGNORECASE)


def v2_binary_request(model: str, x: np.ndarray) -> bytes:
    """A pre-serialised ``POST /v2/models/<model>/infer`` with ``x`` as FP32 binary data, binary output."""
    head = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    raw = http_request("POST", f"/v2/models/{model}/infer", head + np.ascontiguousarray(x, "<f4").tobytes(),
                       "application/octet-stream")
    # the header length goes with the headers: insert it before the blank line
    split = raw.index(b"\r\n\r\n")
    return raw[:split] + f"\r\nInference-Header-Content-Length: {len(head)}".encode() + raw[split:]


def process_rss_fds(pid: int) -> tuple[float, int]:
    """(resident MiB, open file descriptors) of process ``pid`` (Linux /proc); NaN/-1 where unknown."""
    rss = float("nan")
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                    break
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return rss, fds


async def run_soak(port: int, pid: int, model: str, d_in: int, expected_fn, *, clients: int = 32,
                   max_requests: int = 200_000, max_seconds: float = 300.0, sample_every: float = 0.5) -> dict:
    """Closed-loop clients until ``max_requests`` answers or ``max_seconds``; every answer checked.

    ``expected_fn(rows) -> outputs`` gives the reference outputs (onnxruntime run directly)."""
    rows = np.random.default_rng(7).standard_normal((64, 1, d_in)).astype(np.float32)
    expected = [expected_fn(r) for r in rows]
    bodies = [v2_binary_request(model, r) for r in rows]
    done = wrong = errors = 0
    samples: list[tuple[float, float, int]] = []
    t0 = time.perf_counter()
    stop_at = t0 + max_seconds

    async def client(cid: int) -> None:
        nonlocal done, wrong, errors
        conn, k = Connection(port), cid
        try:
            while done + errors < max_requests and time.perf_counter() < stop_at:
                i = k % len(bodies)
                k += clients
                try:
                    status, body = await conn.request(bodies[i])
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    await conn.close()
                    continue
                if status != 200:
                    errors += 1
                    continue
                done += 1
                n = _HEADER_LENGTH.search(conn.last_head)
                head = json.loads(body[:int(n.group(1))] if n else body)
                size = head["outputs"][0]["parameters"]["binary_data_size"]
                got = np.frombuffer(body[len(body) - size:], "<f4").reshape(head["outputs"][0]["shape"])
                if not np.allclose(got, expected[i], rtol=1e-4, atol=1e-5):
                    wrong += 1
        finally:
            await conn.close()

    async def sampler() -> None:
        while True:
            rss, fds = process_rss_fds(pid)
            samples.append((time.perf_counter() - t0, rss, fds))
            await asyncio.sleep(sample_every)

    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(client(c) for c in range(clients)))
    finally:
        sampling.cancel()
    elapsed = time.perf_counter() - t0
    rss_end, fds_end = process_rss_fds(pid)
    samples.append((elapsed, rss_end, fds_end))
    warm = samples[max(1, len(samples) // 10)] if len(samples) > 2 else samples[0]  # after 10 % of the run
    rss_growth = rss_end - warm[1]
    fd_growth = fds_end - warm[2]
    return {"clients": clients, "requests": done, "errors": errors, "wrong": wrong, "seconds": elapsed,
            "throughput_rps": done / elapsed if elapsed else 0.0,
            "rss_mib_warm": warm[1], "rss_mib_end": rss_end, "rss_mib_max": max(s[1] for s in samples),
            "fds_warm": warm[2], "fds_end": fds_end, "fds_max": max(s[2] for s in samples),
            "rss_flat": bool(rss_growth < 32.0), "fds_flat": bool(fd_growth <= 2),
            "samples": samples}


def _soak(args, tmp: str) -> dict:
    import onnxruntime as ort

    dims = MODELS["mlp"]
    path = build_mlp(os.path.join(tmp, "soak.onnx"), dims)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    server = ServerProcess(path, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
                           "--max-connections", str(max(1024, 4 * args.soak_clients)), *args.server_flag)
    try:
        result = asyncio.run(run_soak(server.port, server.proc.pid, "soak", dims[0],
                                      lambda x: session.run(None, {"x": x})[0], clients=args.soak_clients,
                                      max_requests=args.soak_requests, max_seconds=args.soak_seconds))
    finally:
        server.stop()
    print(f"# soak: {result['requests']} requests at {result['clients']} clients in {result['seconds']:.1f} s "
          f"({result['throughput_rps']:.0f} req/s, OIP binary tensors), {result['wrong']} wrong answers, "
          f"{result['errors']} errors; server RSS {result['rss_mib_warm']:.1f} MiB after warm-up -> "
          f"{result['rss_mib_end']:.1f} MiB at the end (max {result['rss_mib_max']:.1f}), open fds "
          f"{result['fds_warm']} -> {result['fds_end']} (max {result['fds_max']}): "
          f"{'flat' if result['rss_flat'] and result['fds_flat'] else 'NOT flat'}", flush=True)
    return result


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far; NaN where unknown.

    On a shared machine, wall-clock throughput moves with the neighbours' load; the server's CPU
    time per request is what batching saves, and it moves much less."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def run_load(port: int, concurrency: int, duration: float, max_requests: int, fmt: str = "npy",
                   d_in: int = 784, warmup: float = 0.3, pid: int | None = None) -> dict:
    """``concurrency`` closed-loop clients posting one-row requests; latency stats in ms.

    ``pid``: the server's process, whose CPU time per request is reported (Linux)."""
    bodies = _bodies(d_in, fmt, seed=concurrency)
    latencies: list[float] = []
    errors = 0
    conns = [Connection(port) for _ in range(concurrency)]

    async def client_loop(cid: int, until: float, record: bool) -> None:
        nonlocal errors
        conn, k = conns[cid], cid
        while time.perf_counter() < until and (not record or len(latencies) < max_requests):
            t0 = time.perf_counter()
            try:
                status, _ = await conn.request(bodies[k % len(bodies)])
                ok = status == 200
            except (OSError, asyncio.IncompleteReadError):
                ok = False
                await conn.close()
            dt = time.perf_counter() - t0
            k += concurrency
            if not ok:
                errors += 1
            elif record:
                latencies.append(dt)

    try:
        await asyncio.gather(*(client_loop(c, time.perf_counter() + warmup, False) for c in range(concurrency)))
        errors = 0
        calls0, rows0 = await batch_stats(port)
        cpu0 = process_cpu_seconds(pid)
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(c, t0 + duration, True) for c in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu1 = process_cpu_seconds(pid)
        calls1, rows1 = await batch_stats(port)
    finally:
        for conn in conns:
            await conn.close()
    lat = np.asarray(latencies) * 1000.0

    def pct(q: float) -> float:
        return float(np.percentile(lat, q)) if lat.size else float("nan")

    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors, "seconds": elapsed,
            "throughput_rps": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_batch_rows": (rows1 - rows0) / (calls1 - calls0) if calls1 > calls0 else float("nan"),
            "server_cpu_ms_per_request": (cpu1 - cpu0) * 1000.0 / len(latencies) if latencies else float("nan"),
            "server_cpu_s": cpu1 - cpu0, "calls": calls1 - calls0, "rows": rows1 - rows0,
            "latencies_ms": lat.tolist()}


def merge_runs(runs: list[dict]) -> dict:
    """One cell from several rounds: requests and time add up, percentiles over all latencies."""
    lat = np.concatenate([np.asarray(r["latencies_ms"]) for r in runs])
    seconds = sum(r["seconds"] for r in runs)
    calls, rows = sum(r["calls"] for r in runs), sum(r["rows"] for r in runs)
    cpu = sum(r["server_cpu_s"] for r in runs)

    def pct(q: float) -> float:
        return float(np.percentile(lat, q)) if lat.size else float("nan")

    return {"concurrency": runs[0]["concurrency"], "rounds": len(runs), "requests": int(lat.size),
            "errors": sum(r["errors"] for r in runs), "seconds": seconds,
            "throughput_rps": lat.size / seconds if seconds else 0.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_batch_rows": rows / calls if calls else float("nan"),
            "server_cpu_ms_per_request": cpu * 1000.0 / lat.size if lat.size else float("nan"),
            "round_throughputs_rps": [r["throughput_rps"] for r in runs]}


def _cpu_text() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    return f"{name}, {os.cpu_count()} CPUs{load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,wide", help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=1.5,
                        help="seconds measured per cell and round (default 1.5)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each cell is measured, alternating with the other setting (default 2)")
    parser.add_argument("--max-requests", type=int, default=20000, help="cap on requests per cell")
    parser.add_argument("--format", choices=["npy", "json"], default="npy", help="request body format")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="batching window when batching is on")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                        help="extra flag for both servers, e.g. --server-flag=--workers=2 (repeatable)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds in all")
    soak = parser.add_mutually_exclusive_group()
    soak.add_argument("--soak", action="store_true", help="run only the soak")
    soak.add_argument("--no-soak", action="store_true", help="skip the soak")
    parser.add_argument("--soak-requests", type=int, default=200_000, help="soak: stop after this many answers")
    parser.add_argument("--soak-seconds", type=float, default=300.0, help="soak: stop after this many seconds")
    parser.add_argument("--soak-clients", type=int, default=32, help="soak: concurrent keep-alive clients")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {sorted(MODELS)}")
    levels = [int(c) for c in args.concurrency.split(",")]
    settings = {"on": ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)],
                "off": ["--max-batch", "1"]}
    deadline = time.monotonic() + args.timeout
    results = []
    if args.soak:
        with tempfile.TemporaryDirectory() as tmp:
            soak_result = _soak(args, tmp)
        if args.json:
            write_json(args.json, {"load": [], "soak": soak_result})
        return 0 if soak_result["wrong"] == 0 and soak_result["errors"] == 0 else 1
    print(f"# graphforge serve load test: one row per request, {args.format} bodies, closed-loop keep-alive "
          f"clients, {args.rounds} x {args.duration:g} s per cell; batching on = --max-batch {args.max_batch} "
          f"--max-wait-ms {args.max_wait_ms:g}, off = --max-batch 1")
    print(f"# {_cpu_text()}; Python {platform.python_version()}")
    print(f"{'model':<20} {'conc':>4} | {'on req/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'rows/call':>9} "
          f"{'cpu/req':>7} | {'off req/s':>9} {'p50':>7} {'p95':>7} {'p99':>7} {'cpu/req':>7} | {'speedup':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in models:
            dims = MODELS[model_name]
            label = f"{model_name} {'-'.join(map(str, dims))}"
            path = build_mlp(os.path.join(tmp, f"{model_name}.onnx"), dims)
            servers = {}
            try:
                for name, flags in settings.items():
                    servers[name] = ServerProcess(path, *flags, *args.server_flag)
                for i, c in enumerate(levels):
                    if time.monotonic() > deadline:
                        print(f"# --timeout {args.timeout:g} s reached; stopping early")
                        break
                    runs: dict[str, list[dict]] = {name: [] for name in settings}
                    for k in range(args.rounds):
                        order = list(settings) if (i + k) % 2 == 0 else list(settings)[::-1]
                        for name in order:
                            runs[name].append(asyncio.run(run_load(
                                servers[name].port, c, args.duration, args.max_requests, args.format, dims[0],
                                pid=servers[name].proc.pid)))
                    row = {}
                    for name in settings:
                        r = merge_runs(runs[name])
                        r.update(setting=name, model=model_name, dims=list(dims))
                        results.append(r)
                        row[name] = r
                    on, off = row["on"], row["off"]
                    speedup = on["throughput_rps"] / off["throughput_rps"] if off["throughput_rps"] else float("nan")
                    errs = on["errors"] + off["errors"]
                    print(f"{label:<20} {c:>4} | {on['throughput_rps']:>8.0f} {on['p50_ms']:>7.2f} "
                          f"{on['p95_ms']:>7.2f} {on['p99_ms']:>7.2f} {on['mean_batch_rows']:>9.1f} "
                          f"{on['server_cpu_ms_per_request']:>7.2f} | "
                          f"{off['throughput_rps']:>9.0f} {off['p50_ms']:>7.2f} {off['p95_ms']:>7.2f} "
                          f"{off['p99_ms']:>7.2f} {off['server_cpu_ms_per_request']:>7.2f} | {speedup:>6.2f}x"
                          + (f"  ({errs} errors)" if errs else ""), flush=True)
            finally:
                for server in servers.values():
                    server.stop()
    print("# latencies in ms; cpu/req = the server process's CPU ms per request (all threads); "
          "speedup = throughput with batching / without")
    soak_result = None
    if not args.no_soak:
        with tempfile.TemporaryDirectory() as tmp:
            soak_result = _soak(args, tmp)
    if args.json:
        write_json(args.json, {"load": results, "soak": soak_result})
    return 0 if soak_result is None or (soak_result["wrong"] == 0 and soak_result["errors"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
