"""``graphforge compile``: the model-file convention, the report, --batch, --verify and every error case.

Error cases run the CLI in a fresh process, as a user meets them: exit code, message, no traceback,
no file left behind. Success cases need the ONNX back end (gf.save_onnx, onnxruntime)."""
from __future__ import annotations


import numpy as np
import pytest

import graphforge as gf
from cli_helpers import (MLP_EXAMPLE, SMALL_MODEL, assert_clean_failure, leftovers, run_cli,
                         write)



# ---- errors, in a fresh process ------------------------------------------------------------------

def test_missing_file(tmp_path):
    proc = run_cli("compile", str(tmp_path / "nope.py"), "-o", str(tmp_path / "out.onnx"))
    assert_clean_failure(proc, "nope.py", "does not exist", code=2)
    assert leftovers(tmp_path) == []


def test_file_without_a_model_names_what_was_looked_for(tmp_path, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "empty.py", "import graphforge as gf\nx = 1\n")
    proc = run_cli("compile", path, "-o", str(tmp_path / "out.onnx"))
    assert_clean_failure(proc, "defines no `model` or `make_model`", "it defines: x", code=2)
    assert main(["compile", path + ":Encoder", "-o", str(tmp_path / "out.onnx")]) == 2
    assert "defines no `Encoder`" in capsys.readouterr().err
    assert leftovers(tmp_path) == ["empty.py"]


def test_file_that_raises_shows_the_users_line(tmp_path):
    path = write(tmp_path, "broken.py", """
        import graphforge as gf
        scale = 2
        table = {"a": 1}
        factor = table["missing"] * scale
    """)
    proc = run_cli("compile", path, "-o", str(tmp_path / "out.onnx"))
    err = assert_clean_failure(proc, "KeyError", "broken.py:5", 'factor = table["missing"] * scale', code=2)
    assert "runpy" not in err
    assert leftovers(tmp_path) == ["broken.py"]


def test_invalid_pipeline_and_print_after(tmp_path):
    proc = run_cli("compile", MLP_EXAMPLE, "-o", str(tmp_path / "out.onnx"), "--passes", "fold,(cse,bogus)*")
    assert_clean_failure(proc, "unknown pass 'bogus'", "known passes", code=2)
    assert leftovers(tmp_path) == []


def test_invalid_opset(tmp_path):
    proc = run_cli("compile", MLP_EXAMPLE, "-o", str(tmp_path / "out.onnx"), "--opset", "999")
    assert_clean_failure(proc, "invalid opset 999", code=2)
    assert leftovers(tmp_path) == []


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder should be")
    proc = run_cli("compile", MLP_EXAMPLE, "-o", str(blocker / "out.onnx"))
    assert_clean_failure(proc, "cannot write", "is not a folder", code=2)
    assert leftovers(tmp_path) == ["not_a_dir"]


# ---- errors, in process (cheap) ------------------------------------------------------------------

def test_error_inside_forward_names_the_users_line(tmp_path, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "fwd.py", """
        import graphforge as gf
        from graphforge import nn

        class Net(nn.Module):
            def forward(self, x):
                y = x.relu()
                return y.no_such_method()

        model = Net()
        inputs = gf.TensorSpec(("batch", 4))
    """)
    assert main(["compile", path, "-o", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err
    assert "tracing model" in err and "AttributeError" in err and "fwd.py:8: return y.no_such_method()" in err
    assert leftovers(tmp_path) == ["fwd.py"]


def test_shape_error_and_missing_inputs(tmp_path, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "shape.py", """
        import graphforge as gf
        from graphforge import nn
        model = nn.seq().add(nn.Linear(4, 8)).add(nn.Linear(5, 2))
        inputs = [gf.TensorSpec(("batch", 4))]
    """)
    assert main(["compile", path, "-o", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err
    assert "ShapeError" not in err and "Traceback" not in err
    # the module path of the bad Linear, and the line that declared the model (no user frame is on the stack)
    assert "1: linear" in err and "shape.py:4" in err
    path = write(tmp_path, "noinputs.py", "from graphforge import nn\nmodel = nn.Linear(2, 3)\n")
    assert main(["compile", path, "-o", str(tmp_path / "o.onnx")]) == 2
    assert "no `inputs`" in capsys.readouterr().err


def test_batch_without_a_symbolic_dim(tmp_path, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "static.py", """
        import graphforge as gf
        model = gf.relu
        inputs = gf.TensorSpec((2, 3))
    """)
    assert main(["compile", path, "-o", str(tmp_path / "o.onnx"), "--batch", "4"]) == 2
    assert "no input has a symbolic batch dim" in capsys.readouterr().err


def test_print_after_a_pass_the_pipeline_does_not_run(tmp_path, capsys):
    from graphforge.cli import main

    assert main(["compile", MLP_EXAMPLE, "-o", str(tmp_path / "o.onnx"), "--passes", "infer,dce",
                 "--print-after", "fuse"]) == 2
    assert "not in the pipeline" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_model_file_forms(tmp_path):
    """model as an instance, a Module class (:ATTR), a function, make_model(), a traced Graph."""
    from graphforge.cli.modelfile import load_model_file, trace_model

    small = write(tmp_path, "small.py", SMALL_MODEL)
    mf = load_model_file(small)
    assert (mf.attr, mf.seed, mf.sample_inputs.shape) == ("model", 3, (4, 6))
    g = trace_model(mf)
    assert [n.op for n in g.nodes] == ["linear", "relu", "linear", "tanh"]
    assert str(g.inputs[0].type) == "f32[batch,6]"
    by_class = trace_model(load_model_file(small + ":Net"))
    assert by_class.op_counts() == g.op_counts()
    fn = write(tmp_path, "fn.py", """
        import graphforge as gf
        def model(a, b):
            return gf.relu(a) + b
        inputs = [gf.TensorSpec(("batch", 3)), gf.TensorSpec(("batch", 3))]
    """)
    g_fn = trace_model(load_model_file(fn), batch=5)
    assert [v.name for v in g_fn.inputs] == ["a", "b"] and g_fn.outputs[0].type.shape == (5, 3)
    traced = write(tmp_path, "traced.py", """
        import graphforge as gf
        from graphforge import nn
        def make_model():
            net = nn.seq().add(nn.Linear(4, 2))
            return gf.trace(net, gf.TensorSpec(("batch", 4)), seed=0)
    """)
    mf = load_model_file(traced)
    assert isinstance(mf.model, gf.Graph) and str(mf.inputs[0]) == "f32[batch,4]"
    fixed = trace_model(mf, batch=7)
    assert fixed.outputs[0].type.shape == (7, 2) and mf.model.outputs[0].type.shape == ("batch", 2)
    x = np.ones((7, 4), np.float32)
    np.testing.assert_allclose(gf.run(fixed, x)[0], gf.run(mf.model, x)[0])


def test_examples_mlp_follows_the_convention():
    from graphforge.cli.modelfile import load_model_file, trace_model

    mf = load_model_file(MLP_EXAMPLE)
    assert mf.attr == "make_model"
    g = trace_model(mf)
    assert g.op_counts() == {"linear": 2, "relu": 1}
    assert trace_model(load_model_file(MLP_EXAMPLE + ":MLP")).op_counts() == g.op_counts()


# ---- success paths (need the ONNX back end) ------------------------------------------------------

def test_examples_mlp_compiles_verifies_and_runs_at_any_batch(tmp_path):
    """The acceptance check: one ONNX file from examples/mlp.py, run at batch 1, 7 and 64."""
    import onnxruntime as ort

    from graphforge.cli.modelfile import load_model_file, trace_model

    out = tmp_path / "mlp.onnx"
    proc = run_cli("compile", MLP_EXAMPLE, "-o", str(out), "--verify", "--report")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for needle in ("nodes       3 traced -> 2 after 'default'", "parameters  101,770", "FLOPs       ", "opset",
                   f"output      {out}", "verify      ok: random inputs (batch=3)", "time ", "pass ", "fuse"):
        assert needle in text, (needle, text)
    assert "Traceback" not in proc.stderr
    assert leftovers(tmp_path) == ["mlp.onnx"]  # no staging folder left behind

    reference = trace_model(load_model_file(MLP_EXAMPLE))  # same file, same seed -> same weights
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert isinstance(inp.shape[0], str) and inp.shape[1] == 784  # the batch stays a dim_param
    rng = np.random.default_rng(0)
    for batch in (1, 7, 64):
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        got = session.run(None, {inp.name: x})[0]
        want = gf.run(reference, x, backend="reference")[0]
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fixed_batch_print_after_and_sample_inputs(tmp_path, capsys):
    import onnxruntime as ort

    from graphforge.cli import main

    small = write(tmp_path, "small.py", SMALL_MODEL)
    out = tmp_path / "fixed.onnx"
    assert main(["compile", small, "-o", str(out), "--batch", "5", "--print-after", "fuse", "--verify"]) == 0
    text = capsys.readouterr().out
    assert "// IR after fuse" in text and "f32[5,6]" in text
    assert "FLOPs per example" not in text  # with every dim fixed the count is for the whole batch
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [5, 6]
    # dynamic: the file's sample_inputs (batch 4) are checked too
    assert main(["compile", small, "-o", str(tmp_path / "dyn.onnx"), "--verify", "--passes", "none"]) == 0
    text = capsys.readouterr().out
    assert "sample_inputs: max abs error" in text and "4 traced -> 4 after 'none'" in text


def test_traced_graph_attribute_compiles(tmp_path, capsys):
    from graphforge.cli import main

    path = write(tmp_path, "graphfile.py", """
        import graphforge as gf
        from graphforge import nn
        net = nn.seq().add(nn.Linear(4, 3)).add_fn(gf.sigmoid)
        encoder = gf.trace(net, gf.TensorSpec(("n", 4)), seed=1)
    """)
    assert main(["compile", path + ":encoder", "-o", str(tmp_path / "g.onnx"), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "(encoder)" in text and "random inputs (n=3)" in text


def test_unsupported_ops_are_all_listed_with_their_lines(tmp_path):
    path = write(tmp_path, "custom.py", """
        import numpy as np
        import graphforge as gf
        from graphforge import nn
        from graphforge.ops.registry import NOT_DIFFERENTIABLE, OpDef, register_op
        from graphforge.trace.tensor import apply

        # a user-defined op with a NumPy reference but no ONNX lowering
        register_op(OpDef("my_swish", type_rule=lambda types, attrs: [types[0]],
                          reference=lambda xs, attrs, env: [xs[0] / (1 + np.exp(-xs[0]))],
                          vjp=NOT_DIFFERENTIABLE))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                h = apply("my_swish", self.fc(x))
                return apply("my_swish", h * 2.0)

        model = Net()
        inputs = gf.TensorSpec(("batch", 4))
    """)
    proc = run_cli("compile", path, "-o", str(tmp_path / "c.onnx"))
    assert_clean_failure(proc, "2 node(s) cannot be expressed", "my_swish at custom.py:19", "my_swish at custom.py:20",
                         code=2)
    assert leftovers(tmp_path) == ["custom.py"]


SIN_MODEL = """
    import graphforge as gf
    from graphforge import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 8)

        def forward(self, x):
            h = self.fc(x).relu()
            return gf.sin(h * 3.0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.block(x))

    model = Net()
    inputs = gf.TensorSpec(("batch", 6))
"""


def test_verify_names_the_node_a_wrong_lowering_breaks(tmp_path, capsys, monkeypatch):
    from graphforge.cli import main
    from graphforge.runtimes.onnx import LOWERINGS

    path = write(tmp_path, "sinnet.py", SIN_MODEL)
    monkeypatch.setitem(LOWERINGS, "sin", lambda ctx, args, attrs: [ctx.op("Cos", args)])
    assert main(["compile", path, "-o", str(tmp_path / "s.onnx"), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "--verify failed" in err and "max abs error" in err and "max rel error" in err
    node_report = err[err.index("first diverging node"):]
    assert node_report.startswith("first diverging node: sin")
    assert "scope: block" in node_report and "source: sinnet.py:12" in node_report
    assert "lowering of this node" in node_report
    assert leftovers(tmp_path) == ["sinnet.py"]  # the failed file is not left behind


def test_verify_names_the_node_whose_weight_is_corrupt_in_the_file(tmp_path, capsys, monkeypatch):
    import onnx
    from onnx import numpy_helper

    import graphforge.runtimes.onnx as backend
    from graphforge.cli import main

    real_save = backend.save_onnx

    def save_then_corrupt(graph, path, *args, **kwargs):
        result = real_save(graph, path, *args, **kwargs)
        model = onnx.load(path)
        for init in model.graph.initializer:
            if init.name == "head.weight":
                array = numpy_helper.to_array(init).copy()
                array[0, 0] += 0.5
                init.CopyFrom(numpy_helper.from_array(array, init.name))
        onnx.save(model, path)
        return result

    monkeypatch.setattr(backend, "save_onnx", save_then_corrupt)
    path = write(tmp_path, "sinnet.py", SIN_MODEL)
    assert main(["compile", path, "-o", str(tmp_path / "s.onnx"), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "first diverging node: linear" in err and "scope: head" in err and "sinnet.py:21" in err
    assert "head.weight (max abs 0.5)" in err
    assert leftovers(tmp_path) == ["sinnet.py"]
