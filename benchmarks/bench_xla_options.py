"""XLA:CPU compiler options, each passed per executable (``gf.Trainer(xla_options=...)``, i.e.
``jax.jit(compiler_options=...)``), measured on whole graphforge train steps (issues 16, 17, 21).

Part ``steps``: for every case (``lenet``, ``resnet8``, ``mlp128`` from ``bench_train_step``; ``lstm``:
``bench_lstm``'s 2-layer LSTM, hidden 256, seq 64, batch 32) one ``gf.Trainer`` per option set, plus
hand-written JAX and PyTorch eager (when importable) in the same process; every contender warmed
up, then timed in interleaved rounds (3 steps per chunk, the order rotating) — median wall ms and
median process-CPU ms per step, the compile time (first step) and whether the optimised HLO
differs from the default set's. The losses of three steps must equal the default set's within
``RTOL`` (relative); a set that changes them more (fast math) is reported as refused.

Part ``memory``: the benchmark Transformer (2 layers, d 128, batch 32) with and without remat (each
sub-layer its own region, policy "nothing", as ``bench_precision_remat``), XLA's reported step peak
(``arguments + outputs - aliased + temporaries``) per option set on top of XLA's defaults (graphforge's
own remat defaults removed), plus graphforge's default (``REMAT_CPU_OPTIONS``) and the step-time
ratio of the remat step to the plain one.

    python benchmarks/bench_xla_options.py [--part steps,memory] [--case lenet,resnet8,lstm,mlp128]
        [--sets default,onednn,...] [--rounds 7] [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, hand_jax_step, machine_info, write_results  # noqa: E402

__all__ = ["OPTION_SETS", "MEMORY_SETS", "CASES", "RTOL", "measure_steps", "measure_memory", "main"]

_SCHED = "CPU_SCHEDULER_TYPE_"
# XLA's --help says "dot, eltwise, reduce"; the option takes the enum spellings
_ALL_FUSIONS = "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"
OPTION_SETS: dict[str, dict] = {
    "default": {},
    "onednn": {"xla_cpu_use_onednn": True},
    "onednn-fusions": {"xla_cpu_use_onednn": True, "xla_cpu_experimental_onednn_fusion_type": _ALL_FUSIONS},
    "onednn-custom-call": {"xla_cpu_experimental_onednn_custom_call": True},
    "no-xnnpack": {"xla_cpu_use_xnnpack": False},
    "xnn-fusions": {"xla_cpu_experimental_xnn_fusion_type": _ALL_FUSIONS},
    "xnn-graph-greedy": {"xla_cpu_experimental_xnn_graph_fusion_mode": "XNN_GRAPH_FUSION_MODE_GREEDY"},
    "ynn-fusions": {"xla_cpu_experimental_ynn_fusion_type": _ALL_FUSIONS},
    "ynn-dot-only": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "no-ynn-fusions": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "fast-math": {"xla_cpu_enable_fast_math": True},
    "no-fast-min-max": {"xla_cpu_enable_fast_min_max": False},
    "eigen-1-thread": {"xla_cpu_multi_thread_eigen": False},
    "preset-fast-runtime": {"xla_cpu_opt_preset": "CPU_OPT_PRESET_FAST_RUNTIME"},
    "no-fusion-emitters": {"xla_cpu_use_fusion_emitters": False},
    "tiling-propagation": {"xla_cpu_experimental_enable_tiling_propagation": True},
    "codegen-split-1": {"xla_cpu_parallel_codegen_split_count": 1},
    "sched-memory": {"xla_cpu_scheduler_type": _SCHED + "MEMORY_OPTIMIZED"},
    "sched-concurrency": {"xla_cpu_scheduler_type": _SCHED + "CONCURRENCY_OPTIMIZED"},
    "region-copy-insertion": {"xla_cpu_copy_insertion_use_region_analysis": True},
}
# the memory part: the options that can move XLA's buffer assignment (and graphforge's default)
MEMORY_SETS = ("default", "sched-memory", "sched-concurrency", "region-copy-insertion", "keep-barriers",
               "keep-barriers+sched-memory")
_EXTRA = {"keep-barriers": {"xla_disable_hlo_passes": "cse_barrier_expander"},
          "keep-barriers+sched-memory": {"xla_disable_hlo_passes": "cse_barrier_expander",
                                         "xla_cpu_scheduler_type": _SCHED + "MEMORY_OPTIMIZED"}}
CASES = ("lenet", "resnet8", "lstm", "mlp128")
RTOL = 1e-5
_NO_GF_DEFAULTS = {"xla_disable_hlo_passes": None, "xla_cpu_scheduler_type": None}


def _options(name: str) -> dict:
    return dict(OPTION_SETS.get(name, _EXTRA.get(name, {})))


def _gf_trainer_case(case: str, tiny: bool, options: dict):
    """(trainer, x, y, hand-JAX step, torch step) for a case; the JAX/torch peers only built once."""
    import optax

    import graphforge as gf
    from benchmarks import bench_train_step as b
    from benchmarks.models import MODELS, TINY, gf_params

    model, batch = b.CASES[case]
    spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
    batch = b.TINY_BATCH if tiny else batch
    x, y = spec.inputs(batch)
    target = gf.TensorSpec(("batch",), "int64") if y is not None else []
    t = gf.Trainer(spec.gf_model(), loss_fn=spec.gf_loss(), optimizer=optax.adam(1e-3), inputs=[spec.spec()],
                   targets=target, seed=0, progress=False, xla_options=options)
    return t, x, (y if y is not None else []), lambda: b._jax_step(spec, gf_params(spec), x, y)[0], \
        lambda: b._torch_step(spec, gf_params(spec), x, y)[0]


def _lstm_case(tiny: bool, options: dict):
    import optax

    import graphforge as gf
    from benchmarks import bench_lstm as bl

    sz = bl.TINY if tiny else bl.FULL
    net = bl._Net.make(sz)
    state = net.state_dict()
    x = bl._inputs(sz)
    t = gf.Trainer(net, lambda out: gf.mean(out * out), optax.adam(1e-3),
                   inputs=[gf.TensorSpec(("seq", "batch", sz["features"]), "float32")], targets=[], seed=0,
                   progress=False, xla_options=options)

    def jax_step():
        return hand_jax_step(bl._jax_lstm_loss(sz["layers"]), optax.adam(1e-3), state, x)

    def torch_step():
        import torch
        tm = bl._torch_lstm(sz, state)
        topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        xt = torch.from_numpy(x)

        def one():
            topt.zero_grad(set_to_none=True)
            out = tm(xt)[0]
            loss = (out * out).mean()
            loss.backward()
            topt.step()
            return loss.detach()
        return one
    return t, x, [], jax_step, torch_step


def _gf_fn(t, x, y):
    import jax.numpy as jnp

    from graphforge.runtimes.jax import x64
    with x64():
        xd = jnp.asarray(x)
        yd = jnp.asarray(y) if isinstance(y, np.ndarray) else []
    return lambda: t.train_step(xd, yd)["loss"].block_until_ready()


def _hlo_digest(t, x, y) -> str:
    return hashlib.sha1(t.compiled_step(x, y).as_text().encode()).hexdigest()[:12]


def measure_steps(case: str, sets, rounds: int = 7, tiny: bool = False, torch: bool | None = None) -> dict:
    """One case: every option set as a whole graphforge train step, with the peers, interleaved."""
    from benchmarks.models import torch_available

    steps, info, peers = {}, {}, None
    for name in sets:
        opts = _options(name)
        try:
            t, x, y, jax_step, torch_step = (_lstm_case(tiny, opts) if case == "lstm"
                                             else _gf_trainer_case(case, tiny, opts))
            fn = _gf_fn(t, x, y)
            c0 = time.perf_counter()
            losses = [float(np.asarray(fn()))]
            compile_s = time.perf_counter() - c0
            losses += [float(np.asarray(fn())) for _ in range(2)]
            info[name] = {"options": opts, "losses": losses, "compile_s": compile_s, "hlo": _hlo_digest(t, x, y)}
        except Exception as e:   # an option this XLA build cannot compile with is a finding, not a crash
            info[name] = {"options": opts, "error": f"{type(e).__name__}: {str(e)[:300]}"}
            continue
        if peers is None:
            peers = (jax_step, torch_step)
        steps["gf-" + name] = fn
    base = info.get("default", {}).get("losses")
    for name, r in info.items():
        if "losses" in r and base:
            r["max_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(r["losses"], base))
            r["refused"] = name != "default" and r["max_rel_diff"] > RTOL
            r["hlo_changed"] = r["hlo"] != info["default"]["hlo"]
            if r["refused"]:
                steps.pop("gf-" + name, None)
    if peers is not None:
        steps["jax"] = peers[0]()
        if torch if torch is not None else torch_available():
            steps["torch"] = peers[1]()
    for f in steps.values():
        f(), f()
    wall: dict = {k: [] for k in steps}
    cpu: dict = {k: [] for k in steps}
    names = list(steps)
    inner = 1 if tiny else 3
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:   # rotating order
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                steps[k]()
            wall[k].append((time.perf_counter() - w0) / inner * 1e3)
            cpu[k].append((time.process_time() - c0) / inner * 1e3)
    ms = {k: {"median": statistics.median(wall[k]), "best": min(wall[k]), "cpu_median": statistics.median(cpu[k]),
              "cpu_best": min(cpu[k])} for k in steps}
    d = ms.get("gf-default")
    for k, m in ms.items():
        if d:
            m["vs_default"] = m["median"] / d["median"]
            m["cpu_vs_default"] = m["cpu_median"] / d["cpu_median"]
        for peer in ("jax", "torch"):
            if peer in ms:
                m[f"vs_{peer}"] = m["median"] / ms[peer]["median"]
                m[f"cpu_vs_{peer}"] = m["cpu_median"] / ms[peer]["cpu_median"]
    return {"case": case, "machine": machine_info(), "sets": info, "ms": ms}


def _transformer(remat: bool, tiny: bool, options: dict):
    import optax

    import graphforge as gf
    from graphforge import nn

    layers, d, ffn, seq = (1, 32, 64, 8) if tiny else (2, 128, 512, 64)
    model = nn.TransformerEncoder(num_layers=layers, d_model=d, nhead=4, dim_feedforward=ffn, dropout=0.0)
    kw = {"remat": {f"layers.{i}.{part}": "nothing" for i in range(layers)
                    for part in ("attn", "ffn", "norm1", "norm2")}} if remat else {}
    return gf.Trainer(model, lambda out: gf.mean(out * out), optax.adam(1e-3),
                      inputs=gf.TensorSpec(("batch", seq, d)), targets=[], seed=0, progress=False,
                      xla_options=options, **kw), (seq, d)


def _xla_peak(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def measure_memory(sets=MEMORY_SETS, batch: int = 32, rounds: int = 7, tiny: bool = False) -> dict:
    """XLA-reported peak of the Transformer step with/without remat per option set, and graphforge's
    remat default's step time against the plain step."""
    rows = []
    x = None
    plain = None
    for name in list(sets) + ["graphforge-default"]:
        row = {"set": name}
        for remat in (False, True):
            # graphforge's own remat defaults are removed, except in its own row
            opts = {} if name == "graphforge-default" else {**_NO_GF_DEFAULTS, **_options(name)}
            if not remat and name == "graphforge-default":
                row["plain_peak"] = rows[0]["plain_peak"] if rows else None
                continue
            t, (seq, d) = _transformer(remat, tiny, opts)
            if x is None:
                x = np.random.default_rng(0).standard_normal((batch, seq, d)).astype(np.float32)
            c = t.compiled_step(x, [])
            row["remat_peak" if remat else "plain_peak"] = _xla_peak(c)
            row["remat_dots" if remat else "plain_dots"] = c.as_text().count(" dot(")
            if name == "graphforge-default":
                row["options"] = dict(t.xla_options)
                remat_t = t
            if name == "default" and not remat:
                plain = t
        if row.get("plain_peak") and row.get("remat_peak"):
            row["remat_over_plain"] = row["remat_peak"] / row["plain_peak"]
        rows.append(row)
    base = rows[0]["plain_peak"]
    for r in rows:
        r["remat_over_default_plain"] = r["remat_peak"] / base
    # step time: graphforge's remat default vs the plain step (XLA's defaults), interleaved
    fns = {"plain": _gf_fn(plain, x, []), "remat": _gf_fn(remat_t, x, [])}
    losses = {k: [float(np.asarray(f())) for _ in range(3)] for k, f in fns.items()}
    times: dict = {k: [] for k in fns}
    cpu: dict = {k: [] for k in fns}
    for r in range(rounds):
        for k in (("plain", "remat") if r % 2 == 0 else ("remat", "plain")):
            w0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            times[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    step = {k: {"median_ms": 1e3 * statistics.median(times[k]), "cpu_median_ms": 1e3 * statistics.median(cpu[k])}
            for k in fns}
    return {"machine": machine_info(), "rows": rows, "step": step, "losses": losses,
            "time_ratio": step["remat"]["median_ms"] / step["plain"]["median_ms"],
            "cpu_time_ratio": step["remat"]["cpu_median_ms"] / step["plain"]["cpu_median_ms"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="steps,memory")
    ap.add_argument("--case", default=",".join(CASES))
    ap.add_argument("--sets", default=",".join(OPTION_SETS), help="option sets of the steps part")
    ap.add_argument("--memory-sets", default=",".join(MEMORY_SETS))
    ap.add_argument("--no-torch", action="store_true")
    add_common_args(ap)
    args = ap.parse_args(argv)
    rounds = 2 if args.tiny else args.rounds
    out = {"steps": [], "memory": None}
    parts = args.part.split(",")
    if "steps" in parts:
        for case in args.case.split(","):
            r = measure_steps(case, args.sets.split(","), rounds, args.tiny, False if args.no_torch else None)
            out["steps"].append(r)
            print(f"{case}: load {r['machine'].get('loadavg')}")
            print(f"  {'contender':24s} {'ms':>8s} {'CPU ms':>8s} {'/default':>9s} {'/jax':>6s} {'/torch':>7s} "
                  f"{'compile s':>9s} {'HLO':>5s}")
            for k, m in r["ms"].items():
                s = r["sets"].get(k[3:], {}) if k.startswith("gf-") else {}
                print(f"  {k:24s} {m['median']:8.2f} {m['cpu_median']:8.2f} {m.get('vs_default', 0):9.3f} "
                      f"{m.get('vs_jax', 0):6.3f} {m.get('vs_torch', 0):7.3f} {s.get('compile_s', 0):9.2f} "
                      f"{'diff' if s.get('hlo_changed') else 'same':>5s}", flush=True)
            for k, s in r["sets"].items():
                if "error" in s or s.get("refused"):
                    print(f"  {k}: " + (s.get("error") or f"refused, losses differ by {s['max_rel_diff']:.2e}"))
    if "memory" in parts:
        m = out["memory"] = measure_memory(args.memory_sets.split(","), rounds=max(rounds, 3), tiny=args.tiny)
        print(f"transformer memory (MiB): load {m['machine'].get('loadavg')}")
        for r in m["rows"]:
            print(f"  {r['set']:28s} plain {r['plain_peak'] / 2**20:7.2f}  remat {r['remat_peak'] / 2**20:7.2f}  "
                  f"remat/plain(default) {r['remat_over_default_plain']:.3f}  dots {r.get('plain_dots', '-')}/"
                  f"{r.get('remat_dots')}")
        print(f"  remat step / plain step: {m['time_ratio']:.3f} wall, {m['cpu_time_ratio']:.3f} CPU")
    write_results(args.json, "xla_options", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
