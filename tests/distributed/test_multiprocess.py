"""Two processes on loopback train together (``graphforge train --num-processes 2 --process-id I
--coordinator 127.0.0.1:PORT``, gloo CPU collectives) and match the single-process run step for
step; process 0 alone writes checkpoints; a resumed two-process run reads them back on both, here
with the first layer sharded over a ``model`` axis spanning the two processes."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

from gf_testutil import free_port, spawn_train_process
from graphforge.train.trainer import TIMING_KEYS

pytest.importorskip("optax")

TRAIN_FILE = textwrap.dedent('''
    import numpy as np
    import optax
    import graphforge as gf
    from graphforge import nn

    model = nn.seq().add(nn.Linear(6, 16)).add_fn(gf.relu).add(nn.Linear(16, 3))
    inputs = [gf.TensorSpec(("batch", 6))]
    targets = gf.TensorSpec(("batch",), "int64")
    loss = nn.functional.cross_entropy
    optimizer = optax.adam(1e-2)
    metrics = {"accuracy": nn.functional.accuracy}
    batch_size = 16

    def data():
        # 87 rows: the last batch of 7 rows does not divide 2 processes (replicated fallback)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((87, 6)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
        return x, y, x[:21], y[:21]
''')
# the same model with its first Linear split over the two processes (use with --mesh data=1,model=2)
SHARDED = TRAIN_FILE + 'param_sharding = {"0.weight": ("model", None), "0.bias": ("model",)}\n'


def _launch(train_file, dirs, extra=(), timeout=240):
    """Both processes of one run; returns their (rc, output). Kills both if they overrun."""
    port = free_port()
    procs = [spawn_train_process(train_file, pid, port, "--coordinator-timeout", "60", "--checkpoint-dir", str(d),
                                 *extra) for pid, d in enumerate(dirs)]
    outs = []
    try:
        for p in procs:
            outs.append((p.wait(timeout=timeout), p.stdout.read()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        pytest.fail("the two-process run did not finish in time:\n" + "\n".join(p.stdout.read() for p in procs))
    finally:
        for p in procs:
            p.stdout.close()
    return outs


def _reference(train_file, epochs):
    import graphforge as gf
    from graphforge.cli.train import load_train_file

    ns = load_train_file(str(train_file))
    t = gf.Trainer(ns["model"], ns["loss"], ns["optimizer"], inputs=ns["inputs"], targets=ns["targets"],
                   metrics=ns["metrics"], progress=False)
    x, y, xv, yv = ns["data"]()
    history = t.fit(x, y, epochs=epochs, batch_size=ns["batch_size"], validation_data=(xv, yv))
    return t, history


def _meta(directory, step):
    with open(os.path.join(directory, f"ckpt-{step:08d}", "meta.json")) as f:
        return json.load(f)


def test_two_processes_train_together_and_match_one_process(tmp_path):
    train_file, sharded_file = tmp_path / "train_mp.py", tmp_path / "train_mp_sharded.py"
    train_file.write_text(TRAIN_FILE)
    sharded_file.write_text(SHARDED)
    d0, d1 = tmp_path / "ckpt0", tmp_path / "ckpt1"
    # phase 1: each process gets its own checkpoint dir, so we see who writes
    outs = _launch(train_file, [d0, d1], ["--epochs", "1"])
    assert [rc for rc, _ in outs] == [0, 0], "\n".join(o for _, o in outs)
    assert "epoch 1/1" in outs[0][1] and "epoch 1/1" not in outs[1][1]  # only process 0 prints
    assert sorted(os.listdir(d0)) == ["ckpt-00000006"]
    assert not d1.exists()  # process 1 never writes
    # phase 2: both resume from process 0's checkpoint and train one more epoch, the first layer's
    # weight (and its adam state) now split across the processes; saving gathers it
    outs = _launch(sharded_file, [d0, d0], ["--epochs", "2", "--resume", "--mesh", "data=1,model=2"])
    assert [rc for rc, _ in outs] == [0, 0], "\n".join(o for _, o in outs)
    assert "resumed from step 6" in outs[0][1]
    assert sorted(os.listdir(d0)) == ["ckpt-00000006", "ckpt-00000012"]
    assert not [n for n in os.listdir(d0) if n.startswith(".tmp")]

    ref, history = _reference(train_file, epochs=2)
    meta = _meta(d0, 12)
    assert len(meta["step_losses"]) == 12
    np.testing.assert_allclose(meta["step_losses"], ref.step_losses, rtol=0, atol=1e-5)
    for key, values in history.items():
        if key in TIMING_KEYS:
            continue  # wall-clock throughput differs run to run
        np.testing.assert_allclose(meta["history"][key], values, rtol=0, atol=1e-5)
    from graphforge.params_io import load_arrays
    params, _ = load_arrays(os.path.join(d0, "ckpt-00000012", "params.safetensors"))
    for name, value in ref.params.items():
        np.testing.assert_allclose(params[name], value, rtol=0, atol=1e-5)
