"""SIGKILL a checkpointing training process at random moments, then check and resume.

After every kill: the newest checkpoint in the directory loads, it equals a checkpoint that was
being saved (same step, same parameter digest), it is not older than the last save that was
reported complete, and the next process resumes from exactly that checkpoint. Used by the CI test
(a handful of kills) and by ``make fuzz`` (``--kill-runs``, 50 or more).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["kill_campaign"]

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ckpt_child.py")


def _reader(proc, lines: list, event: threading.Event):
    for raw in proc.stdout:
        lines.append(raw.decode().strip())
        event.set()


def _start(directory: str):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    # stderr goes to a file: a pipe nobody drains could fill up and stall the child
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, CHILD, directory], stdout=subprocess.PIPE, stderr=err,
                            env=env, start_new_session=True)
    proc.err_file = err
    lines: list[str] = []
    event = threading.Event()
    t = threading.Thread(target=_reader, args=(proc, lines, event), daemon=True)
    t.start()
    return proc, lines, t


def _wait_for(lines, proc, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(predicate(l) for l in list(lines)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def kill_campaign(kills: int, seed: int = 0, directory: str | None = None, max_delay: float = 0.6) -> dict:
    """Run ``kills`` kill/resume rounds in one checkpoint directory; returns the figures."""
    from graphforge.train.checkpoint import latest_checkpoint, read_checkpoint
    from reliability.ckpt_child import digest

    rnd = random.Random(seed)
    own_dir = directory is None
    directory = directory or tempfile.mkdtemp(prefix="gf-killtest-")
    stats = {"kills": 0, "killed_mid_save": 0, "resumes_checked": 0, "bad": 0, "problems": []}
    announced: dict[int, set] = {}   # step -> digests being saved
    complete_step = -1               # newest step whose save returned
    expected_resume = None           # (step, digest) the next process must resume from
    proc = None
    try:
        for k in range(kills + 1):
            proc, lines, reader = _start(directory)
            first = _wait_for(lines, proc, lambda l: l.startswith(("resumed", "fresh")), timeout=120)
            if not first:
                proc.err_file.seek(0)
                err = proc.err_file.read().decode()[-2000:] if proc.poll() is not None else "timeout"
                stats["bad"] += 1
                stats["problems"].append(f"round {k}: child did not start: {err}")
                proc.kill()
                break
            head = next(l for l in lines if l.startswith(("resumed", "fresh")))
            if expected_resume is not None:
                stats["resumes_checked"] += 1
                _, step, dig = head.split()
                if (int(step), dig) != expected_resume:
                    stats["bad"] += 1
                    stats["problems"].append(f"round {k}: resumed {step} {dig}, expected {expected_resume}")
            if k == kills:  # the last round only checks the resume
                proc.kill()
                proc.wait()
                break
            # Kill somewhere in the save loop: after a random number of saves plus a random delay.
            n_before = len([l for l in lines if l.startswith("saving")])
            saves = rnd.randint(1, 3)
            _wait_for(lines, proc, lambda l: len([x for x in lines if x.startswith("saving")]) >= n_before + saves, 60)
            time.sleep(rnd.uniform(0, max_delay))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(timeout=5)
            stats["kills"] += 1
            for line in lines:
                parts = line.split()
                if parts[0] == "saving":
                    announced.setdefault(int(parts[1]), set()).add(parts[2])
                elif parts[0] == "saved":
                    complete_step = max(complete_step, int(parts[1]))
            if lines and lines[-1].startswith("saving"):
                stats["killed_mid_save"] += 1
            # The checks: the newest checkpoint loads and is one that was being saved, not older
            # than the newest completed save.
            latest = latest_checkpoint(directory)
            try:
                params, _, meta = read_checkpoint(directory)
            except Exception as exc:  # noqa: BLE001 - exactly what must not happen
                stats["bad"] += 1
                stats["problems"].append(f"round {k}: newest checkpoint {latest} does not load: {exc}")
                break
            step, dig = int(meta["step"]), digest(params)
            if dig not in announced.get(step, ()):
                stats["bad"] += 1
                stats["problems"].append(f"round {k}: checkpoint step {step} digest {dig} was never saved")
            if step < complete_step:
                stats["bad"] += 1
                stats["problems"].append(f"round {k}: newest loadable checkpoint is step {step}, but step "
                                         f"{complete_step} was saved completely")
            expected_resume = (step, dig)
    finally:
        if proc is not None and proc.poll() is None:  # never leave our child running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if own_dir:
            import shutil
            shutil.rmtree(directory, ignore_errors=True)
    return stats
