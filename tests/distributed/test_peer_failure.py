"""Multi-process training fails cleanly (issue 20): a process that never starts, and a peer killed
or frozen mid-training, end in a typed PeerFailureError (exit status 3) within a bounded time,
naming the last good checkpoint — never an absl abort, a raw JaxRuntimeError or a hang."""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import time

import numpy as np
import pytest

from gf_testutil import free_port, spawn_train_process
from graphforge.train import peers
from graphforge.train.peers import PeerFailureError, guarded, rendezvous

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
    batch_size = 16

    def data():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((640, 6)).astype(np.float32)
        return x, (x[:, 0] > 0).astype(np.int64)
''')


def _start(tmp_path, pid, port, *extra):
    return spawn_train_process(tmp_path / "train.py", pid, port, *extra)


def _finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the process did not end within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def _assert_clean_failure(rc, out):
    assert rc == 3, out[-3000:]  # PEER_FAILURE, not SIGABRT (-6) or a traceback's 1
    assert "Traceback" not in out and "Check failure" not in out and "*** " not in out, out[-3000:]
    assert "graphforge train: process" in out, out[-3000:]


@pytest.mark.parametrize("pid", [0, 1], ids=["only-coordinator", "only-worker"])
def test_one_of_two_processes_started_is_a_typed_error_in_bounded_time(tmp_path, pid):
    (tmp_path / "train.py").write_text(TRAIN_FILE)
    start = time.monotonic()
    rc, out = _finish(_start(tmp_path, pid, free_port(), "--coordinator-timeout", "4"), timeout=50)
    _assert_clean_failure(rc, out)
    assert "within 4 s" in out
    assert ("[1] did not reach" in out) if pid == 0 else ("not reachable" in out)
    assert time.monotonic() - start < 45


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_peer_lost_mid_training_ends_survivor_with_last_checkpoint(tmp_path, how):
    (tmp_path / "train.py").write_text(TRAIN_FILE)
    ckpt = tmp_path / "ckpt"
    port = free_port()
    args = ("--epochs", "500", "--checkpoint-dir", str(ckpt), "--coordinator-timeout", "8")
    procs = [_start(tmp_path, pid, port, *args) for pid in (0, 1)]
    try:
        deadline = time.monotonic() + 40
        while not (ckpt.exists() and any(n.startswith("ckpt-") for n in os.listdir(ckpt))):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                "no checkpoint appeared:\n" + "\n".join(p.communicate()[0][-2000:] for p in procs if p.poll() is not None)
            time.sleep(0.2)
        os.kill(procs[1].pid, how)
        lost = time.monotonic()
        rc, out = _finish(procs[0], timeout=40)
        elapsed = time.monotonic() - lost
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    _assert_clean_failure(rc, out)
    assert "last good checkpoint:" in out and str(ckpt / "ckpt-") in out and "--resume" in out, out[-2000:]
    if how == signal.SIGKILL:
        assert "a peer process is gone" in out and elapsed < 15, (elapsed, out[-2000:])
    else:  # a frozen peer raises nothing: the watchdog's deadline (8 s) ends the wait
        assert "no progress within 8 s" in out and elapsed < 30, (elapsed, out[-2000:])


# ---- the pieces, in-process ------------------------------------------------------------------------

@pytest.fixture
def fresh_watchdog(monkeypatch):
    w = peers.Watchdog()
    monkeypatch.setattr(peers, "watchdog", w)
    w.configure(timeout_s=0.5, checkpoint_dir=None, process_id=1, num_processes=2)
    return w


def test_guarded_returns_results_and_reraises_ordinary_errors(fresh_watchdog):
    assert guarded(lambda a: a + 1, 41) == 42
    with pytest.raises(ZeroDivisionError):
        guarded(lambda: 1 / 0)
    assert not fresh_watchdog.failed


def test_guarded_deadline_names_checkpoint(fresh_watchdog, tmp_path):
    fresh_watchdog.checkpoint_completed(12)
    start = time.monotonic()
    with pytest.raises(PeerFailureError, match="no progress within 0.5 s") as info:
        guarded(time.sleep, 5, what="a train step")
    assert time.monotonic() - start < 2
    assert info.value.checkpoint == "ckpt-00000012" and "--resume" in str(info.value)
    assert info.value.exit_code == 3 and fresh_watchdog.failed
    with pytest.raises(PeerFailureError, match="already lost a peer"):
        guarded(lambda: 1)


def test_guarded_maps_runtime_peer_errors(fresh_watchdog):
    class JaxRuntimeError(RuntimeError):
        pass

    def lost():
        raise JaxRuntimeError("UNKNOWN: Gloo all-reduce failed: Connection closed by peer [127.0.0.1]:1")

    with pytest.raises(PeerFailureError, match="a peer process is gone.*Gloo"):
        guarded(lost)


def test_guarded_keeps_the_callers_x64_mode(fresh_watchdog):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        assert guarded(lambda: jnp.zeros(2, jnp.int64).dtype, timeout_s=60) == np.int64


def test_rendezvous_gathers_all_processes_on_loopback():
    port, errors, left = free_port(), [], {}

    def proc(pid):
        try:
            left[pid] = rendezvous(f"127.0.0.1:{port}", 3, pid, timeout_s=10)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=proc, args=(pid,)) for pid in (2, 0, 1)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(15)
    assert not errors and sorted(left) == [0, 1, 2] and all(v > 1 for v in left.values())


def test_rendezvous_refuses_a_disagreeing_process_count():
    port, errors = free_port(), []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(PeerFailureError, rendezvous,
                                                                    f"127.0.0.1:{port}", 2, 0, timeout_s=5)))
    t.start()
    time.sleep(0.2)
    with pytest.raises(PeerFailureError):
        rendezvous(f"127.0.0.1:{port}", 3, 1, timeout_s=5)
    t.join(10)
    assert "--num-processes 3" in str(errors[0].value)
