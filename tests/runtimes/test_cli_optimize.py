"""graphforge optimize IN.onnx -o OUT.onnx: import → passes → export, outputs verified in onnxruntime."""
from __future__ import annotations

import argparse
import os
import sys

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conformance.models import small_cnn  # noqa: E402
from gf_testutil import zip_outputs  # noqa: E402

from graphforge.cli import optimize as cli_optimize  # noqa: E402


def _parse(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    cli_optimize.add_parser(sub)
    return ap.parse_args(["optimize", *argv])


def test_optimize_small_cnn(tmp_path, capsys):
    src, dst = tmp_path / "cnn.onnx", tmp_path / "cnn_opt.onnx"
    onnx.save(small_cnn(), str(src))
    assert cli_optimize.run(_parse([str(src), "-o", str(dst), "--dim", "N=3"])) == 0
    out = capsys.readouterr().out
    assert "10 ONNX nodes" in out and "outputs match" in out
    onnx.checker.check_model(onnx.load(str(dst)), full_check=True)


def test_optimize_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    # bad input is USAGE (2) like every other command (it was 1 before issue 20, see apps/cli/exitcodes.py)
    assert cli_optimize.run(_parse([str(bad), "-o", str(tmp_path / "o.onnx")])) == 2
    assert "graphforge optimize:" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_compare_detects_a_difference(tmp_path):
    """The output check really compares: a model with different weights is reported."""
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(small_cnn(seed=0), str(a))
    onnx.save(small_cnn(seed=1), str(b))
    feeds = cli_optimize.random_feeds(str(a), {"N": 2})
    with pytest.raises(AssertionError):
        cli_optimize.compare_onnx_files(str(a), str(b), feeds, 1e-4, 1e-5)
    assert cli_optimize.compare_onnx_files(str(a), str(a), feeds, 1e-4, 1e-5) == 0.0


# SqueezeNet's 1000 logits are all 9.475692e9 (its light weights are constants), where float32 spacing is
# 1024: onnxruntime's conv accumulation moves some by one ulp (relative 8.6e-7) — for the unoptimised import
# too — and softmax turns that into 0.00133 vs 0. Neither its expected softmax nor the CLI's own elementwise
# check (original vs optimised file in onnxruntime, 0.002 vs 0.001) is meaningful: it runs with --no-check
# and its outputs must be probability distributions.
ILL_CONDITIONED = {"squeezenet"}


def _optimize_light(name, tmp_path, capsys):
    """`graphforge optimize` on a light model: node count kept or smaller, outputs still onnx's expected ones."""
    import numpy as np
    import onnxruntime as ort

    from conformance.light import LIGHT_DIR, light_case

    model, feeds, expected = light_case(name)
    src, dst = os.path.join(LIGHT_DIR, f"light_{name}.onnx"), tmp_path / f"{name}_opt.onnx"
    check = ["--no-check"] if name in ILL_CONDITIONED else []
    assert cli_optimize.run(_parse([src, "-o", str(dst), *check])) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert ("outputs match" in out) != bool(check)
    opt = onnx.load(str(dst))
    assert len(opt.graph.node) <= len(model.graph.node), out
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), feeds.values())})
    for g, e in zip_outputs(got, expected):
        if name in ILL_CONDITIONED:
            assert np.isfinite(g).all() and (g >= 0).all()
            np.testing.assert_allclose(g.sum(), 1.0, rtol=1e-5)
        else:
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-7)  # onnx's model-test tolerances


def test_optimize_light_alexnet(tmp_path, capsys):
    _optimize_light("bvlc_alexnet", tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                                  "squeezenet", "vgg19", "zfnet512"])
def test_optimize_light_models(name, tmp_path, capsys):
    _optimize_light(name, tmp_path, capsys)
