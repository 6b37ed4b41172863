"""Mixed-precision accuracy parity on the CNN example, over paired seeds (issue 17, item 15).

One run per precision cannot resolve a 0.5 pp bound on a 360-image test set (two float32 seeds
differ by about as much), so this trains the CNN example's ``LeNet`` (``examples/cnn.py``: its
optimizer — AdamW 3e-3 with cosine decay, weight decay 1e-4 — batch 64, the examples' shared
``load_digits`` 80/20 split) once per (seed, precision). A seed fixes parameter initialisation,
the shuffling order and the dropout keys (``gf.Trainer(seed=...)``), so float32 and the mixed runs
of one seed differ only by their precision: the per-seed difference is a paired measurement.

Prints a row per seed (test accuracy per precision, the fp16/bf16 final loss scale and skipped-step
fraction) and, per mixed precision, the mean paired difference from float32 with its standard
deviation and standard error. Seeds run one after the other (the box is shared).

    python benchmarks/bench_precision_parity.py [--seeds 5] [--epochs 10] [--optimizer example|adam]
        [--precisions float32,fp16-mixed,bf16-mixed] [--json out.json]
    python benchmarks/bench_precision_parity.py --grad-check [--epochs 10]   # where a gap comes from
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, write_results  # noqa: E402

__all__ = ["train_once", "paired_summary", "gradient_check", "measure", "main"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    """The CNN example's module and the examples' data split (imported from examples/)."""
    examples = os.path.join(_ROOT, "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    import cnn  # noqa: PLC0415  (examples/ is not a package)
    from _data import digits  # noqa: PLC0415

    x_train, x_test, y_train, y_test = digits()
    return cnn, (x_train[:, None], x_test[:, None], y_train, y_test)


def train_once(precision: str, seed: int, epochs: int, data=None, batch_size: int = 64,
               optimizer: str = "example") -> dict:
    """Train the CNN example's LeNet in ``precision`` with ``seed``; test accuracy and loss-scale facts.

    ``optimizer``: ``"example"`` (the example's AdamW 3e-3, cosine decay, weight decay 1e-4) or
    ``"adam"`` (constant Adam 3e-3, the setting of the first, single-seed audit)."""
    import optax

    import graphforge as gf
    from graphforge import nn

    cnn, (x_train, x_test, y_train, y_test) = _example() if data is None else (_example()[0], data)
    steps = epochs * -(-len(x_train) // batch_size)
    opt = (optax.adamw(optax.cosine_decay_schedule(3e-3, steps), weight_decay=1e-4) if optimizer == "example"
           else optax.adam(3e-3))
    t0 = time.perf_counter()
    trainer = gf.Trainer(cnn.LeNet(), nn.functional.cross_entropy, opt,
                         inputs=[cnn.inputs], targets=gf.TensorSpec(("batch",), "int64"),
                         metrics={"accuracy": nn.functional.accuracy}, seed=seed, progress=False,
                         precision="default" if precision == "float32" else precision)
    hist = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=False)
    test = trainer.evaluate(x_test, y_test)
    row = {"precision": precision, "seed": seed, "accuracy": float(test["accuracy"]),
           "loss": float(test["loss"]), "seconds": time.perf_counter() - t0}
    if trainer.mixed_precision is not None and trainer.mixed_precision.scaled:
        row["final_loss_scale"] = float(trainer.opt_state.scale)
        skipped = [float(v) for v in hist.get("skipped_steps", [])]  # per epoch: fraction skipped
        row["skipped_fraction"] = statistics.mean(skipped) if skipped else 0.0
    return row


def gradient_check(epochs: int = 10, scales=(2.0 ** 8, 2.0 ** 15, 2.0 ** 22), data=None) -> list[dict]:
    """Where fp16's difference comes from: train LeNet (no dropout) in float32 with Adam 3e-3 for
    ``epochs``, then take one SGD(1.0) step from those params on one batch of 64 in float32, in
    fp16-mixed at each loss scale and in bf16-mixed; per tensor, the relative norm of the step's
    difference from float32's and the fraction of float32-non-zero entries that became zero (underflow).
    Errors that do not change with the scale mean the loss scale is not the cause. A scale whose
    scaled gradients overflow float16 gives a skipped step (reported as such, as the trainer would)."""
    import numpy as np
    import optax

    import graphforge as gf
    from graphforge import nn
    from graphforge.train.precision import MixedPrecision

    cnn, (x_train, _, y_train, _) = _example() if data is None else (_example()[0], data)

    def make(precision, opt):
        return gf.Trainer(cnn.LeNet(dropout=0.0), nn.functional.cross_entropy, opt, inputs=[cnn.inputs],
                          targets=gf.TensorSpec(("batch",), "int64"), seed=0, progress=False, precision=precision)

    base = make("default", optax.adam(3e-3))
    base.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=False)
    p0 = base.params

    def step(precision):
        t = make(precision, optax.sgd(1.0))
        t.load_state_dict(p0)
        out = t.train_step(x_train[:64], y_train[:64])
        if float(out.get("skipped_steps", 0.0)):  # the scaled gradients overflowed: the step was skipped
            return None
        # trainable tensors only; a conv bias before a batch norm has a ~0 true gradient (BN cancels it)
        return {k: p0[k] - v for k, v in t.params.items() if p0[k].dtype.kind == "f" and "running" not in k
                and not (k.startswith("conv") and k.endswith(".bias"))}

    ref = step("default")
    rows = []
    for name, prec in ([(f"fp16 scale 2^{int(np.log2(s))}", MixedPrecision("float16", init_scale=s)) for s in scales]
                       + [("bf16", "bf16-mixed")]):
        d = step(prec)
        if d is None:
            rows.append({"precision": name, "skipped": True, "rel_err": {}, "flushed_to_zero": {}})
            print(f"{name:16s} step skipped: the scaled gradients overflow float16", flush=True)
            continue
        rel = {k: float(np.linalg.norm(d[k] - ref[k]) / max(np.linalg.norm(ref[k]), 1e-30)) for k in ref}
        zero = {k: float(np.mean((d[k] == 0) & (ref[k] != 0))) for k in ref}
        rows.append({"precision": name, "skipped": False, "rel_err": rel, "flushed_to_zero": zero})
        print(f"{name:16s} relative step error per tensor: min {min(rel.values()):.1e}, max {max(rel.values()):.1e}; "
              f"float32-non-zero entries now zero: max {max(zero.values()):.2%}", flush=True)
    return rows


def paired_summary(rows: list[dict], baseline: str = "float32") -> dict[str, dict]:
    """Per non-baseline precision: paired differences (pp) from the baseline over the seeds both ran."""
    acc = {(r["precision"], r["seed"]): r["accuracy"] for r in rows}
    seeds = sorted({r["seed"] for r in rows if r["precision"] == baseline})
    out = {}
    for p in sorted({r["precision"] for r in rows} - {baseline}):
        diffs = [100 * (acc[(p, s)] - acc[(baseline, s)]) for s in seeds if (p, s) in acc]
        if not diffs:
            continue
        sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        out[p] = {"seeds": len(diffs), "diffs_pp": diffs, "mean_pp": statistics.mean(diffs), "sd_pp": sd,
                  "se_pp": sd / math.sqrt(len(diffs)), "min_pp": min(diffs), "max_pp": max(diffs)}
    return out


def measure(seeds: int, epochs: int, precisions: list[str], first_seed: int = 0,
            optimizer: str = "example") -> list[dict]:
    _, data = _example()
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        for p in precisions:
            row = train_once(p, seed, epochs, data, optimizer=optimizer)
            rows.append(row)
            extra = (f"  scale {row['final_loss_scale']:g}, skipped {100 * row['skipped_fraction']:.2f} %"
                     if "final_loss_scale" in row else "")
            print(f"seed {seed:3d} {p:11s} accuracy {100 * row['accuracy']:6.2f} %  loss {row['loss']:.4f}"
                  f"  ({row['seconds']:.1f} s){extra}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--seeds", type=int, default=5, help="number of paired seeds (0, 1, …)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--precisions", default="float32,fp16-mixed",
                   help="comma-separated; the first is the baseline of the paired differences")
    p.add_argument("--optimizer", choices=("example", "adam"), default="example",
                   help="example: the CNN example's AdamW + cosine decay; adam: constant Adam 3e-3")
    p.add_argument("--grad-check", action="store_true",
                   help="instead: fp16/bf16 gradient error vs float32 at trained params, per loss scale")
    args = p.parse_args(argv)
    if args.grad_check:
        write_results(args.json, "precision_grad_check", gradient_check(1 if args.tiny else args.epochs))
        return 0
    precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    seeds, epochs = (1, 1) if args.tiny else (args.seeds, args.epochs)
    rows = measure(seeds, epochs, precisions, args.first_seed, args.optimizer)
    for name, s in paired_summary(rows, precisions[0]).items():
        print(f"{name} − {precisions[0]} over {s['seeds']} seeds: mean {s['mean_pp']:+.2f} pp, "
              f"sd {s['sd_pp']:.2f}, s.e. {s['se_pp']:.2f}, range [{s['min_pp']:+.2f}, {s['max_pp']:+.2f}] pp")
    write_results(args.json, "precision_parity", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
