"""Per-op mixed-precision policy: which ops compute in a half type and which stay in float32.

The table lives beside the registry (one entry per op name) so that every consumer — the
``mixed_precision`` pass, half-precision ONNX export, docs — reads one decision per op:

- ``"half"``: matrix products and convolutions, where half types pay off (tensor cores, half the
  bytes moved); their float32 inputs (master weights included) are cast down.
- ``"float32"``: reductions, softmax, normalisations, exp/log and friends, whose accumulations or
  range need float32 (the PyTorch autocast / JAX mixed-precision convention); half inputs are cast up.
- ``"follow"`` (the default for any op not listed, including ops added later): compute in the
  narrowest float dtype among the op's float inputs, so elementwise chains between matmuls stay half.
"""
from __future__ import annotations

__all__ = ["PRECISION_POLICY", "HALF", "FLOAT32", "FOLLOW", "precision_class"]

HALF, FLOAT32, FOLLOW = "half", "float32", "follow"

PRECISION_POLICY: dict[str, str] = {
    # compute-bound: run in the half type
    "matmul": HALF, "linear": HALF, "conv2d": HALF, "conv_transpose2d": HALF, "attention": HALF,
    # accumulations and range-sensitive math: keep float32
    "sum": FLOAT32, "mean": FLOAT32, "prod": FLOAT32,
    "softmax": FLOAT32, "log_softmax": FLOAT32,
    "layer_norm": FLOAT32, "batch_norm": FLOAT32,
    "exp": FLOAT32, "log": FLOAT32, "pow": FLOAT32, "softplus": FLOAT32,
    "rsqrt": FLOAT32, "sqrt": FLOAT32, "reciprocal": FLOAT32,
}


def precision_class(op: str) -> str:
    """``"half"``, ``"float32"`` or ``"follow"`` for the op named ``op``."""
    return PRECISION_POLICY.get(op, FOLLOW)
