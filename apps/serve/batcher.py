"""Dynamic batching: merge concurrent requests along axis 0 into one onnxruntime call.

Requests enter a bounded FIFO (:class:`QueueFullError` when it is full). Each of ``workers``
asyncio tasks takes the oldest request, then gathers queued requests with the same *key* (input
names, non-batch dims and dtypes) until ``max_batch`` rows are reached or ``max_wait_ms`` has passed
since the oldest one arrived, and runs the batch in a worker thread (onnxruntime releases the GIL, so
the event loop stays free). Results are split back by each request's row count.

The window is only waited out while more requests are expected: while one is being received, or
while fewer requests are in the batch than were in the server at once lately (the peak of
:attr:`DynamicBatcher.active` over the last one to two seconds). So a lone client pays no batching
delay, and a closed loop of N clients, whose requests come back a little apart after each answer,
is gathered into batches of about N instead of being split into whatever arrived in the same tick.

If a merged run fails, every request of the batch is re-run alone, so only the one that really
fails gets the error. If a model's outputs turn out not to follow the batch dim, batching is
switched off for good (with a warning) and each request runs alone.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

from .errors import QueueFullError, ShuttingDownError

__all__ = ["DynamicBatcher", "Job"]

log = logging.getLogger("graphforge.serve")


@dataclass(eq=False)
class Job:
    """One validated request waiting for inference."""

    feeds: dict[str, np.ndarray]
    rows: int | None  # None: not batchable, runs alone
    key: Hashable
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


def batch_key(feeds: dict[str, np.ndarray]) -> Hashable:
    """Requests with equal keys can be concatenated along axis 0."""
    return tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feeds.items()))


class DynamicBatcher:
    """Bounded queue + inference workers around ``runner.run(feeds) -> list[np.ndarray]``."""

    def __init__(self, runner, *, max_batch: int = 64, max_wait_ms: float = 2.0, workers: int = 1,
                 queue_size: int = 256, batchable: bool = True, metrics=None,
                 labels: tuple[str, str] | None = None):
        self.runner = runner
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.workers = int(workers)
        self.queue_size = int(queue_size)
        self.batching = bool(batchable) and self.max_batch > 1 and self.max_wait > 0
        self.metrics = metrics
        self.labels = labels  # (model, version) for the per-model metrics
        self._pending: deque[Job] = deque()
        self._waiters: list[asyncio.Future] = []
        self._tasks: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self.running_batches = 0
        self.arriving = 0  # requests being received/validated, not yet submitted
        self.active = 0  # requests being received, queued or running, not yet answered
        self._running_jobs = 0  # requests inside batches that onnxruntime is running
        self._peak_window = (0.0, 0, 0)  # (window start, peak there, peak of the window before)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="graphforge-infer")
        self._tasks = [asyncio.create_task(self._worker(), name=f"graphforge-batcher-{i}")
                       for i in range(self.workers)]

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking requests, finish the queued and running ones (up to ``timeout`` s)."""
        self._stopping = True
        self._notify()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ShuttingDownError("the server shut down before this request ran"))
        self._set_depth()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- requests -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def receiving(self):
        """Admit a request and mark it as on its way (body being read and checked): batches wait for it.

        Requests being received count against ``queue_size`` with the queued ones, so the bodies
        held in memory are bounded too: past that, :class:`QueueFullError` (503) before any byte
        of the body is read.
        """
        if self._stopping:
            raise ShuttingDownError("the server is shutting down")
        if self.arriving + len(self._pending) >= self.queue_size:
            self._reject()
        self.arriving += 1
        self._enter()
        try:
            yield
        finally:
            self.arriving -= 1
            self._leave()
            self._notify()

    def recent_concurrency(self) -> int:
        """The most requests that were in the server at once in the last one to two seconds."""
        start, peak, before = self._roll_window()
        return max(peak, before, self.active)

    def _roll_window(self) -> tuple[float, int, int]:
        now = time.monotonic()
        start, peak, before = self._peak_window
        if now - start >= 1.0:  # a new one-second window; the last one is kept only if it just ended
            before = peak if now - start < 2.0 else 0
            start, peak = now, 0
            self._peak_window = (start, peak, before)
        return self._peak_window

    def _enter(self) -> None:
        self.active += 1
        start, peak, before = self._roll_window()
        if self.active > peak:
            self._peak_window = (start, self.active, before)

    def _leave(self) -> None:
        self.active -= 1

    async def submit(self, feeds: dict[str, np.ndarray], rows: int | None) -> list[np.ndarray]:
        """Queue validated feeds and wait for their outputs."""
        if self._stopping:
            raise ShuttingDownError("the server is shutting down")
        if len(self._pending) >= self.queue_size:
            self._reject()
        job = Job(feeds, rows, batch_key(feeds), asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._set_depth()
        self._enter()
        self._notify()
        try:
            return await job.future
        finally:
            self._leave()

    # -- internals ----------------------------------------------------------------------------
    def _reject(self):
        if self.metrics is not None:
            self.metrics.rejected.labels("queue_full").inc()
        raise QueueFullError(f"the request queue is full ({self.queue_size} requests waiting or being "
                             "received, --queue-size); retry later")

    def _set_depth(self) -> None:
        # The queue-depth gauge sums every batcher of the server when it is scraped (the app sets
        # its function); this hook stays for subclasses that want to react to depth changes.
        return None

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait_arrival(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def _take_first(self) -> Job | None:
        while True:
            while self._pending:
                job = self._pending.popleft()
                if not job.future.done():  # done: cancelled by its client
                    self._set_depth()
                    return job
            self._set_depth()
            if self._stopping:
                return None
            await self._wait_arrival(None)

    def _take_compatible(self, batch: list[Job], rows: int) -> tuple[int, bool]:
        """Move queued requests that fit into ``batch``; (rows, whether one compatible did not fit)."""
        key = batch[0].key
        kept: deque[Job] = deque()
        overflow = False
        while self._pending:
            job = self._pending.popleft()
            if job.future.done():
                continue
            if job.key == key and job.rows is not None:
                if rows + job.rows <= self.max_batch:
                    batch.append(job)
                    rows += job.rows
                    continue
                overflow = True
            kept.append(job)
        self._pending = kept
        self._set_depth()
        return rows, overflow

    async def _gather(self, batch: list[Job]) -> None:
        first = batch[0]
        rows = first.rows
        deadline = first.enqueued + self.max_wait
        while True:
            rows, overflow = self._take_compatible(batch, rows)
            if rows >= self.max_batch or overflow or self._stopping:
                return  # as full as it gets: the next request starts the next batch
            # Requests that could still join: those in the server lately, less this batch and
            # those that other workers are running now.
            expected = self.recent_concurrency() - len(batch) - self._running_jobs
            if self.arriving == 0 and expected <= 0:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self._wait_arrival(remaining)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._take_first()
            if job is None:
                return
            batch = [job]
            if self.batching and job.rows is not None and job.rows < self.max_batch:
                await self._gather(batch)
            if self.metrics is not None:
                now = time.monotonic()
                for j in batch:
                    self.metrics.observe_queue(self.labels, now - j.enqueued)
            self.running_batches += 1
            self._running_jobs += len(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except asyncio.CancelledError:  # stop() gave up waiting: do not leave clients hanging
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(ShuttingDownError("the server shut down during inference"))
                raise
            except Exception as exc:  # the executor itself failed (shut down): fail the batch
                results = [exc] * len(batch)
            finally:
                self.running_batches -= 1
                self._running_jobs -= len(batch)
            for j, res in zip(batch, results):
                if j.future.done():
                    continue
                if isinstance(res, BaseException):
                    j.future.set_exception(res)
                else:
                    j.future.set_result(res)

    # -- worker thread ------------------------------------------------------------------------
    def _timed_run(self, feeds: dict[str, np.ndarray], rows: int, requests: int) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return self.runner.run(feeds)
        finally:
            if self.metrics is not None:
                self.metrics.observe_batch(rows, requests, time.perf_counter() - start, self.labels)

    def _run_alone(self, job: Job) -> list[np.ndarray] | Exception:
        try:
            return self._timed_run(job.feeds, job.rows if job.rows is not None else 1, 1)
        except Exception as exc:
            return exc

    def _run_batch(self, batch: list[Job]) -> list:
        if len(batch) == 1:
            return [self._run_alone(batch[0])]
        names = list(batch[0].feeds)
        merged = {n: np.concatenate([j.feeds[n] for j in batch], axis=0) for n in names}
        total = sum(j.rows for j in batch)
        try:
            outputs = self._timed_run(merged, total, len(batch))
        except Exception as exc:
            log.info("batch of %d requests failed (%s); re-running them one by one", len(batch), exc)
            return [self._run_alone(j) for j in batch]
        if any(np.ndim(o) == 0 or np.shape(o)[0] != total for o in outputs):
            log.warning("model outputs %s do not follow the batch dim (%d rows); dynamic batching "
                        "switched off", [list(np.shape(o)) for o in outputs], total)
            self.batching = False
            return [self._run_alone(j) for j in batch]
        results, offset = [], 0
        for j in batch:
            results.append([o[offset:offset + j.rows] for o in outputs])
            offset += j.rows
        return results
