"""The ONNX import budget (issue 20): values an untrusted file describes are built at import time
only within ``max_constant_bytes``; larger ones stay run-time computation with the same results."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphforge as gf
from graphforge.errors import LoadError
from graphforge.runtimes.onnx_import.budget import (DEFAULT_MAX_CONSTANT_BYTES, ENV_VAR,
                                                    resolve_max_constant_bytes)

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, out_shape, inits, opset=21, x_shape=(1,)):
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", F, list(x_shape))],
                          [helper.make_tensor_value_info("y", F, out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def constant_of_shape(shape, value=1.0):
    return _model([helper.make_node("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(
        np.array([value], np.float32))), helper.make_node("Add", ["c", "x"], ["y"])], list(shape), [_const("s", shape)])


def int_range(n):
    return _model([helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Cast", ["r"], ["f"], to=F),
                   helper.make_node("Add", ["f", "x"], ["y"])], [n], [_const("a", 0), _const("b", n), _const("d", 1)])


def float_range(start, limit, delta):
    n = int(np.ceil((limit - start) / delta))
    return _model([helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])],
                  [n], [_const(k, v, np.float32) for k, v in (("a", start), ("b", limit), ("d", delta))])


def tile(reps, x_shape=(1,)):
    out = [r * d for r, d in zip(reps, x_shape)]
    return _model([helper.make_node("Tile", ["x", "r"], ["y"])], out, [_const("r", reps)], x_shape=x_shape)


def _ort(model, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("make", [lambda: constant_of_shape((2, 3), 7.0), lambda: int_range(5),
                                  lambda: float_range(0.5, 3.0, 0.25), lambda: tile([70]),
                                  lambda: tile([3, 70], (2, 2))],
                         ids=["constant_of_shape", "int_range", "float_range", "tile-70", "tile-2d"])
@pytest.mark.parametrize("budget", [0, None], ids=["budget-0", "default-budget"])
def test_over_budget_values_stay_runtime_and_agree_with_onnxruntime(make, fold, budget):
    model = make()
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.arange(np.prod(x_shape), dtype=np.float32).reshape(x_shape) + 1
    g = gf.from_onnx(model, fold=fold, max_constant_bytes=budget)
    if budget == 0:  # nothing computed at import time: no stored table beyond scalars
        assert all(a.size <= 1 for a in g.params.values()), g.params
    got = gf.run(g, {"x": x}, backend="reference")[0]
    np.testing.assert_allclose(got, _ort(model, {"x": x}), rtol=1e-6)


def test_budget_counts_the_whole_import():
    # two 64x64 float32 identities are 32 KiB: a 20 KiB budget takes the first and refuses the second
    eyes = [helper.make_node("EyeLike", ["x"], [f"e{i}"], name=f"eye{i}") for i in range(2)]
    g = helper.make_graph(eyes + [helper.make_node("Add", ["e0", "e1"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", F, [64, 64])],
                          [helper.make_tensor_value_info("y", F, [64, 64])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(LoadError, match=r"'eye1'.*16\.0 KiB.*20\.0 KiB.*16\.0 KiB.*already used"):
        gf.from_onnx(model, max_constant_bytes=20 << 10, fold=False)
    assert gf.from_onnx(model, max_constant_bytes=40 << 10, fold=False) is not None


def test_budget_setting(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_max_constant_bytes() == DEFAULT_MAX_CONSTANT_BYTES
    assert resolve_max_constant_bytes(123) == 123
    for text, value in (("512M", 512 << 20), ("2G", 2 << 30), ("1000", 1000), ("64KiB", 64 << 10)):
        monkeypatch.setenv(ENV_VAR, text)
        assert resolve_max_constant_bytes() == value
    monkeypatch.setenv(ENV_VAR, "2G")
    assert resolve_max_constant_bytes(5) == 5  # the argument wins over the environment


# Under a 4 GiB address-space limit, in one child process: the terabyte-sized values of the issue
# import (fold on and off) as run-time computation, and a (3, 4) tensor at the head of a 6 GiB
# external-data file without a `length` reads 48 bytes.
CHILD = textwrap.dedent("""
    import os, resource, sys, tempfile
    sys.path.insert(0, {here!r})
    import numpy as np
    import graphforge as gf
    from test_import_budget import constant_of_shape, int_range, tile
    sys.path.insert(0, os.path.dirname({here!r}))
    from reliability import hostile_onnx as H
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    T = 1 << 40
    for make in (lambda: constant_of_shape((1 << 20, 1 << 20)), lambda: int_range(T), lambda: tile([T])):
        for fold in (True, False):
            g = gf.from_onnx(make(), fold=fold)
            n = int(np.prod(g.outputs[0].type.shape, dtype=np.float64))
            assert n >= 1 << 40 and sum(a.nbytes for a in g.params.values()) < 1 << 20, (g, n)
    d = tempfile.mkdtemp()
    H.write_sparse(os.path.join(d, "w.bin"), 6 << 30)
    with open(os.path.join(d, "w.bin"), "r+b") as f:
        f.write(np.arange(12, dtype=np.float32).tobytes())
    with open(os.path.join(d, "m.onnx"), "wb") as f:
        f.write(H.external_model())
    g = gf.from_onnx(os.path.join(d, "m.onnx"))
    w = next(iter(g.params.values()))
    assert w.shape == (3, 4) and np.array_equal(w.ravel(), np.arange(12)), w
    print("OK")
""")


def test_terabyte_values_import_under_a_4gib_limit():
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", CHILD.format(here=here)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-3000:]
