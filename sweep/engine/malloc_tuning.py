"""Keep freed tensor memory in the process, so CPU training steps stop page-faulting.

PyTorch's CPU tensors come from glibc's ``malloc``, which returns large freed blocks to the kernel;
a training step allocates and frees dozens of 1-16 MiB activations, so every step maps fresh pages
and faults on each one. :func:`retain_freed_memory` raises glibc's mmap and trim thresholds once per
process (``mallopt``), so freed blocks stay mapped and the next step reuses them (the effect people
get from preloading jemalloc or tcmalloc). A process then keeps the peak of its heap, which is what
the next trial of a sweep needs anyway. ``mallopt`` does not reach the malloc arenas of other
threads, and Ray Tune trains in a worker thread, so :func:`worker_env` gives the same settings as
environment variables glibc reads at process start, which ``sweep run`` hands to its workers. Only
glibc has these knobs; elsewhere this does nothing and says so. ``SWEEP_KEEP_FREED_MEMORY=0`` turns
both off. Measurements: BENCHMARKS.md, "CPU levers".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap, not from a fresh mmap
TRIM_THRESHOLD = 2**31 - 1  # free heap top returned to the kernel only above 2 GiB (mallopt takes an int)

_applied: bool | None = None
DISABLE_VARIABLE = "SWEEP_KEEP_FREED_MEMORY"  # "0": leave glibc's defaults alone


def enabled() -> bool:
    """False when the user set SWEEP_KEEP_FREED_MEMORY=0; True when unset or 1."""
    value = os.environ.get(DISABLE_VARIABLE, "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"{DISABLE_VARIABLE} must be 0 (off) or 1 (on, the default), got {value!r}")
    return value == "1"


def worker_env() -> dict[str, str]:
    """Environment variables for worker processes: the same thresholds as :func:`retain_freed_memory`
    for every thread of the process (one malloc arena), read by glibc at process start.

    Empty when disabled or off Linux. Variables the user already set are not overridden.
    """
    if not enabled() or not sys.platform.startswith("linux"):
        return {}
    wanted = {
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    }
    return {k: v for k, v in wanted.items() if k not in os.environ}


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they are in effect.

    Idempotent and cheap after the first call. Returns False (and changes nothing) where the C
    library is not glibc or refuses a value.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not enabled() or not sys.platform.startswith("linux"):
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt to call
        return _applied
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
