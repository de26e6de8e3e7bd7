"""Keep freed tensor memory in the process, so CPU training steps stop page-faulting.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves blocks above its mmap
threshold (128 KiB at start, raised dynamically up to 32 MiB) with a fresh ``mmap`` and returns them
to the kernel on ``free``; the top of the heap is trimmed back as soon as 128 KiB lie free there.
A training step allocates and frees dozens of activation and gradient tensors of 1-16 MiB
(blog_cnn, batch 128), so every step maps new pages and takes a page fault on the first touch of
each 4 KiB page, zeroing it in the kernel: time that shows up as slow ReLUs, pools and fills.

:func:`retain_freed_memory` raises both thresholds once per process (``mallopt``), so freed blocks
stay in the heap and the next step reuses pages that are already mapped. This is the effect the
PyTorch CPU performance guides get by preloading jemalloc or tcmalloc, without an ``LD_PRELOAD``.
The cost is that a process keeps the peak of its heap (for a blog_cnn trial on CIFAR-10, a few
hundred MiB) instead of returning it between steps; a sweep worker runs one trial after another
of the same shape, so that peak is what the next trial needs anyway.

Measured on the 2-core x86-64 CPU: BENCHMARKS.md, "CPU levers".

Only glibc has these knobs; elsewhere (macOS, musl) this does nothing and says so in its return.

Threads. ``mallopt`` changes glibc's main heap; a thread that allocates from an arena of its own
(glibc gives threads separate arenas) keeps glibc's defaults there. Ray Tune runs each trial in a
thread of its worker process, so for sweeps :func:`worker_env` gives the same settings as
environment variables that glibc reads when a worker process starts, plus one arena for all
threads; ``sweep run`` passes them to its workers (``ray.init(runtime_env=...)``). Measured on the
2-core CPU, blog_cnn step at batch 128 in a thread, 1 torch thread, 3 interleaved pairs: 210-213 ms
and 8,300-11,300 page faults a step with glibc's defaults, 168-171 ms and 0-100 with these.

``SWEEP_KEEP_FREED_MEMORY=0`` in the environment turns both off (freed memory then goes back to
the kernel between steps, at the cost measured above).
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
