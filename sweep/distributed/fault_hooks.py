"""Fault injection for drills and CI: environment variables that make chosen trials or writes fail.

Read on the driver (``hooks_from_env``) and handed to each trial in its Tune config, so a drill on a
cluster needs no environment on the workers. Empty outside drills; nothing here runs otherwise.

    SWEEP_FAIL_TRIALS  comma list of fnmatch patterns; a trial fails when one matches its trial_id
                       or its key "model=M/noise_fraction=F/train_size=S/seed=N"
    SWEEP_FAIL_TIMES   fail only the first N attempts of such a trial (default: every attempt)
    SWEEP_FAIL_HOW     "raise" (default: a RuntimeError) or "exit" (the worker process dies)
    SWEEP_TEST_HOLD_S  seconds a trial holds its slot before training (to observe concurrency)
    SWEEP_FAIL_WRITES  comma list of fnmatch patterns of OUT-relative paths (e.g. "trials/*") whose
                       writes fail half way with ENOSPC, as on a disk that fills up mid-trial;
                       SWEEP_FAIL_TIMES limits it to the first N attempts of each trial
"""

from __future__ import annotations

import errno
import fnmatch
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

HOOKS = ("SWEEP_FAIL_TRIALS", "SWEEP_FAIL_TIMES", "SWEEP_FAIL_HOW", "SWEEP_TEST_HOLD_S", "SWEEP_FAIL_WRITES")

# Relative paths matching these fnmatch patterns fail to write half way (see failing_writes).
_FAIL_WRITES: tuple[str, ...] = ()


def hooks_from_env() -> dict[str, str]:
    """The hooks set in this process's environment."""
    return {k: os.environ[k] for k in HOOKS if k in os.environ}


def _patterns(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _attempt_counts(hooks: dict[str, str], attempt: int) -> bool:
    times = int(hooks.get("SWEEP_FAIL_TIMES") or 0)
    return not (times and attempt > times)


def before_trial(hooks: dict[str, str], trial_id: str, key: str, attempt: int,
                 record_exit: Callable[[], Any]) -> None:
    """Fail this attempt when SWEEP_FAIL_TRIALS names the trial; then hold SWEEP_TEST_HOLD_S seconds."""
    patterns = _patterns(hooks.get("SWEEP_FAIL_TRIALS"))
    if any(fnmatch.fnmatch(trial_id, p) or fnmatch.fnmatch(key, p) for p in patterns) \
            and _attempt_counts(hooks, attempt):
        if hooks.get("SWEEP_FAIL_HOW") == "exit":
            # The worker process dies mid-trial, as if OOM-killed. A real crash leaves no failure
            # record; the hook writes one first so that SWEEP_FAIL_TIMES can count attempts.
            record_exit()
            os._exit(17)
        raise RuntimeError(f"injected failure (SWEEP_FAIL_TRIALS) in attempt {attempt} of {key}")
    time.sleep(float(hooks.get("SWEEP_TEST_HOLD_S") or 0))


@contextmanager
def failing_writes(hooks: dict[str, str], attempt: int) -> Iterator[None]:
    """Within the block, writes of OUT-relative paths matching SWEEP_FAIL_WRITES fail with ENOSPC."""
    global _FAIL_WRITES
    patterns = _patterns(hooks.get("SWEEP_FAIL_WRITES")) if _attempt_counts(hooks, attempt) else ()
    saved, _FAIL_WRITES = _FAIL_WRITES, patterns
    try:
        yield
    finally:
        _FAIL_WRITES = saved


def write(fh: Any, rel_path: str, data: bytes) -> None:
    """``fh.write(data)``, or half of it and ENOSPC when a drill asks this path to fail."""
    if _FAIL_WRITES and any(fnmatch.fnmatch(rel_path, p) for p in _FAIL_WRITES):
        fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (simulated by SWEEP_FAIL_WRITES)", rel_path)
    fh.write(data)
