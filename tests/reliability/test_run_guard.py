"""Running a model whose values are terabytes (issue 20 audit): a typed error on every back end.

The import budget rightly keeps ``ConstantOfShape([2**20, 2**20])`` and ``Range(0, 2**40)`` as
run-time computation; running them used to end in a raw ``JaxRuntimeError`` (JAX) or kill the
process with an absl ``Check failed`` abort (JAX converting the failed buffer of the 2**40 range).
Outputs larger than the machine's memory are now refused before anything is allocated
(``runtimes/run_guard.py``), and XLA's out-of-memory status is a ``BackendError``. The hostile runs
happen in a child process under a 4 GiB address-space limit.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import BackendError, ConfigError
from graphforge.runtimes.run_guard import ENV_VAR, max_output_bytes

pytest.importorskip("onnxruntime")

CHILD = textwrap.dedent('''
    import json, os, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    import graphforge as gf

    F = TensorProto.FLOAT
    def c(name, v):
        return numpy_helper.from_array(np.asarray(v, np.int64), name)
    def model(nodes, out_shape, inits):
        g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", F, [1])],
                              [helper.make_tensor_value_info("y", F, out_shape)], inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    N = 2 ** 40
    models = {
        "constant_of_shape": model([helper.make_node("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(
            np.array([1.0], np.float32))), helper.make_node("Add", ["c", "x"], ["y"])], [2**20, 2**20],
            [c("s", [2**20, 2**20])]),
        "range": model([helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Cast", ["r"], ["f"], to=F),
                        helper.make_node("Add", ["f", "x"], ["y"])], [N], [c("a", 0), c("b", N), c("d", 1)]),
    }
    out = {}
    for name, m in models.items():
        g = gf.from_onnx(m)
        for backend in sys.argv[1:]:
            try:
                gf.run(g, {"x": np.ones(1, np.float32)}, backend=backend)
                out[name + "/" + backend] = "ran"
            except BaseException as exc:
                out[name + "/" + backend] = type(exc).__name__ + ": " + str(exc)[:300]
    print(json.dumps(out))
''')


def _child(backends, env_extra=None):
    import os

    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-c", CHILD, *backends], capture_output=True, text=True, timeout=180,
                          env=env)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"child died ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def test_terabyte_outputs_are_refused_before_allocation():
    """The check runs in gf.run before the back end is called (JAX: the next test, and
    test_symbolic_outputs...); reference and onnxruntime here, to keep the child quick."""
    result = _child(["reference", "onnxruntime"])
    assert len(result) == 4
    for key, got in result.items():
        assert got.startswith("BackendError: output 'y'") and "4.0 TiB" in got, (key, got)


def test_xla_out_of_memory_is_a_typed_error_not_an_abort():
    """With the output check lifted, XLA itself fails: a BackendError, and the process lives on."""
    result = _child(["jax"], {ENV_VAR: "100T"})
    for key, got in result.items():
        assert got.startswith("BackendError: XLA ran out of memory"), (key, got)


def test_limit_setting(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert max_output_bytes() is None or max_output_bytes() > 1 << 20
    monkeypatch.setenv(ENV_VAR, "2G")
    assert max_output_bytes() == 2 << 30
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ConfigError, match=ENV_VAR):
        max_output_bytes()


def test_symbolic_outputs_are_checked_at_their_bound_size(monkeypatch):
    g = gf.trace(lambda x: gf.relu(x), gf.TensorSpec(("batch", 64)))
    monkeypatch.setenv(ENV_VAR, "4k")  # 16 rows of 64 float32
    assert gf.run(g, [np.ones((16, 64), np.float32)])[0].shape == (16, 64)
    for backend in ("reference", "jax"):
        with pytest.raises(BackendError, match=r"output 'output'.*f32\[batch,64\]"):
            gf.run(g, [np.ones((17, 64), np.float32)], backend=backend)
