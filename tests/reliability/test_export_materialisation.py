"""The ONNX exporter never materialises what an untrusted file only describes (issue 20 audit).

An imported ``Range(0, 2**40)`` stays run-time computation under the import budget, and so must it
in ``gf.to_onnx`` (``graphforge optimize`` imports, optimises and exports): static aranges and
one-hot class tables longer than ``ARANGE_CONST_MAX`` export as ``Range`` nodes instead of
initializers. The hostile cases run in a child process under a 4 GiB address-space limit.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphforge as gf

pytest.importorskip("onnxruntime")

CHILD = textwrap.dedent('''
    import json, resource
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    import graphforge as gf

    F, I64 = TensorProto.FLOAT, TensorProto.INT64
    N = 2 ** 40
    def c(name, v, dt=np.int64):
        return numpy_helper.from_array(np.asarray(v, dt), name)
    def model(nodes, inputs, out_shape, inits):
        g = helper.make_graph(nodes, "m", inputs, [helper.make_tensor_value_info("y", F, out_shape)], inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    x = helper.make_tensor_value_info("x", F, [1])
    models = {
        "range": model([helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Cast", ["r"], ["f"], to=F),
                        helper.make_node("Add", ["f", "x"], ["y"])], [x], [N], [c("a", 0), c("b", N), c("d", 1)]),
        "one_hot": model([helper.make_node("OneHot", ["i", "d", "v"], ["y"])],
                         [helper.make_tensor_value_info("i", I64, [2])], [2, N],
                         [c("d", N), c("v", [0, 1], np.float32)]),
    }
    out = {}
    for name, m in models.items():
        try:
            proto = gf.to_onnx(gf.from_onnx(m))
            out[name] = {"ops": [n.op_type for n in proto.graph.node], "bytes": proto.ByteSize()}
        except BaseException as exc:
            out[name] = {"error": type(exc).__name__ + ": " + str(exc)[:500]}
    print(json.dumps(out))
''')


def test_huge_imported_tables_export_as_range_nodes_under_a_memory_limit():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    for name, r in result.items():
        assert "error" not in r, f"{name}: {r['error']}"
        assert "Range" in r["ops"] and r["bytes"] < 4096, (name, r)


@pytest.mark.parametrize("start, stop, step, dtype", [(0, 70_000, 1, "int64"), (5, -70_000, -3, "float32"),
                                                      (3, 200_000, 7, "int32"), (0, 5, 2, "float32")])
def test_long_static_arange_exports_as_range_with_equal_values(start, stop, step, dtype):
    from graphforge.runtimes.onnx.creation import ARANGE_CONST_MAX

    g = gf.trace(lambda x: gf.arange(start, stop, step, dtype=dtype), gf.TensorSpec((1,)))
    ops = [n.op_type for n in gf.to_onnx(g).graph.node]
    assert ("Range" in ops) == (len(range(start, stop, step)) > ARANGE_CONST_MAX), ops
    x = np.zeros(1, np.float32)
    got, want = gf.run(g, [x], backend="onnxruntime")[0], gf.run(g, [x], backend="reference")[0]
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def test_one_hot_with_many_classes_exports_as_range_with_equal_values():
    g = gf.trace(lambda i: gf.one_hot(i, 70_000), gf.TensorSpec((3,), "int64"))
    assert "Range" in [n.op_type for n in gf.to_onnx(g).graph.node]
    i = np.array([0, 4, 69_999])
    got, want = gf.run(g, [i], backend="onnxruntime")[0], gf.run(g, [i], backend="reference")[0]
    assert got.dtype == want.dtype and np.array_equal(got, want)
