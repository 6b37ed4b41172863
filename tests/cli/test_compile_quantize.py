"""``graphforge compile --quantize``: int8 with a calibration file, int8-dynamic, int4, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import SMALL_MODEL, assert_clean_failure, leftovers, run_cli, write

pytest.importorskip("onnxruntime")


def _compile(*args) -> int:
    from graphforge.cli import main

    return main(["compile", *args])


@pytest.mark.parametrize("mode", ["int8", "int8-dynamic", "int4"])
def test_quantized_compile_writes_a_smaller_runnable_file(tmp_path, capsys, mode):
    import onnxruntime as ort

    model = write(tmp_path, "net.py", SMALL_MODEL.replace("nn.Linear(6, 8)", "nn.Linear(6, 256)")
                  .replace("nn.Linear(8, 3)", "nn.Linear(256, 3)"))
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32))
    plain, quant = str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx")
    assert _compile(model, "-o", plain) == 0
    extra = ["--calibration", str(calib), "--calibration-method", "percentile"] if mode == "int8" else []
    assert _compile(model, "-o", quant, "--quantize", mode, *extra, "--verify", "--atol", "0.05", "--rtol", "0.05") == 0
    out = capsys.readouterr().out
    assert "quantized" in out and "verify      ok" in out
    if mode == "int8":
        assert "percentile ranges from 300 calibration rows" in out
    # a 6-input layer carries a scale and a bias per 6 weights: far from 4x here (the CNN test checks 3.5x)
    assert (tmp_path / "q.onnx").stat().st_size < 0.75 * (tmp_path / "f.onnx").stat().st_size
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    f = ort.InferenceSession(plain, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    q = ort.InferenceSession(quant, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(f - q).max() < 0.1


def test_int8_without_calibration_is_a_clean_error(tmp_path):
    model = write(tmp_path, "net.py", SMALL_MODEL)
    proc = run_cli("compile", model, "-o", str(tmp_path / "q.onnx"), "--quantize", "int8")
    assert_clean_failure(proc, "--quantize int8 needs --calibration", code=2)
    assert leftovers(tmp_path) == ["net.py"]


def test_calibration_file_must_name_the_inputs(tmp_path):
    model = write(tmp_path, "net.py", SMALL_MODEL)
    calib = tmp_path / "c.npz"
    np.savez(calib, a=np.zeros((4, 6), np.float32), b=np.zeros((4, 6), np.float32))
    proc = run_cli("compile", model, "-o", str(tmp_path / "q.onnx"), "--quantize", "int8", "--calibration", str(calib))
    assert_clean_failure(proc, "the model's input is 'x'", code=2)
    proc = run_cli("compile", model, "-o", str(tmp_path / "q.onnx"), "--calibration", str(calib))
    assert_clean_failure(proc, "only used with --quantize int8", code=2)


def test_contrib_ops_flag_emits_onnxruntime_kernels(tmp_path, capsys):
    import onnx

    model = write(tmp_path, "enc.py", """
        import graphforge as gf
        from graphforge import nn
        model = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu")
        inputs = gf.TensorSpec(("batch", 5, 16), "float32")
    """)
    fused, plain = str(tmp_path / "fused.onnx"), str(tmp_path / "plain.onnx")
    assert _compile(model, "-o", fused, "--contrib-ops", "--verify") == 0
    assert _compile(model, "-o", plain, "--portable") == 0
    capsys.readouterr()
    assert "Attention" in {n.op_type for n in onnx.load(fused).graph.node}  # q/k/v packed into one kernel
    assert {o.domain for o in onnx.load(plain).opset_import} == {""}
    proc = run_cli("compile", model, "-o", str(tmp_path / "x.onnx"), "--contrib-ops", "--portable")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_quantized_files_keep_provenance_in_a_table_unless_asked(tmp_path):
    import onnx

    from graphforge.runtimes.onnx.provenance import METADATA_KEY, node_provenance

    model = write(tmp_path, "net.py", SMALL_MODEL)
    sizes = {}
    for flag in (None, "names", "none"):
        path = str(tmp_path / f"q-{flag}.onnx")
        assert _compile(model, "-o", path, "--quantize", "int8-dynamic", *(["--provenance", flag] if flag else [])) == 0
        proto = onnx.load(path)
        sizes[flag] = len(proto.SerializeToString())
        named = all(n.name for n in proto.graph.node)
        table = any(p.key == METADATA_KEY for p in proto.metadata_props)
        assert (named, table) == {None: (False, True), "names": (True, False), "none": (False, False)}[flag]
        if flag is None:
            assert any(scope for _, scope, _ in node_provenance(proto))
    assert sizes["none"] < sizes[None] < sizes["names"]


def test_weight_scales_per_tensor(tmp_path, capsys):
    import onnx

    model = write(tmp_path, "net.py", SMALL_MODEL)
    out = str(tmp_path / "q.onnx")
    assert _compile(model, "-o", out, "--quantize", "int8-dynamic", "--weight-scales", "tensor", "--verify",
                    "--atol", "0.05", "--rtol", "0.05") == 0
    assert "per-tensor weight scales" in capsys.readouterr().out
    m = onnx.load(out)
    consts = {t.name: t for t in m.graph.initializer}
    consts.update({n.output[0]: n.attribute[0].t for n in m.graph.node if n.op_type == "Constant"})
    producer = {o: n for n in m.graph.node for o in n.output}
    # the weight scale each rescale multiplies the activation's scale by: one value each
    scales = [n.input[1] for n in m.graph.node if n.op_type == "Mul" and n.input[0] in producer
              and producer[n.input[0]].op_type == "DynamicQuantizeLinear"]
    assert scales and all(int(np.prod(consts[s].dims)) == 1 for s in scales)


@pytest.mark.parametrize("extra,message", [([], "only used with --quantize int8 or int8-dynamic"),
                                           (["--quantize", "int4"], "int4 scales are per block")])
def test_weight_scales_needs_an_int8_mode(tmp_path, extra, message):
    model = write(tmp_path, "net.py", SMALL_MODEL)
    proc = run_cli("compile", model, "-o", str(tmp_path / "q.onnx"), "--weight-scales", "tensor", *extra)
    assert_clean_failure(proc, message, code=2)
    assert leftovers(tmp_path) == ["net.py"]
