"""``gf.retain_host_memory``: after it, a freed large block is reused from the heap (no fresh pages
per allocation); bad arguments are typed errors. Measured in a fresh process: the allocator's
thresholds are process-wide and must not leak into the other tests."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import graphforge as gf

_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import graphforge as gf
    applied = gf.retain_host_memory(128 << 20) if sys.argv[1] == "retain" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    n = 48 << 20                      # above glibc's largest dynamic mmap threshold (32 MiB)
    for _ in range(2):
        a = np.empty(n, np.uint8); a.fill(1); del a
    before = faults()
    for _ in range(8):
        a = np.empty(n, np.uint8); a.fill(1); del a
    print(applied, (faults() - before) / 8)
""")


def _faults_per_block(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    applied, per_block = out.stdout.split()
    return applied, float(per_block)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_large_block_is_reused_instead_of_faulted_in_again():
    applied, retained = _faults_per_block("retain")
    if applied == "False":
        pytest.skip("not glibc: retain_host_memory leaves the allocator alone")
    _, default = _faults_per_block("default")
    assert default > 100          # every 48 MiB block is fresh mmap'd pages under glibc's defaults
    assert retained < default / 20, (retained, default)


@pytest.mark.parametrize("kwargs, match", [
    (dict(threshold_bytes=0), "threshold_bytes"),
    (dict(threshold_bytes=2 ** 31), "threshold_bytes"),
    (dict(threshold_bytes=1.5e6), "threshold_bytes"),
    (dict(threshold_bytes=True), "threshold_bytes"),
    (dict(max_arenas=0), "max_arenas"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(gf.ConfigError, match=match):
        gf.retain_host_memory(**kwargs)
