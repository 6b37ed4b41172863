"""``graphforge optimize IN.onnx -o OUT.onnx [--passes PIPELINE]``: import an ONNX model, run a pass
pipeline, export it again, print node counts before/after and check that onnxruntime gives the same
outputs for the input file and the output file on random inputs."""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "run", "random_feeds", "compare_onnx_files"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("optimize", help="import an ONNX model, optimise it, export it again",
                              description=__doc__)
    p.add_argument("input", help="input .onnx file")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--passes", default="default", help='pass pipeline (default: "default"), e.g. "fold,cse,dce,fuse"')
    p.add_argument("--opset", type=int, default=None, help="opset of the exported model")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dim for the check inputs (default 2)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime output comparison")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of the output check (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of the output check (default 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check inputs (default 0)")
    p.set_defaults(func=run)
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def random_feeds(path: str, dims: dict[str, int] | None = None, seed: int = 0) -> dict:
    """Random inputs for the model at ``path`` from onnxruntime's view of its inputs."""
    import numpy as np
    import onnxruntime as ort

    dims = dims or {}
    rng = np.random.default_rng(seed)
    from graphforge.errors import InputError

    try:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own (untyped) exception classes
        raise InputError(f"onnxruntime cannot load {path!r}: {_first_line(exc)}",
                         hint="pass --no-check to skip the output comparison") from None
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else dims.get(str(d), 2) for d in inp.shape]
        t = inp.type
        if "float" in t:
            dt = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(t, np.float32)
            feeds[inp.name] = rng.normal(size=shape).astype(dt)
        elif "bool" in t:
            feeds[inp.name] = rng.random(shape) < 0.5
        else:
            dt = {"tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(t, np.int64)
            feeds[inp.name] = rng.integers(0, 4, size=shape).astype(dt)
    return feeds


def compare_onnx_files(a: str, b: str, feeds: dict, rtol: float, atol: float) -> float:
    """Run both files in onnxruntime (inputs matched by position) and return the largest abs error;
    raises ``AssertionError`` when they differ beyond tolerance."""
    import numpy as np
    import onnxruntime as ort

    from graphforge.errors import InputError

    arrays = list(feeds.values())
    try:  # the input model is the user's: onnxruntime failing on it is an input problem, not a mismatch
        sa = ort.InferenceSession(a, providers=["CPUExecutionProvider"])
        outs_a = sa.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own (untyped) exception classes
        raise InputError(f"onnxruntime cannot run {a!r} on random inputs for the output check: {_first_line(exc)}",
                         hint="pass --no-check to skip the comparison") from None
    try:
        sb = ort.InferenceSession(b, providers=["CPUExecutionProvider"])
        outs_b = sb.run(None, {i.name: x for i, x in zip(sb.get_inputs(), arrays)})
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"onnxruntime cannot run the optimised {b!r}: {_first_line(exc)}") from None
    if len(outs_a) != len(outs_b):
        raise AssertionError(f"output count differs: {len(outs_a)} vs {len(outs_b)}")
    worst = 0.0
    for i, (x, y) in enumerate(zip(outs_a, outs_b)):
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol, err_msg=f"output {i}")
        if x.size and np.issubdtype(x.dtype, np.number):
            worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
    return worst


def run(args) -> int:
    import onnx

    import graphforge as gf
    from graphforge.errors import GraphforgeError

    from . import exitcodes

    dims = {}
    for item in args.dim:
        name, _, size = item.partition("=")
        try:
            dims[name] = int(size)
        except ValueError:
            print(f"graphforge optimize: --dim {item!r}: expected NAME=SIZE with an integer SIZE", file=sys.stderr)
            return exitcodes.USAGE
    try:
        graph = gf.from_onnx(args.input)  # validates the (untrusted) file first
        before = len(onnx.load(args.input, load_external_data=False).graph.node)
        imported = len(graph.nodes)
        optimized = gf.optimize(graph, args.passes)
        out_dir = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(out_dir, exist_ok=True)
        gf.save_onnx(optimized, args.output, opset=args.opset)
        after = len(onnx.load(args.output, load_external_data=False).graph.node)
        print(f"{args.input}: {before} ONNX nodes -> graphforge {imported} nodes -> optimized "
              f"{len(optimized.nodes)} nodes -> {args.output}: {after} ONNX nodes")
        if not args.no_check:
            feeds = random_feeds(args.input, dims, args.seed)
            err = compare_onnx_files(args.input, args.output, feeds, args.rtol, args.atol)
            print(f"check: onnxruntime outputs match on random inputs (max abs error {err:.3g})")
    except AssertionError as exc:
        print(f"graphforge optimize: outputs differ after optimisation:\n{exc}", file=sys.stderr)
        return exitcodes.CHECK_FAILED
    except (GraphforgeError, OSError) as exc:
        return exitcodes.report("optimize", exc)
    return exitcodes.OK
