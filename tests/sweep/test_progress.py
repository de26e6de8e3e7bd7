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


def test_per_epoch_reports_do_not_count_as_finished_trials():
    """A trial reports each epoch (learning curves) before its final, written result: only the last counts."""
    from sweep.distributed.tune_layer import epoch_metrics

    class Stats:  # an EpochStats of a clean trial (no corrupted labels: the share is NaN)
        def metrics(self):
            return {"epoch": 1, "train_loss": 2.0, "train_accuracy": 0.5, "memorised_share": float("nan"),
                    "epoch_seconds": 0.1}

    report = epoch_metrics(Stats())
    assert "memorised_share" not in report and "sweep_trial_id" not in report  # no NaN for loggers
    progress = SweepProgress(total=1, skipped=0, stream=io.StringIO(), log_every_s=3600)
    trial = SimpleNamespace(trial_id="a")
    progress.on_trial_start(0, [], trial)
    for _ in range(3):
        progress.on_trial_result(0, [], trial, report)
    assert progress.finished == 0 and progress.line().startswith("sweep: 0/1 done · 1 running")
    progress.on_trial_result(0, [], trial, {**report, "sweep_trial_id": "a", "trial_seconds": 1.0})
    assert progress.finished == 1 and progress.trial_seconds == [1.0]
