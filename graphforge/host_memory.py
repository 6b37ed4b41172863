"""``gf.retain_host_memory``: keep large freed host blocks in the process instead of handing them
back to the OS every step (glibc only; opt-in).

Why: on CPU, XLA takes each step's scratch buffer (tens of MiB for an LSTM or Transformer step) from
``malloc``. glibc serves any block above its mmap threshold (dynamic, at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` on free, so every step touches fresh pages: measured on the
LSTM benchmark step (2 layers, hidden 256, 54 MiB of XLA scratch) as ~17k page faults a step and
about a fifth of its CPU time. Raising the mmap and trim thresholds keeps those blocks in the heap,
where the next step reuses them: the same step went from 102.0 to 93.8 ms on a quiet 2-core VM
(2026-12-03, docs/training.md, "Host memory"). PyTorch users get the same effect from jemalloc or
tcmalloc via ``LD_PRELOAD``; this needs no preload.

The cost is that freed large blocks stay in the process (its RSS stays at its peak) — usual for a
training process, surprising for a library, hence opt-in and process-wide, like the allocator it
configures. It must be called before the memory it should govern is allocated (at start-up).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

from .errors import ConfigError

__all__ = ["retain_host_memory"]

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MAX = 1 << 30  # mallopt's value is a C int; the trim threshold is twice this


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # musl and others lack it: their malloc has no mallopt to speak of
    except (OSError, AttributeError):
        return None
    return libc


def retain_host_memory(threshold_bytes: int = 1 << 30, *, max_arenas: int | None = None) -> bool:
    """Serve host allocations up to ``threshold_bytes`` from the heap and keep freed blocks there,
    so a training loop reuses its per-step scratch instead of faulting in fresh pages every step.

    Args:
        threshold_bytes: blocks up to this size come from the heap (glibc's ``M_MMAP_THRESHOLD``);
            the heap is trimmed only above twice this much free at its top (``M_TRIM_THRESHOLD``).
        max_arenas: optionally cap glibc's per-thread arenas (``M_ARENA_MAX``); 1 puts XLA's worker
            threads' blocks in the one heap too (fewer faults still, more lock contention).

    Returns:
        True when applied (Linux with glibc); False where the allocator is another one (nothing is
        changed there).

    Raises:
        ConfigError: a threshold that is not a positive integer, or one glibc refuses.

    Example:
        ```python
        import graphforge as gf

        gf.retain_host_memory()   # once, at start-up, before the training loop allocates
        ```
    """
    if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int) or not 0 < threshold_bytes <= _MAX:
        raise ConfigError(f"retain_host_memory: threshold_bytes must be an int in 1..{_MAX} (mallopt takes a C int), "
                          f"got {threshold_bytes!r}")
    if max_arenas is not None and (isinstance(max_arenas, bool) or not isinstance(max_arenas, int)
                                   or not 0 < max_arenas <= 1024):
        raise ConfigError(f"retain_host_memory: max_arenas must be an int in 1..1024 or None, got {max_arenas!r}")
    libc = _glibc()
    if libc is None:
        return False
    settings = [(_M_MMAP_THRESHOLD, threshold_bytes, "threshold_bytes"),
                (_M_TRIM_THRESHOLD, min(2 * threshold_bytes, 2 ** 31 - 1), "threshold_bytes")]
    if max_arenas is not None:
        settings.append((_M_ARENA_MAX, max_arenas, "max_arenas"))
    for param, value, name in settings:
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            raise ConfigError(f"retain_host_memory: glibc refused {name}={value} (mallopt returned 0); "
                              "try a smaller threshold")
    return True
