"""``graphforge compile FILE.py[:ATTR] -o OUT.onnx``: trace a model file, optimise it, export ONNX.

The file declares the model and its inputs by the model-file convention (docs/cli.md,
:mod:`graphforge.cli.modelfile`). The model is traced in eval mode, optimised with ``--passes``
(default "default") and written with ``gf.save_onnx``. ``--verify`` runs the written file in
onnxruntime and the graph on the reference back end on random inputs (and the file's
``sample_inputs``); on a mismatch it names the first diverging node, its scope and source line.

``--dtype float16|bfloat16`` exports a half-precision model (``half_precision`` pass: half weights
and compute, float32 reductions/softmax/norms; inputs and outputs keep their types).

``--weights W`` exports trained weights instead of the model's initial ones: ``W`` is a
``.safetensors``/``.npz`` file (e.g. ``gf.save_params``, a PyTorch state dict) or a checkpoint
directory of ``graphforge train --checkpoint-dir`` / ``Trainer.save_checkpoint`` (its newest
checkpoint). Every parameter and buffer must be there with its shape (a typed error lists what
is missing, unexpected or mismatched), so a file of another model is never half applied.

The output appears only when everything succeeded: the model is exported into a temporary folder
beside OUT, checked there, then renamed into place, so a failure never leaves a partial file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

__all__ = ["add_parser", "run", "install_weights", "calibration_batches", "random_inputs", "verify_onnx_file", "VerifyMismatch", "parse_batch", "report_errors",
           "check_output_path"]

# Symbol sizes the random --verify inputs use: 1 catches broadcasting that only works for size 1
# the wrong way round, 3 (odd, not a power of two) catches reshapes that mix up the batch axis.
VERIFY_SIZES = (3, 1)


def parse_batch(text: str):
    """``--batch`` value: a positive int, or ``"dynamic"`` (None: keep the symbolic dim)."""
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the batch size must be at least 1, got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compile", help="trace a model file, optimise it and export ONNX",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="FILE.py[:ATTR]", help="a model file (see docs/cli.md); :ATTR names the "
                   "model attribute (default `model`, then `make_model`)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's default)")
    p.add_argument("--passes", default="default", metavar="PIPELINE",
                   help='pass pipeline (default "default"; "none" exports the traced graph), e.g. "infer,fold,cse,dce"')
    p.add_argument("--print-after", default=None, metavar="PASS",
                   help="print the IR after this pass (comma-separated for several)")
    p.add_argument("--report", action="store_true", help="print the per-pass table (time, node counts)")
    p.add_argument("--batch", type=parse_batch, default=None, metavar="N|dynamic",
                   help="fix the symbolic batch dim to N (default: dynamic, kept as an ONNX dim_param)")
    p.add_argument("--verify", action="store_true",
                   help="check the ONNX file in onnxruntime against the reference back end")
    p.add_argument("--rtol", type=float, default=1e-4, help="--verify relative tolerance (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-5, help="--verify absolute tolerance (default 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random --verify inputs")
    p.add_argument("--weights", default=None, metavar="FILE|CKPT_DIR",
                   help="export these trained weights (.safetensors/.npz file, or a checkpoint directory) "
                        "instead of the model's initial ones")
    p.add_argument("--quantize", choices=("int8", "int8-dynamic", "int4"), default=None,
                   help="post-training quantization to QDQ ONNX: int8 (static; needs --calibration), int8-dynamic, "
                        "int4 (weight-only, blocked); see docs/serving.md")
    p.add_argument("--calibration", default=None, metavar="DATA.npz",
                   help="--quantize int8: calibration inputs (.npz: one array per model input, by name; a single "
                        "array for a one-input model), batch on axis 0")
    p.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="how activation ranges are chosen (default minmax)")
    p.add_argument("--percentile", type=float, default=99.99, help="--calibration-method percentile (default 99.99)")
    p.add_argument("--weight-scales", choices=("channel", "tensor"), default="channel",
                   help="--quantize int8 / int8-dynamic: one weight scale per output channel (default) or per "
                        "tensor (onnxruntime's quantizer's default; same kernels as its files)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--contrib-ops", action="store_true",
                        help="for onnxruntime only: emit its com.microsoft fused kernels (Attention with the "
                             "q/k/v projections packed, MultiHeadAttention, BiasGelu/FastGelu) where they apply")
    target.add_argument("--portable", action="store_true",
                        help="standard ONNX only, runnable by any ONNX runtime (the default)")
    p.add_argument("--provenance", choices=tuple(_PROVENANCE), default=None,
                   help="where each node's module scope and source line go: names (node names and doc "
                        "strings), metadata (one compact table in metadata_props, short value names), none; "
                        "default: metadata for --quantize, else names (docs/serving.md §10)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="compute and weight precision of the exported model: float16/bfloat16 store the "
                        "weights in that type and compute in it, except reductions, softmax and norms "
                        "(float32, per the op precision policy); inputs and outputs keep their types")
    p.set_defaults(command="compile")
    return p


_QUANT_MODES = {"int8": "int8-static", "int8-dynamic": "int8-dynamic", "int4": "int4-weight"}
_CALIBRATION_CHUNK = 256


def calibration_batches(graph, path: str, batch: int | None = None) -> list:
    """The batches of ``--calibration DATA.npz`` for ``graph``'s inputs (chunks along axis 0; of
    exactly ``batch`` rows when the batch size is fixed)."""
    import numpy as np

    from graphforge.errors import InputError, LoadError

    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files} if hasattr(data, "files") else {"arr_0": data}
    except (OSError, ValueError) as exc:
        raise LoadError(f"--calibration {path!r}: cannot read it as .npz/.npy: {exc}") from None
    names = [v.name for v in graph.inputs if v.name != "rng"]
    if len(names) == 1 and names[0] not in arrays:
        if len(arrays) != 1:
            raise InputError(f"--calibration {path!r}: holds {sorted(arrays)}, the model's input is {names[0]!r}",
                             hint=f"save it with np.savez(path, {names[0]}=array)")
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"--calibration {path!r}: no array for input(s) {', '.join(missing)} (has {sorted(arrays)})")
    n = min(len(arrays[k]) for k in names)
    step = batch or _CALIBRATION_CHUNK
    chunks = [{k: arrays[k][i:i + step] for k in names} for i in range(0, n - (n % step if batch else 0), step)]
    if not chunks:
        raise InputError(f"--calibration {path!r}: {n} sample(s), fewer than one batch of {step}")
    return chunks


# --provenance: the export's provenance= (None: its default, "metadata" for quantized graphs)
_PROVENANCE = {"names": True, "metadata": "metadata", "none": False}


def _quantize(graph, args, out):
    """``graph`` quantized as ``--quantize`` asks (the CLI's step between optimise and export)."""
    import graphforge as gf
    from graphforge.errors import InputError

    mode = _QUANT_MODES[args.quantize]
    calibration = None
    if mode == "int8-static":
        if not args.calibration:
            raise InputError("--quantize int8 needs --calibration DATA.npz (representative inputs)",
                             hint="or use --quantize int8-dynamic, which needs no calibration data")
        calibration = calibration_batches(graph, args.calibration, args.batch)
    elif args.calibration:
        raise InputError(f"--calibration is only used by --quantize int8, not {args.quantize}")
    per_channel = getattr(args, "weight_scales", "channel") == "channel"
    if not per_channel and mode == "int4-weight":
        raise InputError("--weight-scales applies to --quantize int8 and int8-dynamic; int4 scales are per block")
    q = gf.quantize(graph, calibration, mode=mode, method=args.calibration_method, percentile=args.percentile,
                    per_channel=per_channel)
    rows = sum(len(next(iter(b.values()))) for b in calibration) if calibration else 0
    print(f"quantized   {mode}" + (f", {args.calibration_method} ranges from {rows} calibration rows"
                                   if calibration else "") + ("" if per_channel else ", per-tensor weight scales"),
          file=out)
    return q


# ---- checks done before any work ------------------------------------------------------------------

def check_output_path(path: str) -> str:
    """The folder ``path`` will be written in; InputError when it cannot be written there."""
    from graphforge.errors import InputError

    if not path:
        raise InputError("the output path is empty")
    if os.path.isdir(path):
        raise InputError(f"output path {path!r} is a directory; give a file name like {os.path.join(path, 'model.onnx')!r}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        raise InputError(f"cannot write {path!r}: the folder {os.path.dirname(path) or parent!r} does not exist")
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path!r}: {os.path.dirname(path) or parent!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path!r}: no permission to write in {os.path.dirname(path) or parent!r}")
    return parent


def _check_opset(opset: int | None) -> None:
    from graphforge.errors import GraphforgeError, InputError

    if opset is None:
        return
    from graphforge.runtimes.onnx import check_opset

    try:
        check_opset(opset)  # the range the exporter and the installed onnxruntime both support
    except GraphforgeError as exc:
        raise InputError(f"invalid opset {opset}: {exc.detail}",
                         hint="leave --opset out to use the newest supported opset") from None


def _check_passes(pipeline: str, print_after: list[str]):
    from graphforge.errors import InputError
    from graphforge.passes.manager import PassManager

    from graphforge.passes.manager import list_passes

    manager = PassManager(pipeline)  # PassError for bad pass names/syntax
    unknown = [n for n in print_after if n not in list_passes()]
    if unknown:
        PassManager(pipeline, print_after=unknown)  # the PassError naming the unknown passes
    missing = [n for n in print_after if n not in manager.passes]
    if missing:
        raise InputError(f"--print-after {','.join(missing)}: not in the pipeline {manager.pipeline_text!r}",
                         hint=f"the pipeline runs: {', '.join(dict.fromkeys(manager.passes)) or '(no passes)'}")


# ---- random inputs and comparison -----------------------------------------------------------------

def random_inputs(graph, size: int = 3, seed: int = 0, sizes: dict | None = None) -> list:
    """One random array per graph input, every symbolic dim set to ``size`` (or its entry in ``sizes``)."""
    import numpy as np

    from graphforge.dtypes import is_float, to_numpy_dtype
    from graphforge.ir.dims import dim_symbols, resolve_shape

    rng = np.random.default_rng(seed)
    env = {s: (sizes or {}).get(s, size) for v in graph.inputs for d in v.type.shape for s in dim_symbols(d)}
    arrays = []
    for v in graph.inputs:
        shape = resolve_shape(v.type.shape, env)
        dtype = to_numpy_dtype(v.type.dtype)
        if v.name == "rng" and not shape:
            arrays.append(np.uint32(0))
        elif is_float(v.type.dtype):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif v.type.dtype == "bool":
            arrays.append(rng.random(shape) < 0.5)
        else:  # small non-negative integers: valid indices for most embeddings and gathers
            arrays.append(rng.integers(0, 4, size=shape).astype(dtype))
    return arrays


def _sample_feeds(graph, sample, path: str, batch: int | None = None) -> list:
    """The file's ``sample_inputs`` as a list of input lists (one feed), checked against the graph.

    With ``--batch N`` samples of another batch size cannot run on the fixed-size file: skipped."""
    from graphforge.errors import GraphforgeError, LoadError
    from graphforge.runtime import bind_inputs

    if sample is None:
        return []
    try:
        arrays, _env = bind_inputs(graph, sample)
    except GraphforgeError as exc:
        if batch is not None:
            return []
        raise LoadError(f"{path!r}: sample_inputs do not fit the model's inputs: {exc}") from None
    return [arrays]


def _difference(got, want):
    """``(|got - want|, |want|)`` as float64 arrays (None when the shapes differ). NaN against NaN and
    an infinity against the same infinity count as equal; any other NaN as an infinite error."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return None
    if got.dtype.kind in "biu" and want.dtype.kind in "biu":
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).astype(np.float64)
        ref = np.abs(want.astype(np.float64))
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        both_nan = np.isnan(g) & np.isnan(w)
        same_inf = np.isinf(g) & (g == w)
        with np.errstate(invalid="ignore"):  # inf - inf; handled just below
            diff = np.where(both_nan | same_inf, 0.0, np.abs(g - w))
        diff = np.where(np.isnan(diff), np.inf, diff)
        ref = np.where(np.isfinite(w), np.abs(w), 0.0)
    return diff, ref


class VerifyMismatch(Exception):
    """onnxruntime and the reference back end disagree; ``str()`` is the user-facing report."""


def _compare(got, want, rtol: float, atol: float, labels=("onnxruntime", "reference")):
    """None when ``got`` matches ``want`` within tolerance, else (max abs, max rel, detail)."""
    import numpy as np

    pair = _difference(got, want)
    if pair is None:
        return float("inf"), float("inf"), f"shape {np.shape(got)} instead of {np.shape(want)}"
    diff, ref = pair
    if diff.size == 0 or np.all(diff <= atol + rtol * ref):
        return None
    rel = diff / np.maximum(ref, atol if atol > 0 else 1e-30)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    detail = (f"at index {tuple(int(i) for i in worst)}: {labels[0]} {_scalar(np.asarray(got)[worst])}, "
              f"{labels[1]} {_scalar(np.asarray(want)[worst])}")
    return float(diff.max()), float(rel.max()), detail


def _scalar(x) -> str:
    x = x.item() if hasattr(x, "item") else x
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _max_abs(got, want) -> float:
    pair = _difference(got, want)
    if pair is None or pair[0].size == 0:
        return 0.0
    return float(pair[0].max())


def _session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers etc. are noise here
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _ort_run(session, graph, arrays) -> list:
    names = [i.name for i in session.get_inputs()]
    graph_names = [v.name for v in graph.inputs]
    if sorted(names) == sorted(graph_names):
        feed = dict(zip(graph_names, arrays))
    else:  # matched by position when the exporter renamed inputs
        feed = dict(zip(names, arrays))
    return session.run(None, {k: feed[k] for k in names})


def _node_lines(graph) -> list[str]:
    """The text-IR line of each node (for the mismatch report), or [] if they cannot be matched."""
    lines = [ln.strip() for ln in str(graph).splitlines()]
    body = [ln for ln in lines if ln.startswith("%") and " = " in ln]
    return body if len(body) == len(graph.nodes) else []


def _localise(graph, path: str, opset, arrays, rtol: float, atol: float) -> str:
    """Export ``graph`` with every node result as an extra output (weights taken from the file at
    ``path``), run it in onnxruntime and on the reference back end, and describe the first node,
    in topological order, whose result differs."""
    import onnx
    from onnx import numpy_helper

    import graphforge as gf

    probe = graph.copy()
    outputs = list(probe.outputs)
    names = list(probe.output_names)
    position: dict[int, int] = {id(v): i for i, v in enumerate(outputs)}
    for node in probe.nodes:
        for value in node.outputs:
            if id(value) not in position:
                position[id(value)] = len(outputs)
                outputs.append(value)
                names.append(f"gf_probe_{len(outputs)}")
    probe.set_outputs(outputs, names)
    model = gf.to_onnx(probe, opset=opset)
    # The weights of the written file, so that a file whose weights differ from the graph's
    # reproduces its mismatch in the probe model too.
    written = onnx.load(path)
    stored = {t.name: t for t in written.graph.initializer}
    differing = {}
    for init in model.graph.initializer:
        if init.name in stored and list(stored[init.name].dims) == list(init.dims) \
                and stored[init.name].data_type == init.data_type:
            if init.name in graph.params:
                err = _max_abs(numpy_helper.to_array(stored[init.name]), graph.params[init.name])
                if err > 0:
                    differing[init.name] = err
            init.CopyFrom(stored[init.name])
    got = _ort_run(_session(model.SerializeToString()), probe, arrays)
    want = gf.run(probe, arrays, backend="reference")
    lines = _node_lines(probe)
    for index, node in enumerate(probe.nodes):
        for k, value in enumerate(node.outputs):
            i = position[id(value)]
            bad = _compare(got[i], want[i], rtol, atol)
            if bad is None:
                continue
            max_abs, max_rel, detail = bad
            text = [f"  first diverging node: {node.op} (node {index} of {len(probe.nodes)}"
                    + (f", result {k}" if len(node.outputs) > 1 else "") + f", {value.type})"]
            if lines:
                text.append(f"    {lines[index]}")
            text.append(f"    scope: {node.scope or '(top level)'}")
            text.append(f"    source: {node.loc or '(unknown)'}")
            text.append(f"    max abs error {max_abs:.4g}, max rel error {max_rel:.4g} ({detail})")
            weights = [v.name for v in node.inputs if v.name in differing]
            if weights:
                text.append("    its weights differ between the ONNX file and the model: "
                            + ", ".join(f"{w} (max abs {differing[w]:.4g})" for w in weights))
            else:
                text.append("    its inputs agree, so the lowering of this node is the likely culprit")
            return "\n".join(text)
    return "  no single node diverges beyond tolerance (the differences accumulate over several nodes)"


def verify_onnx_file(graph, path: str, feeds: list[tuple[str, list]], *, opset=None, rtol: float = 1e-4,
                     atol: float = 1e-5, traced=None) -> list[str]:
    """Run ``path`` in onnxruntime and ``graph`` on the reference back end on each ``(label, arrays)``
    feed; returns one summary line per feed, raises :class:`VerifyMismatch` on the first mismatch.

    ``traced`` (the graph before optimisation) is also run on the reference back end, so that a pass
    that changed the model's results is reported as such."""
    import graphforge as gf

    session = _session(path)
    lines = []
    for label, arrays in feeds:
        want = gf.run(graph, arrays, backend="reference")
        got = _ort_run(session, graph, arrays)
        if len(got) != len(want):
            raise VerifyMismatch(f"the ONNX file has {len(got)} outputs, the graph {len(want)}")
        for name, g, w in zip(graph.output_names, got, want):
            bad = _compare(g, w, rtol, atol)
            if bad is None:
                continue
            max_abs, max_rel, detail = bad
            report = [f"onnxruntime and the reference back end disagree on {label}",
                      f"  output {name!r}: max abs error {max_abs:.4g}, max rel error {max_rel:.4g} ({detail})"]
            try:
                report.append(_localise(graph, path, opset, arrays, rtol, atol))
            except Exception as exc:  # noqa: BLE001 - the diagnosis is best effort; the mismatch stands
                report.append(f"  (could not localise the divergence: {type(exc).__name__}: {exc})")
            raise VerifyMismatch("\n".join(report))
        worst = max((_max_abs(g, w) for g, w in zip(got, want)), default=0.0)
        line = f"{label}: max abs error {worst:.3g}"
        if traced is not None and traced is not graph:
            before = gf.run(traced, arrays, backend="reference")
            for name, b, w in zip(graph.output_names, before, want):
                bad = _compare(w, b, rtol, atol, labels=("optimised graph", "traced graph"))
                if bad is not None:
                    raise VerifyMismatch(f"the pass pipeline changed the model's results on {label} (reference "
                                         f"back end): output {name!r} max abs error {bad[0]:.4g} ({bad[2]})")
        lines.append(line)
    return lines


# ---- the command ---------------------------------------------------------------------------------

def _feeds(graph, mf, seed: int, batch: int | None = None) -> list[tuple[str, list]]:
    from graphforge.ir.dims import dim_symbols

    symbols = sorted({s for v in graph.inputs for d in v.type.shape for s in dim_symbols(d)})
    sizes = VERIFY_SIZES if symbols else VERIFY_SIZES[:1]
    feeds = []
    for size in sizes:
        label = "random inputs" + (f" ({', '.join(f'{s}={size}' for s in symbols)})" if symbols else "")
        feeds.append((label, random_inputs(graph, size, seed)))
    for arrays in _sample_feeds(graph, mf.sample_inputs, mf.path, batch):
        feeds.append(("sample_inputs", arrays))
    return feeds


def _size(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def _count_params(graph) -> tuple[int, int]:
    """(number of weights, bytes) over the graph's parameters and buffers."""
    from graphforge.dtypes import to_numpy_dtype

    count = nbytes = 0
    for value in graph.param_values.values():
        if value.kind in ("param", "buffer"):
            n = 1
            for d in value.type.shape:
                n *= int(d)
            count += n
            nbytes += n * to_numpy_dtype(value.type.dtype).itemsize
    return count, nbytes


def install_weights(graph, source: str) -> None:
    """Put the weights of ``source`` (file or checkpoint directory) into ``graph``, all or nothing."""
    from graphforge.errors import LoadError
    from graphforge.nn.state import load_graph_state

    if os.path.isdir(source):
        from graphforge.train.checkpoint import latest_checkpoint
        ckpt = latest_checkpoint(source)
        if ckpt is None:
            raise LoadError(f"--weights {source!r}: a directory, but no checkpoint in it (ckpt-*/meta.json)",
                            hint="pass a .safetensors/.npz file, or the --checkpoint-dir of graphforge train")
        source = os.path.join(ckpt, "params.safetensors")
    load_graph_state(graph, source, strict=True)


def _compile(args, out=None) -> int:
    import graphforge as gf
    from graphforge.cli.modelfile import load_model_file, split_target, trace_model
    from graphforge.summary import graph_flops

    out = out or sys.stdout
    started = time.perf_counter()
    print_after = [p.strip() for p in (args.print_after or "").split(",") if p.strip()]
    _check_passes(args.passes, print_after)
    _check_opset(args.opset)
    parent = check_output_path(args.output)

    mf = load_model_file(args.target)
    t0 = time.perf_counter()
    traced = trace_model(mf, args.batch)
    if getattr(args, "weights", None):
        install_weights(traced, args.weights)
    t_trace = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = gf.optimize(traced, args.passes, report=out if args.report else False, print_after=print_after or None,
                        stream=out)
    dtype = getattr(args, "dtype", "float32") or "float32"
    if dtype != "float32":
        from graphforge.passes.mixed_precision import half_precision
        graph = half_precision(graph, dtype)
    t_opt = time.perf_counter() - t0
    if getattr(args, "quantize", None):
        graph = _quantize(graph, args, out)
    elif getattr(args, "calibration", None):
        from graphforge.errors import InputError
        raise InputError("--calibration is only used with --quantize int8")
    elif getattr(args, "weight_scales", "channel") != "channel":
        from graphforge.errors import InputError
        raise InputError("--weight-scales is only used with --quantize int8 or int8-dynamic")

    import onnx

    staging = tempfile.mkdtemp(prefix=".graphforge-compile-", dir=parent)
    try:
        staged = os.path.join(staging, os.path.basename(args.output))
        t0 = time.perf_counter()
        gf.save_onnx(graph, staged, opset=args.opset, contrib_ops=bool(getattr(args, "contrib_ops", False)),
                     provenance=_PROVENANCE.get(getattr(args, "provenance", None)))
        t_export = time.perf_counter() - t0
        proto = onnx.load(staged, load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        onnx_nodes = len(proto.graph.node)
        t_verify = None
        verify_lines = []
        if args.verify:
            t0 = time.perf_counter()
            verify_lines = verify_onnx_file(graph, staged, _feeds(graph, mf, args.seed, args.batch), opset=args.opset,
                                            rtol=args.rtol, atol=args.atol,
                                            traced=None if getattr(args, "quantize", None) else traced)
            t_verify = time.perf_counter() - t0
        nbytes = sum(os.path.getsize(os.path.join(staging, f)) for f in os.listdir(staging))
        # Everything checked: move the file (and any external-data file beside it) into place.
        for name in sorted(os.listdir(staging), key=lambda f: f == os.path.basename(args.output)):
            os.replace(os.path.join(staging, name), os.path.join(parent, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    count, pbytes = _count_params(traced)
    flops = graph_flops(graph)
    has_symbols = any(isinstance(d, str) for v in graph.inputs for d in v.type.shape)
    path, _attr = split_target(args.target)
    ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{n}: {v.type}" for n, v in zip(graph.output_names, graph.outputs))
    timing = f"trace {t_trace:.2f}, optimise {t_opt:.2f}, export {t_export:.2f}"
    if t_verify is not None:
        timing += f", verify {t_verify:.2f}"
    lines = [
        f"compiled {path} ({mf.attr}) -> {args.output}",
        f"  graph       {graph.name}({ins}) -> {outs}",
        f"  nodes       {len(traced.nodes)} traced -> {len(graph.nodes)} after {args.passes!r} -> {onnx_nodes} ONNX nodes",
        f"  parameters  {count:,} ({_size(pbytes)})",
        f"  FLOPs       {flops:,}" + (" per example (symbolic dims = 1)" if has_symbols else ""),
        f"  opset       {opset}",
        *([f"  dtype       {dtype} (weights and compute; float32 for reductions, softmax, norms)"]
          if dtype != "float32" else []),
        f"  output      {args.output} ({_size(nbytes)})",
    ]
    if args.verify:
        lines.append("  verify      ok: " + "; ".join(verify_lines))
    lines.append(f"  time        {time.perf_counter() - started:.2f} s ({timing})")
    print("\n".join(lines), file=out)
    return 0


def report_errors(command: str, output: str | None, work) -> int:
    """``work()``'s exit status; a GraphforgeError or an OSError (the write of ``output`` failing)
    becomes a one-line ``graphforge <command>: ...`` message on stderr and exit status 2."""
    from graphforge.errors import GraphforgeError

    from . import exitcodes

    try:
        return work()
    except GraphforgeError as exc:
        return exitcodes.report(command, exc)
    except OSError as exc:
        print(f"graphforge {command}: cannot write {output!r}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.USAGE


def run(args) -> int:
    from . import exitcodes

    def work() -> int:
        try:
            return _compile(args)
        except VerifyMismatch as exc:
            print(f"graphforge compile: --verify failed: {exc}\n  no file written to {args.output}", file=sys.stderr)
            return exitcodes.CHECK_FAILED

    return report_errors("compile", args.output, work)

