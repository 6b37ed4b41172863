"""Print graphforge's pass rate on onnx's backend test suite, per category (``make conformance``).

    python -m tests.conformance.run [--category Node ...] [--include REGEX] [--backend jax|reference]
                                    [--failures] [--per-op] [--jobs N]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

from graphforge.ops.registry import all_ops

from .exclusions import NO_NODE_CASE
from .suite import CATEGORIES, USED_OPS, ci_sample, claimed_ops, per_op, registry_ops_covered, run_suite, summarize

NODE_TARGET = 0.90     # of all node cases, exclusions counted as failures (issue 19: measured 92.1 %)
PER_OP_TARGET = 0.98   # of the non-excluded node cases of every op the importer claims


def _run_shard(categories, include, backend, shard):
    """One shard's outcomes and the registry ops its imported graphs used (``USED_OPS`` lives in the
    shard's process, so it travels back with the outcomes)."""
    results = run_suite(categories, include=include, backend=backend, shard=shard)
    return results, {name: set(ops) for name, ops in USED_OPS.items()}


def _run(categories, include, backend, jobs: int):
    """The suite in ``jobs`` fresh processes (spawned: JAX and onnxruntime do not survive a fork), each
    running every jobs-th case; the outcomes merged back in suite order."""
    if jobs <= 1:
        return run_suite(categories, include=include, backend=backend)
    ctx = multiprocessing.get_context("spawn")
    run = functools.partial(_run_shard, categories, include, backend)
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        parts = list(pool.map(run, [(i, jobs) for i in range(jobs)]))
    for _, used in parts:
        for name, ops in used.items():
            USED_OPS[name].update(ops)
    order = {c: k for k, c in enumerate(categories)}
    return sorted((r for part, _ in parts for r in part), key=lambda r: (order[r.category], r.name))


@contextlib.contextmanager
def _session_jax_cache():
    """A fresh JAX persistent compilation cache for this run, shared by its shards, removed at the end.

    onnx's node cases repeat programs (an op's ``_expanded`` twin, one op under several case names):
    measured on a third of the cases, 738 compiles were 487 distinct programs, and the run took 20 %
    less CPU with the cache. Every executable is cached (JAX's default skips ones compiled in under a
    second: all of these). A caller's own ``JAX_COMPILATION_CACHE_DIR`` wins (and is kept)."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        yield
        return
    directory = tempfile.mkdtemp(prefix="graphforge-conformance-jax-cache-")
    settings = {"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    os.environ.update(settings)  # spawned shards read these when they import jax
    options = {"jax_compilation_cache_dir": directory, "jax_persistent_cache_min_compile_time_secs": 0,
               "jax_persistent_cache_min_entry_size_bytes": 0}
    jax = sys.modules.get("jax")  # this process compiles too when --jobs 1
    before = {name: getattr(jax.config, name) for name in options} if jax else {}
    for name, value in options.items() if jax else ():
        jax.config.update(name, value)
    try:
        yield
    finally:
        for key in settings:
            os.environ.pop(key, None)
        for name, value in before.items():
            jax.config.update(name, value)
        shutil.rmtree(directory, ignore_errors=True)


def sample_misses(results) -> list[str]:
    """What ``tests/conformance/test_conformance.py``'s CI-sample tests would report on these
    outcomes (empty when they would pass): a sampled node case that fails, a registry op with no
    passing node case, a stale ``NO_NODE_CASE`` entry. ``make conformance --check`` runs the whole
    suite, a superset of the sample, so CI need not run the sample again (``.ci/run``)."""
    misses = []
    sample = ci_sample()
    ran = {r.name: r for r in results if r.category == "Node"}
    for name in sorted(sample):
        r = ran.get(name)
        if r is None or r.status in ("fail", "error"):
            misses.append(f"CI-sample case {name}: {'not run' if r is None else r.status}")
    covered = registry_ops_covered([r for r in ran.values() if r.name in sample])  # as the sample test counts
    missing = sorted(set(all_ops()) - covered - set(NO_NODE_CASE))
    if missing:
        misses.append(f"registry ops in no passing node case: {missing}")
    stale = sorted(set(NO_NODE_CASE) & covered)
    if stale:
        misses.append(f"NO_NODE_CASE lists ops that are now covered: {stale}")
    return misses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--category", action="append", choices=CATEGORIES)
    ap.add_argument("--include")
    ap.add_argument("--backend", default=None, help="graphforge back end (default: jax when available)")
    ap.add_argument("--failures", action="store_true", help="list every failing case with its last error line")
    ap.add_argument("--per-op", action="store_true", help="per-ONNX-op table for the node cases")
    ap.add_argument("--jobs", type=int, default=1, help="processes sharing the cases (make conformance: 2)")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 unless >= {NODE_TARGET * 100:.0f}%% of all node cases pass and every claimed op passes "
                         f">= {PER_OP_TARGET * 100:.0f}%% of its non-excluded node cases (the issue's acceptance bar)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with _session_jax_cache():
        results = _run(tuple(args.category or CATEGORIES), args.include, args.backend, args.jobs)
    if args.failures:
        for r in results:
            if r.status in ("fail", "error"):
                print(f"{r.status:5s} {r.category}/{r.name}: {r.detail}")
    if args.per_op:
        claimed = set(claimed_ops())
        for op, c in sorted(per_op(results).items()):
            run = sum(c.values()) - c["excluded"]
            mark = "*" if op in claimed else " "
            print(f"{mark} {op:28s} {c['pass']:4d}/{run:<4d} (+{c['excluded']} excluded)")
    print(f"{'category':18s} {'pass':>5s} {'total':>6s} {'excl':>5s} {'rate(all)':>10s} {'rate(run)':>10s}")
    table = summarize(results)
    for cat in CATEGORIES:
        if cat in table:
            s = table[cat]
            print(f"{cat:18s} {s['pass']:5d} {s['total']:6d} {s['excluded']:5d} {s['rate_all']:10.1%} {s['rate_run']:10.1%}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if not args.check:
        return 0
    misses, claimed = [], set(claimed_ops())
    if "Node" in table and table["Node"]["rate_all"] < NODE_TARGET:
        misses.append(f"node cases pass at {table['Node']['rate_all']:.1%} < {NODE_TARGET:.0%}")
    for op, c in sorted(per_op(results).items()):
        run = sum(c.values()) - c["excluded"]
        if op in claimed and run and c["pass"] / run < PER_OP_TARGET:
            misses.append(f"{op}: {c['pass']}/{run} < {PER_OP_TARGET:.0%}")
    if "Node" in table and args.include is None:
        misses += sample_misses(results)
    for miss in misses:
        print(f"MISSED: {miss}", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
