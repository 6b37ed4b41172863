"""``make fuzz``: the long differential-fuzzing tier (and the long checkpoint kill tier).

    python -m tests.fuzz.run --graphs 10000 [--seed 0] [--jax-every 20] [--kill-runs 50] [--onnx-mutations 2000]

Every graph runs on the reference interpreter (float32 vs the float64 twin), through the default
pipeline and ``cse,dce`` (bitwise), on onnxruntime, and through ``from_onnx(to_onnx(g))``; every
``--jax-every``-th graph also runs on JAX (op by op, and jitted through ``gf.run``) with its
gradient graph checked against ``jax.grad``. JAX compiles each new op shape (tens of
milliseconds on a busy CPU), which is why only a share of the graphs goes through it. Prints the
number of graphs run, their nodes and the registry ops they covered (of how many), mismatches and
crashes, and the first failures with their seeds (rerun one with ``--graphs 1 --seed N --verbose``).
Then the ops the generator excludes, each on its own (``excluded.py``, ``--excluded-rounds`` seeds
each, back ends against each other), and the second campaign (``onnx_mutate.py``): ``--onnx-mutations`` mutated ONNX files through the
importer under a 4 GiB address-space limit (a child process). Exits 1 when anything failed.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

if __package__ in (None, ""):  # run as a script: make ``fuzz`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["fuzz", "main", "backends_for"]


def backends_for(index: int, jax_every: int, available: list[str]) -> list[str]:
    names = [b for b in available if b in ("reference", "onnxruntime", "roundtrip")]
    if jax_every and index % jax_every == 0:
        names.insert(1, "jax_eager")
        if index % (jax_every * 5) == 0:
            names.append("jax")  # the public jitted path, now and then (a jit compile per graph)
    return names


def fuzz(graphs: int, seed: int = 0, jax_every: int = 20, verbose: bool = False, stream=sys.stdout,
         max_nodes: int = 40) -> dict:
    """Run ``graphs`` generated graphs through the oracles; returns the tallies."""
    from fuzz.gen import RandomChooser, generate
    from fuzz.oracles import available_backends, check_case, localize

    available = available_backends()
    counts = collections.Counter()
    ops_seen: collections.Counter = collections.Counter()
    failures = []
    start = time.time()
    for k in range(graphs):
        s = seed + k
        try:
            case = generate(RandomChooser(s), max_nodes=max_nodes)
        except Exception as exc:  # noqa: BLE001 - a generator failure is a finding too (a type rule lied)
            counts["crash"] += 1
            failures.append((s, f"[crash] generator: {type(exc).__name__}: {exc}"))
            continue
        names = backends_for(k, jax_every, available)
        findings = check_case(case, names, gradients="jax_eager" in names)
        counts["graphs"] += 1
        counts["nodes"] += len(case.graph.nodes)
        ops_seen.update(case.ops)
        counts["jax_graphs"] += "jax_eager" in names
        counts["ort_graphs"] += "onnxruntime" in names
        counts["roundtrip_graphs"] += "roundtrip" in names
        kinds = {f.kind for f in findings}
        for kind in kinds:
            counts[kind] += 1
        if findings and len(failures) < 20:
            where = ""
            if "mismatch" in kinds and verbose:
                try:
                    where = "\n  " + localize(case, "jax_eager" if "jax_eager" in names else "reference")
                except Exception as exc:  # noqa: BLE001
                    where = f"\n  (localize failed: {exc})"
            failures.append((s, "\n  ".join(str(f)[:600] for f in findings) + where))
        if verbose and findings:
            print(case.graph, file=stream)
        if stream is not None and (k + 1) % 500 == 0:
            print(f"  {k + 1} graphs, {time.time() - start:.0f} s, {counts['mismatch']} mismatching, "
                  f"{counts['crash']} crashing", file=stream, flush=True)
    counts["seconds"] = round(time.time() - start, 1)
    return {"counts": counts, "failures": failures, "backends": available, "ops": ops_seen}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jax-every", type=int, default=20)
    parser.add_argument("--max-nodes", type=int, default=40)
    parser.add_argument("--kill-runs", type=int, default=0, help="also SIGKILL this many checkpointing runs")
    parser.add_argument("--onnx-mutations", type=int, default=2000,
                        help="mutated ONNX files for the import campaign (0: skip it)")
    parser.add_argument("--excluded-rounds", type=int, default=20,
                        help="seeds per op for the ops the generator cannot draw (fuzz/excluded.py; 0: skip)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    # XLA compiles every new op shape; a persistent cache makes repeated `make fuzz` runs cheaper.
    cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                                  os.path.join(os.path.expanduser("~"), ".cache", "graphforge-fuzz-jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.makedirs(cache, exist_ok=True)
    result = fuzz(args.graphs, args.seed, args.jax_every, args.verbose, max_nodes=args.max_nodes)
    c = result["counts"]
    print(f"fuzz: {c['graphs']} graphs ({c['nodes']} nodes; {c['jax_graphs']} also on JAX with gradients, "
          f"{c['ort_graphs']} on onnxruntime, {c['roundtrip_graphs']} through import(export(g))) in {c['seconds']} s; back ends {', '.join(result['backends'])}")
    from fuzz.gen import EXCLUDED, registry_ops

    universe = set(registry_ops())
    seen = set(result["ops"]) & universe
    print(f"fuzz: ops covered {len(seen)} of {len(universe)} registry ops ({len(EXCLUDED)} excluded with a reason)"
          + (f"; not drawn: {', '.join(sorted(universe - seen - set(EXCLUDED)))}" if universe - seen - set(EXCLUDED)
             else ""))
    print(f"fuzz: {c['mismatch']} mismatching graphs, {c['crash']} crashing graphs, "
          f"{c['unsupported']} with ops the ONNX export or import does not support")
    for s, text in result["failures"]:
        print(f"--- seed {s}\n  {text}")
    failed = c["mismatch"] + c["crash"]
    if args.excluded_rounds:
        from fuzz.excluded import fuzz_excluded

        ex = fuzz_excluded(args.excluded_rounds, start=args.seed)
        e = ex["counts"]
        print(f"fuzz: excluded ops on their own: {e['cases']} one-node graphs ({len(EXCLUDED)} ops x "
              f"{args.excluded_rounds} seeds), {e['mismatch']} mismatching, {e['crash']} crashing, "
              f"{e['unsupported']} unsupported")
        for f in ex["findings"][:10]:
            print(f"--- {str(f)[:600]}")
        failed += e["mismatch"] + e["crash"]
    if args.onnx_mutations:
        import subprocess

        here = os.path.dirname(os.path.abspath(__file__))
        # a child process: the campaign caps its own address space at 4 GiB
        rc = subprocess.call([sys.executable, os.path.join(here, "onnx_mutate.py"), "--cases",
                              str(args.onnx_mutations), "--seed", str(args.seed), "--memory-limit", "4G"])
        failed += rc != 0
    if args.kill_runs:
        from reliability.killtest import kill_campaign

        stats = kill_campaign(args.kill_runs, seed=args.seed)
        print(f"kill test: {stats}")
        failed += stats["bad"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
