"""A small closed-loop load driver for tests, on the benchmark's own HTTP client."""
from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import sys

__all__ = ["bench_serve", "closed_loop"]


def _load_bench():
    # by file, not by putting benchmarks/ on sys.path, where its common.py / models.py would
    # shadow same-named modules for the rest of the test session
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "bench_serve.py")
    spec = importlib.util.spec_from_file_location("_graphforge_bench_serve", os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


bench_serve = _load_bench()


async def closed_loop(port: int, clients: int, per_client: int, json_body: bytes) -> dict[int, int]:
    """``clients`` connections, each posting ``json_body`` ``per_client`` times back to back; status counts."""
    raw = bench_serve.http_request("POST", "/v1/predict", json_body, "application/json")
    counts: collections.Counter = collections.Counter()

    async def one():
        conn = bench_serve.Connection(port)
        try:
            for _ in range(per_client):
                status, _ = await conn.request(raw)
                counts[status] += 1
        finally:
            await conn.close()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(clients))), 60)
    return dict(counts)
