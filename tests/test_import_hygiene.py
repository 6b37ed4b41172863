"""Rule 1: the core never imports a back end. ``import graphforge`` and everyday core work (tracing,
the text IR, the reference runtime, gf.grad, params I/O, summary) load no jax/onnx module."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

BACKEND_ROOTS = ("jax", "jaxlib", "onnx", "onnxruntime", "optax")

CORE_WORK = r"""
import numpy as np
import graphforge as gf
from graphforge import nn
net = nn.seq().add(nn.Linear(4, 8)).add_fn(gf.relu).add(nn.Linear(8, 2))
g = gf.trace(net, gf.TensorSpec(("batch", 4), "float32"), seed=0)
g2 = gf.parse(str(g), params=g.params)
out = gf.run(g2, [np.ones((3, 4), np.float32)], backend="reference")
loss = gf.trace(lambda x: gf.sum(gf.tanh(x)), gf.TensorSpec((3,), "float32"))
gf.run(gf.grad(loss, wrt=["x"]), [np.ones(3, np.float32)])
gf.run(gf.grad(loss, wrt=["x"], optimize=False), [np.ones(3, np.float32)])
gf.summary(g, print_fn=None)
import tempfile, os
with tempfile.TemporaryDirectory() as d:
    gf.save_params(g, os.path.join(d, "w.safetensors"))
    gf.load_params(os.path.join(d, "w.safetensors"), g)
import graphforge.runtimes.reference, graphforge.passes
"""


def loaded_backends(code: str) -> list[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))\n" % (
        BACKEND_ROOTS,)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", [
    pytest.param("import graphforge", id="import"),
    pytest.param(CORE_WORK, id="trace-parse-run-grad-io"),
])
def test_core_loads_no_backend(code):
    assert loaded_backends(code) == []


def test_the_probe_would_see_a_backend():
    """The check itself can fail: importing the jax back end's dependency is visible."""
    assert "json" not in BACKEND_ROOTS
    assert loaded_backends("import onnx") != []


def test_tests_import_the_installed_packages_not_their_source_folders():
    """``passes/``, ``runtimes/`` and ``apps/`` are installed as ``graphforge.passes`` etc.; pytest's
    rootdir on ``sys.path`` also makes ``import runtimes.jax`` work, but as a second copy of every
    module — its own lowering tables, caches and registrations, which ``gf.run`` never sees."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    source_folders = {"passes", "runtimes", "apps"}
    wrong = []
    for path in sorted((root / "tests").rglob("*.py")) + sorted((root / "benchmarks").rglob("*.py")) \
            + sorted((root / "examples").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            wrong += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] in source_folders]
    assert not wrong, wrong
