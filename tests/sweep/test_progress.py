"""The live progress line in a log (not a terminal): each state once, the end included."""

from __future__ import annotations

import io
from types import SimpleNamespace

from sweep.distributed.progress import SweepProgress, format_seconds


def test_a_log_gets_each_state_once_and_the_end_once():
    log = io.StringIO()
    progress = SweepProgress(total=2, skipped=0, stream=log, log_every_s=3600)
    for trial_id in ("a", "b"):
        trial = SimpleNamespace(trial_id=trial_id)
        progress.on_trial_start(0, [], trial)
        progress.on_trial_result(0, [], trial, {"sweep_trial_id": trial_id, "trial_seconds": 1.0})
        progress.on_trial_complete(0, [], trial)
    progress.on_experiment_end([])
    progress.close()  # the end is announced by the last result, the experiment's end and close()
    lines = log.getvalue().splitlines()
    assert len(set(lines)) == len(lines), lines  # no line printed twice
    assert lines[-1].startswith("sweep: 2/2 done · 0 running")


def test_format_seconds_rounds_to_whole_seconds():
    assert [format_seconds(s) for s in (-3, 59.5, 61, 3599.6, 3725)] == ["0:00", "1:00", "1:01", "1:00:00", "1:02:05"]
