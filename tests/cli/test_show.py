"""``graphforge show``: text IR of .py/.gf/.onnx files, DOT from ``to_networkx()``, SVG through Graphviz."""
from __future__ import annotations

import os
import re
import stat

from cli_helpers import MLP_EXAMPLE, SMALL_MODEL, assert_clean_failure, leftovers, run_cli, write


def test_text_of_a_model_file_round_trips_through_a_gf_file(tmp_path, capsys):
    from graphforge.cli import main

    small = write(tmp_path, "small.py", SMALL_MODEL)
    assert main(["show", small]) == 0
    text = capsys.readouterr().out
    assert text.startswith("graph net(%x: f32[batch,6])") and "@fc1 (small.py:" in text
    ir = tmp_path / "net.gf"
    ir.write_text(text)
    assert main(["show", str(ir)]) == 0
    assert capsys.readouterr().out == text
    assert main(["show", MLP_EXAMPLE + ":MLP", "--batch", "7"]) == 0
    assert "f32[7,10]" in capsys.readouterr().out


def test_onnx_file_is_imported(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    from graphforge.cli import main

    bias = helper.make_tensor("bias", TensorProto.FLOAT, [3], [0.5, -1.0, 2.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
                              "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [bias])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["show", str(path)]) == 0
    text = capsys.readouterr().out
    assert "add(" in text and "relu(" in text and "f32[n,3]" in text


def test_dot_has_every_vertex_and_edge(tmp_path, capsys):
    from graphforge.cli import main
    from graphforge.cli.modelfile import load_model_file, trace_model

    small = write(tmp_path, "small.py", SMALL_MODEL)
    out = tmp_path / "net.dot"
    assert main(["show", small, "--format", "dot", "-o", str(out)]) == 0
    dot = out.read_text()
    nxg = trace_model(load_model_file(small)).to_networkx()
    assert dot.startswith('digraph "net" {') and dot.rstrip().endswith("}")
    for key in nxg.nodes:
        assert re.search(rf'^  "{re.escape(key)}" \[label=', dot, re.M), key
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)"', dot, re.M)
    assert sorted(edges) == sorted(nxg.edges)
    assert '"n0:linear" [label="linear\\nfc1\\nsmall.py:' in dot  # op, scope and source line
    assert leftovers(tmp_path) == ["net.dot", "small.py"]


def test_svg_without_graphviz_is_a_clear_error(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = dict(os.environ, PATH=str(empty_bin))  # no `dot` on PATH (the interpreter is an absolute path)
    out = tmp_path / "net.svg"
    proc = run_cli("show", MLP_EXAMPLE, "--format", "svg", "-o", str(out), env=env)
    assert_clean_failure(proc, "needs Graphviz's `dot` program", "install Graphviz", code=2)
    assert not out.exists()


def test_svg_is_rendered_by_the_dot_program(tmp_path, capsys, monkeypatch):
    from graphforge.cli import main

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "dot"
    # a stand-in for Graphviz: checks the format flag and wraps the DOT it reads in an <svg> element
    fake.write_text('#!/bin/sh\n[ "$1" = "-Tsvg" ] || exit 3\nprintf "<svg>"; cat; printf "</svg>\\n"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(fake_bin) + os.pathsep + os.environ.get("PATH", ""))
    out = tmp_path / "mlp.svg"
    assert main(["show", MLP_EXAMPLE, "--format", "svg", "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.startswith('<svg>digraph "mlp" {') and svg.endswith("</svg>\n")


def test_bad_inputs(tmp_path, capsys):
    from graphforge.cli import main

    bad_ir = tmp_path / "bad.gf"
    bad_ir.write_text("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%nope)\n  return %0 as y\n}\n")
    assert main(["show", str(bad_ir)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "model.txt")]) == 2
    assert "expected a .py model file" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["show", MLP_EXAMPLE, "-o", str(tmp_path / "no" / "such" / "dir.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert leftovers(tmp_path) == ["bad.gf"]


ENCODER_MODEL = '''
import graphforge as gf
from graphforge import nn

model = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True)
inputs = gf.TensorSpec(("batch", "seq", 16), "float32")
seed = 0
'''


def test_an_onnxruntime_only_file_reads_back_and_optimizes_to_portable_onnx(tmp_path, capsys):
    """A file written with --contrib-ops (com.microsoft Attention, BiasGelu) shows as graphforge ops,
    and ``graphforge optimize`` turns it into standard ONNX that onnxruntime runs to the same outputs."""
    import onnx

    from graphforge.cli import main

    model = write(tmp_path, "enc.py", ENCODER_MODEL)
    ort_only, portable = str(tmp_path / "enc-ort.onnx"), str(tmp_path / "enc-portable.onnx")
    assert main(["compile", model, "-o", ort_only, "--contrib-ops"]) == 0
    assert "com.microsoft" in {n.domain for n in onnx.load(ort_only).graph.node}
    capsys.readouterr()
    assert main(["show", ort_only]) == 0
    text = capsys.readouterr().out
    assert "attention(" in text and "gelu(" in text and "f32[batch,seq,16]" in text
    assert main(["optimize", ort_only, "-o", portable, "--dim", "batch=2", "--dim", "seq=5"]) == 0
    assert "check: onnxruntime outputs match" in capsys.readouterr().out
    assert {n.domain for n in onnx.load(portable).graph.node} <= {"", "ai.onnx"}
