"""Helpers for the CLI tests: model files as text, running the CLI as a user does, checking failures."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

__all__ = ["ROOT", "MLP_EXAMPLE", "SMALL_MODEL", "run_cli", "assert_clean_failure", "write",
           "leftovers"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MLP_EXAMPLE = os.path.join(ROOT, "examples", "mlp.py")

# A small model file following the convention: module-level model + inputs + sample_inputs + seed.
SMALL_MODEL = textwrap.dedent('''
    import numpy as np
    import graphforge as gf
    from graphforge import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            h = self.fc1(x).relu()
            return self.fc2(h).tanh()

    model = Net()
    inputs = gf.TensorSpec(("batch", 6), "float32")
    sample_inputs = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    seed = 3
''')


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run_cli(*args: str, cwd=None, env=None, timeout: int = 180) -> subprocess.CompletedProcess:
    """``python -m graphforge.cli ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "graphforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env=env)


def assert_clean_failure(proc: subprocess.CompletedProcess, *needles: str, code: int | None = None) -> str:
    """A non-zero exit with a message containing every needle and no Python traceback."""
    err = proc.stderr
    assert proc.returncode != 0, (proc.stdout, err)
    if code is not None:
        assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def leftovers(directory) -> list[str]:
    """Files in ``directory`` (staging folders included) — what a failed command must not leave."""
    return sorted(os.listdir(directory))
