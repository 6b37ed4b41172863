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
