"""Keep freed tensor memory in the process: the largest single CPU-side speed-up of a trial.

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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap, not from a fresh mmap
TRIM_THRESHOLD = 2**31 - 1  # free heap top returned to the kernel only above 2 GiB (mallopt takes an int)

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they are in effect.

    Idempotent and cheap after the first call. Returns False (and changes nothing) where the C
    library is not glibc or refuses a value.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
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
