"""DynamicBatcher on its own, with fake runners: merging keys, row limits, outputs that do not
follow the batch dim, a lone client not paying the batching window, and stop()."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serve_helpers import running

from graphforge.serve import DynamicBatcher, QueueFullError, ShuttingDownError


class Recorder:
    """runner.run that records the batch shapes it saw; ``fn`` computes the outputs."""

    def __init__(self, fn=lambda feeds: [feeds["x"] * 2.0]):
        self.fn = fn
        self.shapes = []

    def run(self, feeds):
        self.shapes.append({k: v.shape for k, v in feeds.items()})
        return self.fn(feeds)


def _go(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_merges_by_key_and_respects_max_batch():
    runner = Recorder()

    async def main():
        b = DynamicBatcher(runner, max_batch=4, max_wait_ms=50, queue_size=64)
        await b.start()
        xs = [np.full((1, 3), k, np.float32) for k in range(6)] + [np.full((1, 5), 9, np.float32)]
        with b.receiving():  # another request "on its way": the worker waits for the window
            tasks = [asyncio.create_task(b.submit({"x": x}, 1)) for x in xs]
            await asyncio.sleep(0.01)
        outs = await asyncio.gather(*tasks)
        await b.stop(5)
        return xs, outs

    xs, outs = _go(main())
    for x, (y,) in zip(xs, outs):
        np.testing.assert_array_equal(y, x * 2)
    sizes = sorted(s["x"] for s in runner.shapes)
    assert sizes == [(1, 5), (2, 3), (4, 3)]  # 4 rows max; the [*, 5] request never joins a [*, 3] batch


def test_outputs_not_following_the_batch_dim_switch_batching_off():
    runner = Recorder(lambda feeds: [feeds["x"].sum(axis=0, keepdims=True)])

    async def main():
        b = DynamicBatcher(runner, max_batch=8, max_wait_ms=50)
        await b.start()
        xs = [np.full((2, 3), k, np.float32) for k in range(1, 4)]
        with b.receiving():
            tasks = [asyncio.create_task(b.submit({"x": x}, 2)) for x in xs]
            await asyncio.sleep(0.01)
        outs = await asyncio.gather(*tasks)
        await b.stop(5)
        return b, xs, outs

    b, xs, outs = _go(main())
    assert b.batching is False
    for x, (y,) in zip(xs, outs):
        np.testing.assert_array_equal(y, x.sum(axis=0, keepdims=True))  # each re-run alone: right answer


def test_queue_bound_and_stop():
    async def main():
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        class Slow:
            def run(self, feeds):
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
                return [feeds["x"]]

        b = DynamicBatcher(Slow(), max_batch=1, max_wait_ms=0, queue_size=1)
        await b.start()
        first = asyncio.create_task(b.submit({"x": np.ones((1, 1))}, 1))
        while b.running_batches == 0:
            await asyncio.sleep(0.001)
        second = asyncio.create_task(b.submit({"x": np.ones((1, 1))}, 1))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await b.submit({"x": np.ones((1, 1))}, 1)
        stopping = asyncio.create_task(b.stop(10))
        await asyncio.sleep(0.01)
        with pytest.raises(ShuttingDownError):
            await b.submit({"x": np.ones((1, 1))}, 1)
        release.set()
        await stopping
        return await first, await second

    a, c = _go(main())
    assert a[0].shape == c[0].shape == (1, 1)


def test_lone_client_does_not_wait_for_the_window(models):
    with running(models["small"], max_wait_ms=2000) as (_, client):
        assert client.post("/v1/predict", json=[[0.0] * 6]).status_code == 200  # warm-up
        t0 = time.perf_counter()
        for _ in range(3):
            assert client.post("/v1/predict", json=[[1.0] * 6]).status_code == 200
        assert time.perf_counter() - t0 < 1.5  # three sequential requests, far below one 2 s window
