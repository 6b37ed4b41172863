"""The second fuzzing campaign: mutated ONNX files through ``gf.from_onnx`` (issue 20).

Valid seed models are the generator's random graphs exported with ``gf.to_onnx``. Each case applies
one mutation — protobuf-level bit flips and truncation, truncated or reshaped tensors, inconsistent
declared shapes and element types, rewired inputs, swapped op types, out-of-range attributes,
terabyte-sized shape constants, odd opsets, dropped nodes — and requires the import to end in a
typed ``GraphforgeError`` or in a graph that computes what onnxruntime computes on the same mutated
file; never a crash (any other exception), a hang (a per-case alarm) or an over-budget allocation
(the campaign runs under an address-space limit, so one shows up as a ``MemoryError``).

    python tests/fuzz/onnx_mutate.py --cases 2000 [--seed 0] [--memory-limit 4G] [--json]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``fuzz`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["MUTATORS", "seed_models", "mutate", "check_bytes", "campaign", "main"]

CASE_SECONDS = 20       # a case still running after this is a hang
RUN_MAX_ELEMENTS = 1 << 22   # imported graphs with a larger value are checked for import only
_ODD_INTS = (-(1 << 40), -3, -1, 0, 1, 2, 5, 7, 1 << 31, 1 << 40)


# ---- seeds ------------------------------------------------------------------------------------------

def seed_models(count: int, seed: int = 0) -> list[bytes]:
    """``count`` valid ONNX models: random graphs from the generator, exported by graphforge."""
    import graphforge as gf
    from fuzz.gen import RandomChooser, generate
    from graphforge.errors import GraphforgeError

    out, s = [], seed
    while len(out) < count and s < seed + 20 * count:
        case = generate(RandomChooser(s), max_nodes=10, with_loss=False)
        s += 1
        try:
            out.append(gf.to_onnx(case.graph).SerializeToString())
        except GraphforgeError:
            continue  # an op onnxruntime's opset cannot express: not a seed
    return out


# ---- mutations --------------------------------------------------------------------------------------

def _flip_bits(m, data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] ^= rng.randint(1, 255)
    return bytes(b)


def _truncate_file(m, data, rng):
    return data[:rng.randrange(len(data))]


def _tensors(m):
    return [t for t in m.graph.initializer] + [a.t for n in m.graph.node for a in n.attribute if a.HasField("t")]


def _truncate_tensor(m, data, rng):
    ts = [t for t in _tensors(m) if t.raw_data]
    if not ts:
        return None
    t = rng.choice(ts)
    t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    return m.SerializeToString()


def _tensor_dims(m, data, rng):
    ts = _tensors(m)
    if not ts:
        return None
    t = rng.choice(ts)
    dims = list(t.dims) or [1]
    choice = rng.randrange(3)
    if choice == 0:
        dims[rng.randrange(len(dims))] = rng.choice(_ODD_INTS)
    elif choice == 1:
        dims.append(rng.choice((1, 2, 1 << 20)))
    else:
        dims = dims[::-1] if len(dims) > 1 else [dims[0] * 2]
    t.ClearField("dims")
    t.dims.extend(int(d) for d in dims)
    return m.SerializeToString()


def _value_info_shape(m, data, rng):
    vis = [v for v in list(m.graph.input) + list(m.graph.output) if v.type.tensor_type.shape.dim]
    if not vis:
        return None
    v = rng.choice(vis)
    d = rng.choice(v.type.tensor_type.shape.dim)
    if rng.random() < 0.5:
        d.dim_value = rng.choice((0, 1, 3, 7, 1 << 31))
    else:
        d.dim_param = rng.choice(("N", "batch", "1bad name"))
    return m.SerializeToString()


def _elem_type(m, data, rng):
    from onnx import TensorProto

    codes = (TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, TensorProto.DOUBLE, TensorProto.UINT8,
             TensorProto.STRING, TensorProto.FLOAT16, 0, 99)
    if m.graph.initializer and rng.random() < 0.5:
        rng.choice(list(m.graph.initializer)).data_type = rng.choice(codes)
    elif m.graph.input:
        rng.choice(list(m.graph.input)).type.tensor_type.elem_type = rng.choice(codes)
    else:
        return None
    return m.SerializeToString()


def _attr_int(m, data, rng):
    attrs = [a for n in m.graph.node for a in n.attribute if a.ints or a.type == a.INT]
    if not attrs:
        return None
    a = rng.choice(attrs)
    if a.ints:
        a.ints[rng.randrange(len(a.ints))] = rng.choice(_ODD_INTS)
    else:
        a.i = rng.choice(_ODD_INTS)
    return m.SerializeToString()


def _rewire(m, data, rng):
    names = [i.name for i in m.graph.input] + [t.name for t in m.graph.initializer] + \
            [o for n in m.graph.node for o in n.output]
    nodes = [n for n in m.graph.node if n.input]
    if not nodes:
        return None
    n = rng.choice(nodes)
    n.input[rng.randrange(len(n.input))] = rng.choice(names + [""])
    return m.SerializeToString()


def _op_type(m, data, rng):
    from graphforge.runtimes.onnx_import import supported_op_types

    if not m.graph.node:
        return None
    rng.choice(list(m.graph.node)).op_type = rng.choice(supported_op_types())
    return m.SerializeToString()


def _huge_shape_constant(m, data, rng):
    """An int64 initializer or Constant (shapes, axes, repeats…) set to terabyte-scale values."""
    from onnx import numpy_helper

    ts = [t for t in _tensors(m) if t.data_type == 7]  # INT64
    if not ts:
        return None
    t = rng.choice(ts)
    arr = numpy_helper.to_array(t).copy()
    if arr.size == 0:
        return None
    flat = arr.reshape(-1)
    flat[rng.randrange(flat.size)] = rng.choice((1 << 20, 1 << 31, 1 << 40, -(1 << 40), -2))
    t.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), t.name))
    return m.SerializeToString()


def _opset(m, data, rng):
    for imp in m.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = rng.choice((1, 6, 11, 13, 17, 27, 28, 29, 999, 1 << 40))
    return m.SerializeToString()


def _drop_node(m, data, rng):
    if len(m.graph.node) < 2:
        return None
    del m.graph.node[rng.randrange(len(m.graph.node))]
    return m.SerializeToString()


MUTATORS = {f.__name__.lstrip("_"): f for f in (
    _flip_bits, _truncate_file, _truncate_tensor, _tensor_dims, _value_info_shape, _elem_type, _attr_int,
    _rewire, _op_type, _huge_shape_constant, _opset, _drop_node)}


def mutate(data: bytes, name: str, rng: random.Random) -> bytes | None:
    import onnx

    m = onnx.load_model_from_string(data)
    return MUTATORS[name](m, data, rng)


# ---- the oracle -------------------------------------------------------------------------------------

class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check_bytes(data: bytes, rng: np.random.Generator) -> tuple[str, str]:
    """``(outcome, detail)``: ``typed`` (a GraphforgeError), ``correct`` (imported and equal to
    onnxruntime), ``imported`` (onnxruntime refuses the file or its values are too large to run),
    or a finding: ``crash``, ``hang``, ``memory``, ``mismatch``."""
    import graphforge as gf
    from graphforge.errors import GraphforgeError

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        try:
            graph = gf.from_onnx(data)
        except GraphforgeError as exc:
            return "typed", type(exc).__name__
        return _against_onnxruntime(graph, data, rng)
    except _Hang:
        _ORT.close()  # a worker still busy with this file would block every later case
        return "hang", f"no result within {CASE_SECONDS} s"
    except MemoryError as exc:
        return "memory", f"MemoryError {exc}"
    except RecursionError as exc:
        return "crash", f"RecursionError {str(exc)[:200]}"
    except Exception as exc:  # noqa: BLE001 - anything else is the finding
        return "crash", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_NUMPY_NATIVE = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool", "complex64", "complex128")


def _against_onnxruntime(graph, data: bytes, rng) -> tuple[str, str]:
    import graphforge as gf
    from graphforge.dtypes import to_numpy_dtype
    from graphforge.errors import GraphforgeError

    env = {}
    for v in graph.inputs:
        for d in v.type.shape:
            if isinstance(d, str):
                env.setdefault(d, 2)
    values = [o for n in graph.nodes for o in n.outputs] + list(graph.inputs)
    sizes = [np.prod([env.get(d, 2) if isinstance(d, str) else d for d in v.type.shape], dtype=np.float64)
             for v in values]
    if sizes and max(sizes) > RUN_MAX_ELEMENTS:
        return "imported", "too large to run"
    feeds = []
    for v in graph.inputs:
        shape = [env.get(d, 2) if isinstance(d, str) else d for d in v.type.shape]
        if v.type.dtype == "string":  # (an elem_type mutation can make an input a string tensor)
            feeds.append(rng.integers(0, 3, shape).astype(str).astype(object))
            continue
        # bfloat16/float8/float4 inputs get float32 feeds (NumPy has no such types; onnxruntime then
        # refuses the feed and the file is "not comparable", a type-mutated file's usual fate)
        dt = np.dtype(to_numpy_dtype(v.type.dtype)) if v.type.dtype in _NUMPY_NATIVE else np.dtype(np.float32)
        arr = rng.standard_normal(shape) if dt.kind == "f" else rng.integers(0, 3, shape)
        feeds.append(np.asarray(arr).astype(dt))
    want = _ORT.run(data, feeds)
    if want is None:  # onnxruntime refuses (or crashes on) the mutated file: nothing to compare with
        return "imported", "onnxruntime refuses it"
    try:
        got = gf.run(graph, feeds, backend="reference")
    except GraphforgeError as exc:
        return "typed", f"at run time: {type(exc).__name__}"
    differs = _differs(got, want, "onnxruntime")
    if differs and not _differs(got, _onnx_reference_outputs(data, feeds), "onnx's reference"):
        # onnx's own reference (the definition) sides with graphforge: an onnxruntime kernel quirk, e.g. its
        # LogSoftmax gives finite values in a column that holds a NaN, where the definition gives NaN
        return "correct", "onnxruntime differs from onnx's reference here"
    return ("mismatch", differs) if differs else ("correct", "")


def _differs(got, want, what: str) -> str:
    """Why ``got`` differs from ``want`` (outputs by position), or ``""``."""
    if want is None:
        return f"no {what} outputs"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return f"output {i}: shape {g.shape} vs {what} {w.shape}"
        if w.dtype.kind in "fc":
            scale = max(1.0, float(np.nanmax(np.abs(w))) if w.size and np.isfinite(w).any() else 1.0)
            if not np.allclose(g, w, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
                return f"output {i}: max abs diff {float(np.nanmax(np.abs(g - w))):.3g}"
        elif not np.array_equal(g, w):
            return f"output {i}: values differ"
    return ""


def _onnx_reference_outputs(data: bytes, feeds: list):
    """onnx's ReferenceEvaluator's outputs for ``data`` (inputs by position), or None when it cannot run it."""
    try:
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load_from_string(data)
        inits = {t.name for t in model.graph.initializer}
        names = [v.name for v in model.graph.input if v.name not in inits]
        return ReferenceEvaluator(model).run(None, dict(zip(names, feeds)))
    except Exception:  # noqa: BLE001 - a mutated file onnx's reference refuses: no tie-breaker
        return None


def _ort_outputs(data: bytes, feeds: list):
    """onnxruntime's outputs for ``data`` (inputs by position), or None when it refuses the file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # its warnings about mutated files are expected noise here
    try:
        sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {m.name: a for m, a in zip(sess.get_inputs(), feeds)})
    except Exception:  # noqa: BLE001 - onnxruntime's own error classes
        return None


class _OrtWorker:
    """onnxruntime in a separate process: some mutated files crash it (a segfault inside
    ``InferenceSession.run``), and the oracle must not take the campaign down with it."""

    def __init__(self):
        self._pool = None

    def run(self, data: bytes, feeds: list):
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1)
        try:
            # less than the case's alarm: a file onnxruntime itself cannot finish (a Loop mutated to
            # 2**40 iterations) is "not comparable", not a hang of graphforge's
            return self._pool.submit(_ort_outputs, data, feeds).result(timeout=CASE_SECONDS / 2)
        except (BrokenProcessPool, TimeoutError, OSError):
            self.close()
            return None

    def close(self):
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


_ORT = _OrtWorker()
FINDINGS = ("crash", "hang", "memory", "mismatch")


def campaign(cases: int, seed: int = 0, *, seeds: int | None = None, stream=None) -> dict:
    """``cases`` mutated files (round-robin over the mutators); returns counts and findings."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    models = seed_models(seeds or max(4, min(40, cases // 10)), seed)
    counts, by_mutator, findings = collections.Counter(), collections.defaultdict(collections.Counter), []
    names = sorted(MUTATORS)
    start = time.time()
    for k in range(cases):
        name = names[k % len(names)]
        base = models[rng.randrange(len(models))]
        try:
            data = mutate(base, name, rng)
        except Exception:  # noqa: BLE001 - the mutation itself did not apply (e.g. an empty field)
            data = None
        if data is None:
            counts["skipped"] += 1
            continue
        outcome, detail = check_bytes(data, nrng)
        counts[outcome] += 1
        counts["cases"] += 1
        by_mutator[name][outcome] += 1
        if outcome in FINDINGS and len(findings) < 50:
            findings.append({"case": k, "mutator": name, "outcome": outcome, "detail": detail})
        if stream is not None and (k + 1) % 500 == 0:
            print(f"  {k + 1} mutated files, {time.time() - start:.0f} s", file=stream, flush=True)
    _ORT.close()
    counts["seconds"] = round(time.time() - start, 1)
    return {"counts": dict(counts), "by_mutator": {k: dict(v) for k, v in by_mutator.items()},
            "findings": findings, "seed_models": len(models)}


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit", default="4G", help="RLIMIT_AS for the campaign (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for the CI test)")
    args = parser.parse_args(argv)
    import graphforge  # noqa: F401  (imports before the limit: their mappings are not the campaign's)
    import onnxruntime  # noqa: F401

    limit = _bytes(args.memory_limit)
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = campaign(args.cases, args.seed, stream=None if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    else:
        c = result["counts"]
        print(f"onnx mutations: {c.get('cases', 0)} mutated files from {result['seed_models']} seed models in "
              f"{c['seconds']} s: {c.get('typed', 0)} typed errors, {c.get('correct', 0)} imported and equal to "
              f"onnxruntime, {c.get('imported', 0)} imported (not comparable); "
              + ", ".join(f"{c.get(k, 0)} {k}" for k in FINDINGS))
        for f in result["findings"][:20]:
            print(f"--- case {f['case']} ({f['mutator']}): [{f['outcome']}] {f['detail']}")
    return 1 if any(result["counts"].get(k) for k in FINDINGS) else 0


if __name__ == "__main__":
    sys.exit(main())
