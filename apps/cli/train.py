"""``graphforge train FILE.py``: train the model a Python file declares, with ``gf.Trainer``.

Train-file convention (plain module-level names; the file is executed as a script module):

* ``model``       an ``nn.Module`` (or ``make_model()`` returning one)
* ``inputs``      a ``gf.TensorSpec`` or a list of them (the model's inputs)
* ``targets``     a ``gf.TensorSpec`` or a list of them (what ``loss`` compares against)
* ``loss``        ``loss(predictions..., targets...) -> scalar Tensor`` (e.g. ``nn.functional.cross_entropy``)
* ``optimizer``   an optax ``GradientTransformation`` (or a zero-argument callable returning one)
* ``data()``      returns ``(x, y)`` or ``(x, y, x_val, y_val)`` (NumPy arrays, or lists of arrays)
* optional: ``metrics`` (name → fn like ``nn.functional.accuracy``), ``batch_size`` (32), ``epochs`` (1),
  ``seed`` (0), ``mesh`` (``{"data": 4, "model": 2}``; default: data-parallel over all visible devices),
  ``param_sharding`` (glob → PartitionSpec entries, e.g. ``{"*.ffn.fc1.weight": ("model", None)}``),
  ``precision`` (``"bf16-mixed"``, ``"fp16-mixed"``…), ``remat`` (``"nothing"``/``"dots"`` or scope → policy),
  ``sharding`` (``"fsdp"``); ``--precision``, ``--remat``, ``--sharding`` override them

``--export OUT.onnx`` writes the trained model (eval mode, default pass pipeline) as ONNX after
training, ready for onnxruntime or ``graphforge serve``; ``--epochs`` overrides ``epochs``; ``--checkpoint-dir D`` writes a checkpoint after every epoch;
``--resume`` continues from the newest checkpoint in D (bitwise the same losses as an uninterrupted run).

Several processes (hosts) train together when each is started with ``--num-processes N --process-id I
--coordinator HOST:PORT`` (the same coordinator everywhere; process 0 hosts it): ``jax.distributed``
is initialised before the file runs, the batch is split over every process's devices (each process
reads only its rows), checkpoints are written by process 0 and read by all; only process 0 prints.
``--mesh data=4,model=2`` overrides the file's ``mesh``. See docs/distributed.md.
"""
from __future__ import annotations

import argparse
import sys

from . import exitcodes

__all__ = ["add_parser", "run", "load_train_file"]

_REQUIRED = ("inputs", "targets", "loss", "optimizer", "data")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train the model a Python file declares (see the train-file convention)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a Python file following the train-file convention")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (overrides the file's `epochs`)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per step (overrides the file's `batch_size`)")
    p.add_argument("--checkpoint-dir", default=None, help="write a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    p.add_argument("--plot", default=None, help="write the history plot (PNG) here")
    p.add_argument("--export", default=None, metavar="OUT.onnx",
                   help="write the trained model as ONNX here (eval mode, default passes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--precision", default=None, metavar="P",
                   help="bf16-mixed or fp16-mixed (mixed precision), or default/high/highest (overrides the file's `precision`)")
    p.add_argument("--remat", default=None, choices=("nothing", "dots"),
                   help="rematerialise every top-level module's activations with this policy (overrides `remat`)")
    p.add_argument("--sharding", default=None, choices=("fsdp",),
                   help="fsdp: shard params and optimizer state over the data axis (overrides `sharding`)")
    p.add_argument("--mesh", default=None, metavar="AXIS=N,...",
                   help="device mesh, e.g. data=4,model=2 (default: the file's `mesh`, else data-parallel over "
                        "all visible devices)")
    p.add_argument("--num-processes", type=int, default=None, help="processes training together (multi-host)")
    p.add_argument("--process-id", type=int, default=None, help="this process's index in [0, --num-processes)")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="address of the coordinator (served by process 0), the same on every process")
    p.add_argument("--coordinator-timeout", type=int, default=300, metavar="S",
                   help="seconds to wait for all processes to join (default 300)")
    p.set_defaults(command="train")
    return p


def load_train_file(path: str) -> dict:
    """The file's module namespace, checked against the convention (GraphforgeError if it breaks it)."""
    from graphforge.cli.modelfile import run_model_file
    from graphforge.errors import LoadError

    ns = run_model_file(path, run_name="__graphforge_train__")  # LoadError naming the user's line
    if "model" not in ns and "make_model" not in ns:
        raise LoadError(f"{path!r} defines no `model` (an nn.Module) or `make_model()`",
                        hint="see `graphforge train --help` for the train-file convention")
    missing = [n for n in _REQUIRED if n not in ns]
    if missing:
        raise LoadError(f"{path!r} lacks {', '.join(missing)} required by the train-file convention",
                        hint="see `graphforge train --help`")
    return ns


def parse_mesh(text: str) -> dict[str, int]:
    """``"data=4,model=2"`` -> ``{"data": 4, "model": 2}`` (InputError when malformed)."""
    from graphforge.errors import InputError

    out: dict[str, int] = {}
    for part in (text or "").split(","):
        name, eq, size = part.strip().partition("=")
        try:
            n = int(size)
        except ValueError:
            n = 0
        if not eq or not name.strip() or (n < 1 and n != -1) or name.strip() in out:
            raise InputError(f"--mesh {text!r}: expected AXIS=SIZE pairs like data=4,model=2")
        out[name.strip()] = n
    return out


def _start_processes(args) -> bool:
    """Join the multi-process run the flags describe (before anything touches JAX devices).
    Returns whether this process prints (process 0, or the only one)."""
    from graphforge.errors import InputError

    flags = (args.num_processes, args.process_id, args.coordinator)
    if all(f is None for f in flags):
        return True
    if any(f is None for f in flags):
        raise InputError("--num-processes, --process-id and --coordinator go together",
                         hint="e.g. --num-processes 2 --process-id 0 --coordinator 127.0.0.1:12345")
    from graphforge.train.distributed import initialize
    initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.coordinator_timeout,
               checkpoint_dir=args.checkpoint_dir)
    return args.process_id == 0


def _call_user(what: str, fn, path: str, *, only_if_in_file: bool = False):
    """Call code the train file supplied; its exceptions become a LoadError naming the file's line.
    With ``only_if_in_file`` only failures raised inside the file are converted (graphforge's own
    bugs keep their traceback)."""
    from graphforge.cli.modelfile import _describe_failure, user_frame
    from graphforge.errors import GraphforgeError, LoadError

    try:
        return fn()
    except GraphforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code failed; say where
        if only_if_in_file and not user_frame(exc, path):
            raise
        raise LoadError(_describe_failure(f"{what} in {path!r}", exc, path)) from None


def run(args) -> int:
    import graphforge as gf

    try:
        lead = _start_processes(args)
        if not lead:
            args.quiet = True
            args.plot = None
        if getattr(args, "export", None) and lead:
            from graphforge.cli.compile import check_output_path
            check_output_path(args.export)  # a bad path fails now, not after the training
        ns = load_train_file(args.file)
        model = ns["model"] if "model" in ns else _call_user("make_model()", ns["make_model"], args.file)
        opt = ns["optimizer"]
        if callable(opt) and not hasattr(opt, "update"):
            opt = _call_user("optimizer()", opt, args.file)
        mesh = parse_mesh(args.mesh) if args.mesh else ns.get("mesh")
        trainer = _call_user("tracing the model and loss", lambda: gf.Trainer(
            model, loss_fn=ns["loss"], optimizer=opt, inputs=ns["inputs"], targets=ns["targets"],
            metrics=ns.get("metrics"), seed=ns.get("seed", 0), progress=not args.quiet,
            mesh=mesh, param_sharding=ns.get("param_sharding"),
            precision=args.precision or ns.get("precision", "default"), remat=args.remat or ns.get("remat"),
            sharding=args.sharding or ns.get("sharding")), args.file, only_if_in_file=True)
        data = _call_user("data()", ns["data"], args.file)
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
                if lead:
                    print(f"resumed from step {trainer.step} (epoch {trainer.epoch})")
        # --epochs is the total: a resumed run trains only the epochs its checkpoint has not done yet
        history = trainer.fit(x, y, epochs=max(0, epochs - trainer.epoch), batch_size=batch_size, validation_data=val,
                              checkpoint_dir=args.checkpoint_dir, verbose=True if not args.quiet else False)
        if args.quiet and lead:
            for e in range(len(next(iter(history.values()), []))):
                print(f"epoch {e + 1}/{epochs}: " + ", ".join(f"{k}={v[e]:.4f}" for k, v in history.items()))
        if args.plot:
            gf.plot_history(history, args.plot)
            print(f"wrote {args.plot}")
        if getattr(args, "export", None) and lead:
            gf.save_onnx(gf.optimize(trainer.export_graph()), args.export)  # temp file + rename inside
            print(f"wrote {args.export}")
    except gf.GraphforgeError as exc:
        return exitcodes.report("train", exc)  # a lost peer is PEER_FAILURE (3), other typed errors USAGE (2)
    return exitcodes.OK
