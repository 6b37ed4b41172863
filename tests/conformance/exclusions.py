"""The one list of onnx backend-test cases graphforge does not run, each with its reason.

Keys are ``(category, regex)`` matched with ``re.search`` against the case name (without ``_cpu``).
"""
from __future__ import annotations

import re

__all__ = ["EXCLUDED", "NO_NODE_CASE", "exclusion_reason"]

EXCLUDED: dict[tuple[str, str], str] = {
    ("Real", r".*"): "model weights are only referenced by URL; nothing may be downloaded (the 'light' "
                     "copies shipped in the onnx wheel are tested in test_light_models.py)",
}

def exclusion_reason(category: str, name: str) -> str | None:
    for cat, pat, why in _COMPILED:
        if cat == category and pat.search(name):
            return why
    return None

_DTYPES = ("graphforge has no {} dtype (dtypes.py: float16/32/64, bfloat16, float8 e4m3fn/e4m3fnuz/e5m2/"
           "e5m2fnuz/e8m0, float4e2m1, bool, int2/4/8/16/32/64, uint2/4/8/16/32/64)")
for _pat, _dt in ():  # (string tensors run since issue 19: ops/strings.py)
    EXCLUDED[("Node", _pat)] = _DTYPES.format(_dt)
EXCLUDED[("Node", r"^test_loop16_seq_none$")] = \
    ("onnx's assert_similar_outputs calls len() on each element of a sequence output and this case's first "
     "element is 0-d, so it fails on every backend; graphforge's output equals the expected one exactly "
     "(tests/runtimes/test_onnx_import_sequences.py checks it)")
# Variants of claimed ops that graphforge's registry ops do not cover (the importer raises
# UnsupportedOpError for them, naming the attribute):
EXCLUDED.update({
    ("Node", r"^test_training_dropout(_default)?(_mask)?$"): "training-mode Dropout with ratio > 0: the expected masks come from NumPy's RNG; graphforge's dropout has its own counter-based mask (ratio 0 cases run)",
    ("Node", r"^test_mvn$"): "the test model fails onnx strict shape inference, which from_onnx requires for untrusted files",
    ("Node", r"^test_attention_4d_causal_fp16(_expanded)?$"): "float16 softmax: graphforge back ends accumulate softmax in float32 and differ from onnx's float16 reference by one float16 ulp on 2/192 elements",
    ("Node", r"^test_resize_downsample_sizes_nearest_not_smaller$"): "keep_aspect_ratio_policy not_smaller where round(scale*n) != floor(scale*n): the per-axis weights come from onnx's reference Resize driven by explicit scales, which rounds the output size down (the importer refuses it rather than guess)",
})
_COMPILED = [(cat, re.compile(pat), why) for (cat, pat), why in EXCLUDED.items()]

# Registry ops without a passing ONNX node case, and why (checked by test_conformance.py).
NO_NODE_CASE: dict[str, str] = {
    "dim_value": "the run-time value of a symbolic dim: ONNX node cases have static shapes, so their Shape "
                 "folds to constants (tests/runtimes/test_onnx_import_dynamic.py imports it)",
    "max_pool2d_grad": "a gradient-only op (max_pool2d's VJP): ONNX has no pooling-gradient node to import; "
                       "its own samples check it on every back end (tests/runtimes/test_onnx_ops.py)",
    "random_uniform": "graphforge's counter-hash uniform draws (bit-exact across back ends); ONNX's RandomUniform"
                      "Like draws from an unspecified generator, so no node case can match it",
    "while_loop": "no onnx node case has a Loop that a condition can end early (test_loop11 and the Range "
                  "expansions are counted Loops: they import as scan or unrolled); tests/runtimes/"
                  "test_onnx_control_flow.py imports data-dependent Loops as while_loop and runs them",
}
NO_NODE_CASE["optimization_barrier"] = ("rematerialisation's compiler barrier (passes/remat.py): ONNX has no such "
                                        "node to import; its samples check it on every back end")
NO_NODE_CASE["stop_gradient"] = ("autodiff's constant marker (jax.lax.stop_gradient): ONNX has no gradients and no "
                                 "such node to import; its samples check it on every back end")
EXCLUDED[("Node", r"^test_dft_inverse(_opset19)?$")] = (
    "the expected values are NumPy's complex64 FFT, whose rounding noise (1.9e-7) sits where the exact "
    "result is 0 (true value ~1e-16), beyond onnx's atol 1e-7; graphforge's DFT (float64 tables, one rounding) "
    "matches the float64 FFT to float32 precision (tests/runtimes/test_onnx_import_signal_misc.py)")
_COMPILED = [(cat, re.compile(pat), why) for (cat, pat), why in EXCLUDED.items()]
_COMPILED = [(cat, re.compile(pat), why) for (cat, pat), why in EXCLUDED.items()]
NO_NODE_CASE["max_roi_pool"] = ("onnx ships no MaxRoiPool node case; tests/ops/test_vision_roi.py checks it against "
                                "onnxruntime's MaxRoiPool kernel (boxes inside, across and outside the map, empty bins)")
