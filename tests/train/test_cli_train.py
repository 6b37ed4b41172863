"""``graphforge train FILE.py``: the train-file convention, checkpoints and resume."""
from __future__ import annotations

import argparse
import textwrap

import pytest

pytest.importorskip("optax")

TRAIN_FILE = textwrap.dedent('''
    import numpy as np
    import optax
    import graphforge as gf
    from graphforge import nn

    model = nn.seq().add(nn.Linear(4, 8)).add_fn(gf.relu).add(nn.Linear(8, 2))
    inputs = [gf.TensorSpec(("batch", 4))]
    targets = gf.TensorSpec(("batch",), "int64")
    loss = nn.functional.cross_entropy
    optimizer = optax.sgd(0.1)
    metrics = {"accuracy": nn.functional.accuracy}
    batch_size = 16

    def data():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        return x, y, x[:16], y[:16]
''')


def _args(parser_mod, argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    parser_mod.add_parser(sub)
    return parser.parse_args(argv)


def test_train_command_trains_checkpoints_and_resumes(tmp_path, capsys):
    from graphforge.cli import train as cli_train

    path = tmp_path / "model.py"
    path.write_text(TRAIN_FILE)
    ckpt = tmp_path / "ckpt"
    args = _args(cli_train, ["train", str(path), "--epochs", "2", "--checkpoint-dir", str(ckpt), "--quiet"])
    assert cli_train.run(args) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "val_accuracy" in out
    assert sorted(p.name for p in ckpt.iterdir()) == ["ckpt-00000004", "ckpt-00000008"]
    args = _args(cli_train, ["train", str(path), "--epochs", "3", "--checkpoint-dir", str(ckpt), "--resume",
                             "--quiet"])
    assert cli_train.run(args) == 0
    out = capsys.readouterr().out
    assert "resumed from step 8" in out and "epoch 3/3" in out
    # --epochs is the total: the resumed run trains the one missing epoch (4 steps), not 3 more
    assert "epoch 4/" not in out
    assert sorted(p.name for p in ckpt.iterdir())[-1] == "ckpt-00000012"


def test_train_command_reports_a_bad_file(tmp_path, capsys):
    from graphforge.cli import train as cli_train

    path = tmp_path / "bad.py"
    path.write_text("x = 1\n")
    assert cli_train.run(_args(cli_train, ["train", str(path), "--quiet"])) != 0
    assert "model" in capsys.readouterr().err


def _onnx_predict(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_train_export_and_compile_weights_give_the_trained_model(tmp_path, capsys):
    import numpy as np

    from graphforge.cli import compile as cli_compile
    from graphforge.cli import train as cli_train

    path = tmp_path / "model.py"
    path.write_text(TRAIN_FILE)
    ckpt, exported = tmp_path / "ckpt", tmp_path / "trained.onnx"
    assert cli_train.run(_args(cli_train, ["train", str(path), "--epochs", "2", "--checkpoint-dir", str(ckpt),
                                           "--export", str(exported), "--quiet"])) == 0
    assert f"wrote {exported}" in capsys.readouterr().out
    compiled, untrained = tmp_path / "compiled.onnx", tmp_path / "untrained.onnx"
    assert cli_compile.run(_args(cli_compile, ["compile", str(path), "-o", str(compiled), "--weights", str(ckpt)])) == 0
    assert cli_compile.run(_args(cli_compile, ["compile", str(path), "-o", str(untrained)])) == 0
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    trained = _onnx_predict(exported, x)
    np.testing.assert_allclose(_onnx_predict(compiled, x), trained, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_onnx_predict(untrained, x), trained, atol=1e-3)


def test_compile_weights_of_another_model_is_a_typed_error(tmp_path, capsys):
    import numpy as np

    import graphforge as gf
    from graphforge.cli import compile as cli_compile

    path = tmp_path / "model.py"
    path.write_text(TRAIN_FILE)
    wrong = tmp_path / "wrong.safetensors"
    gf.save_params({"0.weight": np.zeros((8, 5), np.float32)}, str(wrong))
    out = tmp_path / "m.onnx"
    assert cli_compile.run(_args(cli_compile, ["compile", str(path), "-o", str(out), "--weights", str(wrong)])) == 2
    err = capsys.readouterr().err
    assert "0.weight: shape [8, 5] in the state dict, [8, 4] in the model" in err and "missing 3" in err
    assert not out.exists()
    assert cli_compile.run(_args(cli_compile, ["compile", str(path), "-o", str(out), "--weights",
                                               str(tmp_path)])) == 2
    assert "no checkpoint in it" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--precision", "bf16-mixed"], ["--precision", "fp16-mixed", "--remat", "nothing"]])
def test_train_command_with_mixed_precision_and_remat(tmp_path, capsys, flags):
    from graphforge.cli import main

    path = tmp_path / "train_me.py"
    path.write_text(TRAIN_FILE)
    assert main(["train", str(path), "--epochs", "2", "--quiet", *flags]) == 0
    assert "epoch 2/2" in capsys.readouterr().out
