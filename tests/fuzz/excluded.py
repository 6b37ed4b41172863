"""The ops the graph generator cannot draw (``gen.EXCLUDED``), fuzzed on their own.

The generator needs a float64 twin of every graph as its oracle; the quantized ops, ``bitcast`` and
the data-dependent-length ops have none (see each exclusion's reason). Here each of them runs as a
one-node graph of one of its conformance samples, with input values drawn afresh from the sample's
domains for every seed, on the reference interpreter, onnxruntime and (for the ops ``jax.jit`` can
lower) JAX; the back ends must agree with each other at the same precision: integer and boolean
outputs exactly, float outputs within rtol 1e-5 / atol 1e-6 (scaled by the output's magnitude).
A typed ``UnsupportedOpError`` from an ONNX lowering counts as *unsupported*; anything untyped is a
*crash*.
"""
from __future__ import annotations

import traceback

import numpy as np

from graphforge.errors import GraphforgeError, UnsupportedOpError
from graphforge.ops.registry import get_op
from graphforge.ops.samples import make_inputs

from .gen import EXCLUDED
from .oracles import ATOL_PAIR, RTOL_PAIR, Finding, compare, onnx_available

__all__ = ["DATA_DEPENDENT", "check_excluded_op", "fuzz_excluded"]

# jax.jit's static shapes refuse these by design (gen.EXCLUDED says so): reference vs onnxruntime only
DATA_DEPENDENT = {op for op, why in EXCLUDED.items() if "data-dependent" in why}
# onnxruntime's uint8 x int8 integer kernels (seen on AVX2 without VNNI) add pairs of products in saturating
# int16: exact only for 7-bit weights, which is why onnxruntime's quantizer has reduce_range. The
# reference and JAX are exact for every int8; the campaign draws 7-bit int8 operands for these ops
# when a uint8 operand is present (found by this campaign: full-range weights differ on onnxruntime).
U8S8_OPS = {"matmul_integer", "conv_integer", "qlinear_matmul", "qlinear_conv"}


def _inputs(op, sample, seed):
    inputs = make_inputs(sample, seed=seed)
    if op in U8S8_OPS and any(a.dtype == np.uint8 for a in inputs):
        inputs = [a // 2 if a.dtype == np.int8 else a for a in inputs]
    return inputs


def _bitwise(got, want) -> str | None:
    for i, (g, w) in enumerate(zip(got, want)):
        if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
            return f"output {i} differs bitwise ({g.dtype}{list(g.shape)} vs {w.dtype}{list(w.shape)})"
    return None


def _run(graph, inputs, backend):
    import graphforge as gf

    return gf.run(graph, inputs, backend=backend)


def check_excluded_op(op: str, seed: int, jax: bool = True) -> list[Finding]:
    """One sample of ``op`` (chosen by ``seed``) with fresh input values, on every back end
    (``jax=False``: reference and onnxruntime only; a jit compile per case is what costs)."""
    from gf_testutil import build_sample_graph

    samples = get_op(op).samples
    sample = samples[seed % len(samples)]
    graph, _ = build_sample_graph(op, sample)
    inputs = _inputs(op, sample, seed)
    backends = ["reference"] + (["onnxruntime"] if onnx_available() else [])
    if jax and op not in DATA_DEPENDENT:
        backends.append("jax")
    findings, results = [], {}
    for name in backends:
        try:
            results[name] = [np.asarray(o) for o in _run(graph, inputs, name)]
        except UnsupportedOpError as exc:
            findings.append(Finding("unsupported", f"{op} on {name}", f"{type(exc).__name__}: {exc}"))
        except GraphforgeError as exc:  # a valid sample graph: a typed error is a disagreement too
            findings.append(Finding("mismatch", f"{op} on {name}", f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - what the fuzzer hunts
            tb = "".join(traceback.format_exception(exc)[-4:])
            findings.append(Finding("crash", f"{op} on {name}", f"{type(exc).__name__}: {exc}\n{tb}"))
    want = results.get("reference")
    for name, got in results.items():
        if name != "reference" and want is not None:
            # bitcast reinterprets bits (NaN payloads included): the back ends must agree bit for bit
            problem = _bitwise(got, want) if op == "bitcast" else compare(got, want, RTOL_PAIR, ATOL_PAIR, graph)
            if problem:
                findings.append(Finding("mismatch", f"{op}: {name} vs reference (seed {seed})", problem))
    return findings


def fuzz_excluded(seeds: int, start: int = 0, jax: bool = True) -> dict:
    """``seeds`` rounds over every excluded op; returns the tallies and the findings."""
    counts = {"cases": 0, "mismatch": 0, "crash": 0, "unsupported": 0}
    found: list[Finding] = []
    for seed in range(start, start + seeds):
        for op in sorted(EXCLUDED):
            findings = check_excluded_op(op, seed, jax=jax)
            counts["cases"] += 1
            for kind in {f.kind for f in findings}:
                counts[kind] += 1
            found += [f for f in findings if f.kind != "unsupported"]
    return {"counts": counts, "findings": found}
