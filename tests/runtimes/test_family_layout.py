"""Issue #13: files line up with the op families. Every JAX and ONNX lowering lives in the back-end
module named like the module that defines its op (``graphforge/ops/<family>.py`` →
``runtimes/{jax,onnx}/<family>.py``; the nn ops' private parts ``ops/_nn_*.py`` → ``nn_ops.py``), so
one op's story is found under one name."""
from __future__ import annotations

import importlib
import sys

import pytest

from graphforge.ops.registry import all_ops


def _family(op) -> str:
    module = op.type_rule.__module__.rsplit(".", 1)[-1]
    return "nn_ops" if module.startswith("_nn_") else module


@pytest.mark.parametrize("backend", ["jax", "onnx"])
def test_each_lowering_sits_in_its_ops_family_module(backend):
    importlib.import_module(f"graphforge.runtimes.{backend}")
    table = sys.modules[f"graphforge.runtimes.{backend}.lower"].LOWERINGS
    ops = all_ops()
    misplaced = []
    for name, fn in table.items():
        if name not in ops:
            continue
        where = fn.__module__.rsplit(".", 1)[-1]
        if where != _family(ops[name]):
            misplaced.append(f"{name}: runtimes/{backend}/{where}.py, its op is in ops/{_family(ops[name])}.py")
    assert not misplaced, misplaced
