"""``make gpu-check``: one short, prepared GPU run (well under 5 minutes) for when a GPU machine is lent.

Sections, each in its own try/except (a failed section is recorded with its error and the others
still run):

1. ``train_fp32``: the four train-step cases (``mlp128``, ``lenet``, ``resnet8``, ``transformer``) —
   graphforge-JAX on the GPU vs PyTorch CUDA eager (and hand-written JAX), interleaved medians.
2. ``train_bf16``: the same cases in bfloat16. graphforge has no mixed-precision pass yet, so this is a
   plain *cast-based* bf16 step on every side (the model traced with bf16 params and inputs; torch's
   model ``.to(torch.bfloat16)``) — not ``precision="bf16-mixed"``; the output says so.
3. ``onnx``: inference latency of graphforge's ONNX (``gf.to_onnx``) vs ``torch.onnx.export``'s, both
   on onnxruntime's CUDA execution provider (skipped with a reason when ORT has no CUDA provider).
4. ``memory``: peak device memory of one train step per case (XLA's memory analysis of graphforge's
   compiled step; torch's ``max_memory_allocated`` over one step).
5. ``precision_remat``: ``precision="bf16-mixed"``/``"fp16-mixed"`` and remat policies on the benchmark
   Transformer (``benchmarks/bench_precision_remat.py``): step time, estimated and XLA-reported peak.

It writes ``gpu_check.json`` (everything, with the machine and the date) and ``gpu_check.md`` (tables
for docs/benchmarks.md) into ``--out`` (default ``benchmarks/gpu_results/``). On a machine without a
GPU it prints that and exits 0 without writing anything.

    python benchmarks/gpu_check.py [--out DIR] [--rounds 7] [--cases mlp128,lenet,resnet8,transformer]
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import traceback

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import interleaved_medians, machine_info, write_json  # noqa: E402

__all__ = ["gpu_devices", "run_check", "format_markdown", "main", "CASES"]

CASES = ("mlp128", "lenet", "resnet8", "transformer")
BF16_NOTE = ("bf16 = plain cast-based bfloat16 step on every side (params, inputs and compute in bf16); "
             "graphforge has no mixed-precision pass yet, so this is not bf16-mixed with fp32 master weights")


def gpu_devices() -> dict:
    """``{"jax": [...], "torch": [...]}``: the GPU devices each framework sees (empty lists on a CPU box)."""
    found = {"jax": [], "torch": []}
    try:
        import jax
        found["jax"] = [str(d) for d in jax.devices() if d.platform == "gpu"]
    except Exception:  # noqa: BLE001 - no CUDA backend in this jaxlib raises; that means "no GPU"
        found["jax"] = []
    try:
        import torch
        if torch.cuda.is_available():
            found["torch"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return found


def _section(out: dict, name: str, fn) -> None:
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        out[name] = {"ok": True, "rows": fn()}
    except Exception as exc:  # noqa: BLE001 - a failed section is recorded, the others still run
        out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc().splitlines()[-8:]}
        print(f"!! {name} failed: {type(exc).__name__}: {exc}", flush=True)
    out[name]["seconds"] = round(time.perf_counter() - t0, 1)


def _gf_trainer(spec):
    import optax

    import graphforge as gf

    target = gf.TensorSpec(("batch",), "int64") if spec.loss == "cross_entropy" else []
    return gf.Trainer(spec.gf_model(), loss_fn=spec.gf_loss(), optimizer=optax.adam(1e-3), inputs=[spec.spec()],
                      targets=target, seed=0, progress=False)


def _gf_bf16_step(t, x, y):
    """A cast-based bfloat16 train step: the trainer's float32 gradient graph with every f32 type
    spelled bf16 (through the stable text IR) and its params cast, lowered to JAX, then adam."""
    import jax
    import jax.numpy as jnp
    import ml_dtypes
    import optax

    import graphforge as gf
    from graphforge.runtime import bind_inputs
    from graphforge.runtimes.jax import lower, x64

    g = t.grad_graph
    cast = {k: v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v for k, v in g.params.items()}
    g16 = gf.parse(str(g).replace("f32[", "bf16[").replace('"float32"', '"bfloat16"'), params=cast)
    names = g16.output_names
    gi = {n[len("grad:"):]: i for i, n in enumerate(names) if n.startswith("grad:")}
    ui = {n[len("update:"):]: i for i, n in enumerate(names) if n.startswith("update:")}
    arrays = [x.astype(ml_dtypes.bfloat16)] + ([y] if y is not None else [])
    bound, env = bind_inputs(g16, arrays)
    opt = optax.adam(1e-3)
    with x64():
        fwd = lower(g16, env)
        params = {n: jnp.asarray(cast[n]) for n in gi}
        bufs = {n: jnp.asarray(cast[n]) for n in ui}
        box = [params, bufs, opt.init(params)]
        args = tuple(jnp.asarray(a) for a in bound)

        def step(p, b, s, inputs):
            outs = fwd({**p, **b}, inputs)
            u, s = opt.update({n: outs[i] for n, i in gi.items()}, s, p)
            return optax.apply_updates(p, u), {n: outs[i] for n, i in ui.items()}, s, outs[0]
        step = jax.jit(step, donate_argnums=(0, 1, 2))

    def one():
        with x64():
            box[0], box[1], box[2], loss = step(box[0], box[1], box[2], args)
        return loss.block_until_ready()
    one.state = box     # [params, buffers, optimizer state], for inspection
    return one


def _train_rows(cases, rounds, bf16: bool, torch_device: str = "cuda", tiny: bool = False) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks.bench_train_step import CASES as ALL, TINY_BATCH
    from benchmarks.models import MODELS, TINY, gf_buffers, gf_params, torch_loss
    from graphforge.runtimes.jax import x64

    dev = torch.device(torch_device)
    tdtype = torch.bfloat16 if bf16 else torch.float32
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for case in cases:
        model, batch = ALL[case]
        spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
        batch = TINY_BATCH if tiny else batch
        x, y = spec.inputs(batch)
        t = _gf_trainer(spec)
        if bf16:
            gf_step = _gf_bf16_step(t, x, y)
        else:
            with x64():
                xd = jnp.asarray(x)
                yd = jnp.asarray(y) if y is not None else []

            def gf_step():
                return t.train_step(xd, yd)["loss"].block_until_ready()

        tm = spec.torch_model()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in {**gf_params(spec), **gf_buffers(spec)}.items()}
        tm.load_state_dict(state, strict=False)
        tm = tm.to(dev, tdtype).train()
        opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        loss_fn = torch_loss(spec)
        xt = torch.from_numpy(x).to(dev, tdtype)
        yt = torch.from_numpy(y).to(dev) if y is not None else None

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(tm(xt), yt)
            loss.backward()
            opt.step()
            sync()
            return loss

        first = {"graphforge": float(np.asarray(gf_step()).astype(np.float32)),
                 "torch": float(torch_step().float().item())}
        res = interleaved_medians({"graphforge": gf_step, "torch": torch_step}, rounds=rounds,
                                  warmup=1 if tiny else 3, min_chunk_s=0.002 if tiny else 0.05)
        rows.append({"case": case, "batch": batch, "first_loss": first, "results": res,
                     "ratio_gf_torch": res["graphforge"]["median_s"] / res["torch"]["median_s"],
                     "device": str(jax.devices()[0])})
        print(f"  {case:12s} gf {res['graphforge']['median_s'] * 1e3:8.3f} ms  torch "
              f"{res['torch']['median_s'] * 1e3:8.3f} ms  gf/torch {rows[-1]['ratio_gf_torch']:.3f}", flush=True)
    return rows


def _memory_rows(cases, torch_device: str = "cuda", tiny: bool = False) -> list[dict]:
    """Peak device memory of one train step. JAX: XLA's memory analysis of the compiled step
    (arguments + outputs + temporaries - donated aliases), a per-step figure that earlier sections
    cannot inflate (JAX's allocator peak is process-wide and cannot be reset); torch: the allocator
    peak over one step after a reset (params, grads and Adam state included)."""
    from benchmarks.bench_train_step import CASES as ALL, TINY_BATCH
    from benchmarks.models import MODELS, TINY, gf_buffers, gf_params, torch_loss
    from graphforge.runtimes.jax import x64

    cuda = torch_device == "cuda"
    rows = []
    for case in cases:
        model, batch = ALL[case]
        spec = MODELS[model].scaled(**TINY[model]) if tiny else MODELS[model]
        x, y = spec.inputs(TINY_BATCH if tiny else batch)
        t = _gf_trainer(spec)
        with x64():
            ma = t.compiled_step(x, y).memory_analysis()
        jax_peak = (ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes
                    - ma.alias_size_in_bytes) if ma is not None else None
        torch_peak = None
        if cuda:
            import torch  # only here: the CPU-only tier of this script runs without torch

            tm = spec.torch_model()
            tm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                                {**gf_params(spec), **gf_buffers(spec)}.items()}, strict=False)
            tm = tm.cuda().train()
            opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda() if y is not None else None
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            loss = torch_loss(spec)(tm(xt), yt)
            loss.backward()
            opt.step()
            torch.cuda.synchronize()
            torch_peak = int(torch.cuda.max_memory_allocated())
        rows.append({"case": case, "jax_peak_bytes": jax_peak, "torch_peak_bytes": torch_peak})
        print(f"  {case:12s} jax step peak {jax_peak} B  torch step peak {torch_peak} B", flush=True)
    return rows


def _onnx_rows(rounds) -> list[dict]:
    import tempfile

    import onnxruntime as ort
    import torch

    import graphforge as gf
    from benchmarks.models import MODELS

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(f"onnxruntime has no CUDAExecutionProvider (providers: {ort.get_available_providers()}); "
                           "install onnxruntime-gpu on the GPU machine")
    rows = []
    for name, batch in (("mlp", 128), ("lenet", 128), ("resnet8", 128)):
        spec = MODELS[name]
        g = gf.trace(spec.gf_model(), spec.spec(), seed=0)
        x, _ = spec.inputs(batch)
        with tempfile.TemporaryDirectory() as tmp:
            gpath, tpath = os.path.join(tmp, "gf.onnx"), os.path.join(tmp, "torch.onnx")
            gf.save_onnx(gf.optimize(g), gpath)
            tm = spec.torch_model()
            tm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in g.params.items()
                                if k in tm.state_dict()}, strict=False)
            tm.eval()
            torch.onnx.export(tm, (torch.from_numpy(x),), tpath, input_names=["x"], dynamo=True)
            sessions = {k: ort.InferenceSession(p, providers=["CUDAExecutionProvider"]) for k, p in
                        (("graphforge", gpath), ("torch.onnx", tpath))}
        feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
        outs = {k: s.run(None, feeds[k])[0] for k, s in sessions.items()}
        err = float(np.abs(outs["graphforge"] - outs["torch.onnx"]).max())
        res = interleaved_medians({k: (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()},
                                  rounds=rounds, warmup=3, min_chunk_s=0.05)
        rows.append({"model": name, "batch": batch, "max_abs_diff": err, "results": res,
                     "ratio_gf_torch": res["graphforge"]["median_s"] / res["torch.onnx"]["median_s"],
                     "providers": sessions["graphforge"].get_providers()})
        print(f"  {name:10s} gf {res['graphforge']['median_s'] * 1e3:.3f} ms  torch.onnx "
              f"{res['torch.onnx']['median_s'] * 1e3:.3f} ms  max|diff| {err:.2e}", flush=True)
    return rows


def run_check(cases=CASES, rounds: int = 7) -> dict:
    """All four sections; each section is ``{"ok", "rows" | "error", "seconds"}``."""
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(), "devices": gpu_devices(), "bf16_note": BF16_NOTE}
    _section(out, "train_fp32", lambda: _train_rows(cases, rounds, bf16=False))
    _section(out, "train_bf16", lambda: _train_rows(cases, rounds, bf16=True))
    _section(out, "onnx", lambda: _onnx_rows(rounds))
    _section(out, "memory", lambda: _memory_rows(cases))
    _section(out, "precision_remat", lambda: _precision_rows(rounds))
    return out


def _precision_rows(rounds: int, tiny: bool = False) -> list[dict]:
    """precision="bf16-mixed"/"fp16-mixed" and remat policies on the benchmark Transformer: step time,
    the IR's and XLA's peak (``benchmarks/bench_precision_remat.py`` on this machine's device)."""
    from benchmarks.bench_precision_remat import measure

    rows = measure(rounds=rounds, tiny=tiny)
    for r in rows:
        print(f"  {r['contender']:14s} {r['step_ms']:.3f} ms (x{r['time_ratio']:.2f})  XLA peak "
              f"{r['xla_peak_bytes'] / 2 ** 20:.1f} MiB (x{r['xla_peak_ratio']:.2f})", flush=True)
    return rows


def format_markdown(res: dict) -> str:
    """The tables for docs/benchmarks.md."""
    dev = ", ".join(res["devices"].get("torch") or res["devices"].get("jax") or ["?"])
    lines = [f"### GPU check ({res['date']}, {dev})", ""]
    for key, title in (("train_fp32", "Train step, float32"), ("train_bf16", "Train step, bfloat16")):
        sec = res.get(key, {})
        lines += [f"#### {title}", ""]
        if key == "train_bf16":
            lines += [f"_{BF16_NOTE}._", ""]
        if not sec.get("ok"):
            lines += [f"failed: `{sec.get('error')}`", ""]
            continue
        lines += ["| case | graphforge-JAX ms | PyTorch eager ms | gf/torch |", "|---|---:|---:|---:|"]
        for r in sec["rows"]:
            rs = r["results"]
            lines.append(f"| {r['case']} b{r['batch']} | {rs['graphforge']['median_s'] * 1e3:.3f} | "
                         f"{rs['torch']['median_s'] * 1e3:.3f} | {r['ratio_gf_torch']:.3f} |")
        lines.append("")
    sec = res.get("onnx", {})
    lines += ["#### onnxruntime CUDA provider: graphforge ONNX vs torch.onnx export", ""]
    if sec.get("ok"):
        lines += ["| model | graphforge ms | torch.onnx ms | gf/torch | max abs diff |", "|---|---:|---:|---:|---:|"]
        for r in sec["rows"]:
            rs = r["results"]
            lines.append(f"| {r['model']} b{r['batch']} | {rs['graphforge']['median_s'] * 1e3:.3f} | "
                         f"{rs['torch.onnx']['median_s'] * 1e3:.3f} | {r['ratio_gf_torch']:.3f} | {r['max_abs_diff']:.1e} |")
    else:
        lines.append(f"failed: `{sec.get('error')}`")
    sec = res.get("memory", {})
    lines += ["", "#### Peak device memory, one train step", ""]
    if sec.get("ok"):
        lines += ["| case | JAX peak MiB | torch peak MiB |", "|---|---:|---:|"]
        for r in sec["rows"]:
            mib = [f"{b / 2 ** 20:.1f}" if b is not None else "-" for b in (r["jax_peak_bytes"], r["torch_peak_bytes"])]
            lines.append(f"| {r['case']} | {mib[0]} | {mib[1]} |")
    else:
        lines.append(f"failed: `{sec.get('error')}`")
    sec = res.get("precision_remat", {})
    lines += ["", "#### Mixed precision and remat (Transformer, gf.Trainer)", ""]
    if sec.get("ok"):
        lines += ["| contender | step ms | x f32 | est. peak x f32 | XLA peak MiB | x f32 |", "|---|---:|---:|---:|---:|---:|"]
        for r in sec["rows"]:
            lines.append(f"| {r['contender']} | {r['step_ms']:.3f} | {r['time_ratio']:.2f} | {r['est_peak_ratio']:.2f} | "
                         f"{r['xla_peak_bytes'] / 2 ** 20:.1f} | {r['xla_peak_ratio']:.2f} |")
    else:
        lines.append(f"failed: `{sec.get('error')}`")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu_results"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    devices = gpu_devices()
    if not devices["jax"] or not devices["torch"]:
        print(f"gpu-check: no GPU here (JAX GPUs: {devices['jax'] or 'none'}, torch CUDA: "
              f"{devices['torch'] or 'none'}); nothing measured. Run it on a machine with a CUDA GPU, a "
              "CUDA jaxlib and a CUDA torch.")
        return 0
    res = run_check([c for c in args.cases.split(",") if c], args.rounds)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "gpu_check.json"), res)
    md = format_markdown(res)
    tmp = os.path.join(args.out, ".gpu_check.md.tmp")
    with open(tmp, "w") as f:
        f.write(md)
    os.replace(tmp, os.path.join(args.out, "gpu_check.md"))
    print(md)
    failed = [k for k in ("train_fp32", "train_bf16", "onnx", "memory") if not res[k]["ok"]]
    print(f"gpu-check: wrote {args.out}/gpu_check.json and gpu_check.md"
          + (f"; failed sections: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
