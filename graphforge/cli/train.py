"""``graphforge train FILE.py``: train the model a Python file declares, with ``gf.Trainer``.

Train-file convention (plain module-level names; the file is executed as a script module):

* ``model``       an ``nn.Module`` (or ``make_model()`` returning one)
* ``inputs``      a ``gf.TensorSpec`` or a list of them (the model's inputs)
* ``targets``     a ``gf.TensorSpec`` or a list of them (what ``loss`` compares against)
* ``loss``        ``loss(predictions..., targets...) -> scalar Tensor`` (e.g. ``nn.functional.cross_entropy``)
* ``optimizer``   an optax ``GradientTransformation`` (or a zero-argument callable returning one)
* ``data()``      returns ``(x, y)`` or ``(x, y, x_val, y_val)`` (NumPy arrays, or lists of arrays)
* optional: ``metrics`` (name → fn like ``nn.functional.accuracy``), ``batch_size`` (32), ``epochs`` (1),
  ``seed`` (0)

``--epochs`` overrides ``epochs``; ``--checkpoint-dir D`` writes a checkpoint after every epoch;
``--resume`` continues from the newest checkpoint in D (bitwise the same losses as an uninterrupted run).
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys

__all__ = ["add_parser", "run", "load_train_file"]

_REQUIRED = ("inputs", "targets", "loss", "optimizer", "data")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train the model a Python file declares (see the train-file convention)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a Python file following the train-file convention")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (overrides the file's `epochs`)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--checkpoint-dir", default=None, help="write a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    p.add_argument("--plot", default=None, help="write the history plot (PNG) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(command="train")
    return p


def load_train_file(path: str) -> dict:
    """The file's module namespace, checked against the convention (GraphforgeError if it breaks it)."""
    from graphforge.errors import LoadError

    if not os.path.isfile(path):
        raise LoadError(f"train file {path!r} does not exist")
    try:
        ns = runpy.run_path(path, run_name="__graphforge_train__")
    except Exception as exc:  # noqa: BLE001 - the user's file failed; say where
        raise LoadError(f"running {path!r} failed: {type(exc).__name__}: {exc}") from exc
    if "model" not in ns and "make_model" not in ns:
        raise LoadError(f"{path!r} defines no `model` (an nn.Module) or `make_model()`",
                        hint="see `graphforge train --help` for the train-file convention")
    missing = [n for n in _REQUIRED if n not in ns]
    if missing:
        raise LoadError(f"{path!r} lacks {', '.join(missing)} required by the train-file convention",
                        hint="see `graphforge train --help`")
    return ns


def run(args) -> int:
    import graphforge as gf

    try:
        ns = load_train_file(args.file)
        model = ns["model"] if "model" in ns else ns["make_model"]()
        opt = ns["optimizer"]
        if callable(opt) and not hasattr(opt, "update"):
            opt = opt()
        trainer = gf.Trainer(model, loss_fn=ns["loss"], optimizer=opt, inputs=ns["inputs"], targets=ns["targets"],
                             metrics=ns.get("metrics"), seed=ns.get("seed", 0), progress=not args.quiet)
        data = ns["data"]()
        x, y = data[0], data[1]
        val = (data[2], data[3]) if len(data) >= 4 else None
        epochs = args.epochs or ns.get("epochs", 1)
        batch_size = args.batch_size or ns.get("batch_size", 32)
        if args.resume and not args.checkpoint_dir:
            raise gf.InputError("--resume needs --checkpoint-dir")
        if args.resume:
            from graphforge.train.checkpoint import latest_checkpoint
            if latest_checkpoint(args.checkpoint_dir):
                trainer.load_checkpoint(args.checkpoint_dir)
                print(f"resumed from step {trainer.step} (epoch {trainer.epoch})")
        history = trainer.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=val,
                              checkpoint_dir=args.checkpoint_dir, verbose=True if not args.quiet else False)
        if args.quiet:
            for e in range(len(next(iter(history.values()), []))):
                print(f"epoch {e + 1}/{epochs}: " + ", ".join(f"{k}={v[e]:.4f}" for k, v in history.items()))
        if args.plot:
            gf.plot_history(history, args.plot)
            print(f"wrote {args.plot}")
    except gf.GraphforgeError as exc:
        print(f"graphforge train: {exc}", file=sys.stderr)
        return 2
    return 0
