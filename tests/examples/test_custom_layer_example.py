"""examples/custom_layer.py in quick mode (in a subprocess: it registers a new op and lowerings
process-wide, which must not leak into other tests' view of the op registry)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from example_helpers import ROOT

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


CHECKS = r"""
import sys
sys.path.insert(0, "examples")
import numpy as np
import graphforge as gf
import custom_layer as cl
from graphforge.errors import DTypeError

assert cl.main(["--quick"]) == 0
# the type rule refuses integer input at trace time, with the op's own message
try:
    gf.trace(lambda v: cl.squareplus(v), gf.TensorSpec((3,), "int32"))
except DTypeError as exc:
    assert "squareplus expects a float tensor" in str(exc), exc
else:
    raise SystemExit("an int32 input should fail the squareplus type rule")
# the VJP is a graph of graphforge ops: the gradient graph needs no squareplus VJP kernel anywhere
g = gf.grad(gf.trace(lambda v: cl.squareplus(v).sum(), gf.TensorSpec((5,), "float64")), wrt=["v"])
x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
expect = 0.5 * (1 + x / np.sqrt(x * x + 4.0))
for backend in ("reference", "jax", "onnxruntime"):
    np.testing.assert_allclose(gf.run(g, x, backend=backend)[1], expect, rtol=1e-9, err_msg=backend)
print("CHECKS OK")
"""


def test_custom_layer_example_quick():
    proc = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "CHECKS OK" in out
    assert "worst relative error" in out and "squareplus nodes in the graph: 2" in out, out
