"""Issue #13: files line up with the op families. Every JAX and ONNX lowering lives in the back-end
module named like the module that defines its op (``graphforge/ops/<family>.py`` →
``runtimes/{jax,onnx}/<family>.py``; the nn families ``ops/nn_{conv,pool,norm,attention}.py`` →
``nn_ops.py``), so one op's story is found under one name. Item 5: an nn op's public function sits in
the module that defines its OpDef."""
from __future__ import annotations

import importlib
import sys

import pytest

from graphforge import ops
from graphforge.ops.registry import all_ops


# the nn op families, one module each in graphforge/ops, share one lowering module per back end
NN_FAMILIES = {"nn_ops", "nn_conv", "nn_pool", "nn_norm", "nn_attention"}


def _family(op) -> str:
    module = op.type_rule.__module__.rsplit(".", 1)[-1]
    return "nn_ops" if module in NN_FAMILIES else module


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


def test_nn_public_functions_sit_with_their_op_definitions():
    nn_ops = {name: op for name, op in all_ops().items() if op.type_rule.__module__.rsplit(".", 1)[-1] in NN_FAMILIES}
    assert {op.type_rule.__module__.rsplit(".", 1)[-1] for op in nn_ops.values()} == NN_FAMILIES
    checked, misplaced = 0, []
    for name, op in nn_ops.items():
        fn = getattr(ops, name, None)
        if fn is None:
            continue  # an op with no public function of its name (max_pool2d_grad)
        checked += 1
        if fn.__module__ != op.type_rule.__module__:
            misplaced.append(f"{name}: function in {fn.__module__}, OpDef in {op.type_rule.__module__}")
    assert checked >= 10 and not misplaced, misplaced
