"""Shared measurement helpers of the benchmark suite: interleaved medians, machine facts, JSON out.

Timing discipline (every benchmark uses it): each contender is warmed up, then the contenders'
timed chunks are *interleaved* round by round (the order rotates every round), so a burst of load
from someone else on this shared 2-core box hits all contenders alike instead of one; a chunk
runs enough calls to last at least ``min_chunk_s`` (timer resolution, Python call overhead) and
the result is the median per-call time over the rounds, with the inter-quartile range as spread.
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable, Mapping

__all__ = ["ORT_SETTLE_S", "ort_settle", "balanced_orders", "interleaved_medians", "machine_info", "write_json", "write_results", "add_common_args", "summary",
           "hand_jax_step"]


# interleaved_medians' pause before each chunk when contenders own multi-threaded onnxruntime
# sessions (their idle workers spin for milliseconds; 20 ms recovered most of it, 50 ms all, on the
# LSTM generator)
ORT_SETTLE_S = 0.05


def ort_settle(tiny: bool, threads: int = 0) -> float:
    """The ``settle_s`` for contenders that own onnxruntime sessions: ``ORT_SETTLE_S``, or 0 for a
    ``--tiny`` run (it measures nothing) or single-threaded sessions (no workers to spin)."""
    return 0.0 if tiny or threads == 1 else ORT_SETTLE_S


def _chunk(fn: Callable[[], object], n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    t0 = clock()
    for _ in range(n):
        fn()
    return (clock() - t0) / n


def interleaved_medians(contenders: Mapping[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 3,
                        min_chunk_s: float = 0.02, max_inner: int = 1000,
                        clock: Callable[[], float] = time.perf_counter, settle_s: float = 0.0) -> dict[str, dict]:
    """``{name: {"median_s", "q1_s", "q3_s", "rounds", "inner"}}`` for callables that each do one
    unit of work synchronously (block until the result exists). ``clock``: wall time by default;
    ``time.thread_time`` measures the CPU time of the calling thread instead — for work that runs
    on that thread alone (e.g. onnxruntime with one intra-op thread), a figure that other jobs on a
    loaded machine change far less than wall time, since time spent preempted is not counted.

    ``settle_s``: an untimed pause before every chunk, for contenders that own multi-threaded
    onnxruntime sessions. A session's intra-op worker threads keep spinning for milliseconds after
    its last run; interleaved with no pause, the next contender's chunk shares the two cores with
    them (under the plain rotation used then, always the same contender's: the in-graph LSTM
    generator's ``Loop`` ran at 13k tokens/s right after the Python loop's sessions, 20–22k alone
    or after a 50 ms pause; docs/benchmarks.md). XLA's CPU pool does not spin (0.1 ms of
    process CPU during a 50 ms sleep after jitted steps); one-thread onnxruntime sessions have no
    workers.

    The order changes every round along :func:`balanced_orders`, so that each contender follows
    every other equally often: with a plain rotation a contender always came right after the same
    one, and whatever that one left behind (XLA's pool winding down after a JAX call) landed on it
    — graphforge's ONNX file, always run after graphforge's JAX lowering, read 1.00–1.03× of
    torch.onnx's identical file, and 0.98–1.00× with the contenders listed in reverse."""
    names = list(contenders)
    orders = balanced_orders(len(names))
    inner = {}
    for name in names:
        for _ in range(warmup):
            contenders[name]()
        once = _chunk(contenders[name], 1)
        inner[name] = max(1, min(max_inner, math.ceil(min_chunk_s / max(once, 1e-9))))
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names[i] for i in orders[r % len(orders)]):
            if settle_s:
                time.sleep(settle_s)
            samples[name].append(_chunk(contenders[name], inner[name], clock))
    return {n: summary(samples[n]) | {"inner": inner[n]} for n in names}


def balanced_orders(n: int) -> list[list[int]]:
    """Orders of ``n`` contenders (a Williams design) in which, over a full cycle, every contender
    comes immediately after every other equally often — balanced for first-order carry-over, which a
    cyclic rotation is not: ``n`` orders for even ``n``, ``2n`` (each also reversed) for odd."""
    if n <= 1:
        return [list(range(n))]
    base, lo, hi = [0], 1, n - 1
    while len(base) < n:   # 0, 1, n-1, 2, n-2, ...
        base.append(lo)
        lo += 1
        if len(base) < n:
            base.append(hi)
            hi -= 1
    rows = [[(b + i) % n for b in base] for i in range(n)]
    return rows if n % 2 == 0 else rows + [r[::-1] for r in rows]


def summary(samples: list[float]) -> dict:
    """Median and quartiles of per-call seconds."""
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
    return {"median_s": statistics.median(s), "q1_s": q[0], "q3_s": q[2], "rounds": len(s)}


def machine_info() -> dict:
    """What the numbers were measured on, including the load when they were."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_json(path: str, data) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=float)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(path: str | None, key: str, rows) -> None:
    """When ``path`` is given (a benchmark's ``--json``), write ``{"machine": ..., key: rows}`` there."""
    if path:
        write_json(path, {"machine": machine_info(), key: rows})


def add_common_args(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes and few repeats: checks the benchmark runs, measures nothing useful")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds per contender")


def hand_jax_step(loss_fn, opt, params: Mapping, x) -> Callable[[], object]:
    """The hand-written JAX peer of a train-step benchmark: ``loss_fn(params, x)`` under
    ``jax.value_and_grad`` and one optax update, jitted with the parameters and optimizer state
    donated; returns a no-argument callable that runs one step on ``x`` and waits for its loss."""
    import jax
    import jax.numpy as jnp
    import optax

    def step(p, s, xb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss
    step = jax.jit(step, donate_argnums=(0, 1))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    box, xd = [p, opt.init(p)], jnp.asarray(x)

    def one():
        box[0], box[1], loss = step(box[0], box[1], xd)
        return loss.block_until_ready()
    return one
