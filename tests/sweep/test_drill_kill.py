"""Drill 1: the driver is SIGKILLed at three random points and restarted with the same command.

The final OUT must hold every trial exactly once, equal cell by cell to an uninterrupted run with the
same seeds, and no trial committed before a kill may run again (no finished work is lost). Each
driver runs as its own process group with its own local Ray; after the kill the group's leftovers
are killed too, as when a machine goes away.

Time: every restart pays the fixed start-up of a `sweep run` again (Python, a local Ray, Tune, the
trial processes importing torch: 9-15 s here, measured per run from the trials' own start times),
which no resume can avoid. The drill asserts that everything else — the trials lost in flight,
rescanning OUT, rescheduling — costs less than a second uninterrupted sweep would:

    sum of the 4 runs' wall clocks - start-up of the 3 killed runs  <=  3 x uninterrupted wall

(the test's own pauses between a kill and the next start are not counted). The target is 1.5x,
met here (docs/reliability.md); CI asserts 3x, a margin that a busier or slower machine passes,
since both sides of the ratio are wall clocks of runs that share the machine with other work.
The plain ratio (total / uninterrupted) is printed in the assertion message.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from sweeptest import sweep_command

from sweep.distributed.spec import load_spec

pytestmark = [pytest.mark.drill, pytest.mark.ray]

# 2 noise levels x 2 sizes x 4 seeds = 16 digits trials of 12 epochs: about 1-3 s each here. Long
# enough that the trials, not the fixed start-up, are what the time bound compares (at 3 epochs a
# quiet machine ran the whole sweep in 15 s, and a kill's lost in-flight trials alone broke 1.5x there).
DRILL_SPEC = """
name = "drill"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [0.0, 0.5]
train_sizes = [300, 0.5]
seeds = 4
retries = 1

[training]
epochs = 12

[resources]
cpus = 1
device = "cpu"
"""
KILLS = 3


def committed(out: Path) -> dict[str, int]:
    folder = out / "trials"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")} if folder.exists() else {}


def kill_group(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, mid-run
    proc.wait()
    time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # then what it started (its local Ray), as a lost machine
    except ProcessLookupError:
        pass


def startup_seconds(out: Path, names: set[str], launched_unix: float) -> float:
    """Launch of a run -> the first of its committed trials started training (the run's fixed cost).

    Only trials that started after the launch count: a worker of the previous, killed run can still
    commit a trial it had started just after the next run was launched.
    """
    trials = pd.concat([pd.read_parquet(out / "trials" / n, columns=["started_at"]) for n in names])
    starts = [t.timestamp() for t in trials.started_at if t.timestamp() >= launched_unix]
    return (min(starts) - launched_unix) if starts else 0.0


def test_sigkilled_driver_resumes_to_the_exact_result_within_the_time_bound(tmp_path):
    spec_path = tmp_path / "drill.toml"
    spec_path.write_text(DRILL_SPEC)
    spec = load_spec(spec_path)

    def command(out: Path) -> list[str]:
        return sweep_command() + ["run", str(spec_path), "--out", str(out), "--num-cpus", "2"]

    reference = tmp_path / "uninterrupted"
    started = time.monotonic()
    proc = subprocess.run(command(reference), capture_output=True, text=True, timeout=300)
    uninterrupted = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "out"
    # One random point in each third of the sweep (seeded: the same points every run).
    rng, span = random.Random(20250101), range(2, spec.num_trials - 1)
    kill_points = [rng.choice(span[i * len(span) // KILLS:(i + 1) * len(span) // KILLS]) for i in range(KILLS)]
    before_kill: dict[str, int] = {}
    killed_startups, walls = [], []
    for point in kill_points:
        launched, launched_unix = time.monotonic(), time.time()
        proc = subprocess.Popen(command(out), start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        target = max(point, len(before_kill) + 1)  # each driver commits something before it dies
        deadline = time.monotonic() + 180
        while len(committed(out)) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"driver ended before the kill point {target}: {proc.stderr.read()}"
        walls.append(time.monotonic() - launched)
        kill_group(proc)
        proc.stderr.close()
        now = committed(out)
        assert len(now) >= target and {k: now[k] for k in before_kill} == before_kill
        killed_startups.append(startup_seconds(out, set(now) - set(before_kill), launched_unix))
        before_kill = now
    assert (out / ".lock").exists()  # the killed driver's lock: stale, and taken over below

    launched = time.monotonic()
    final = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
    walls.append(time.monotonic() - launched)
    interrupted = sum(walls)
    assert final.returncode == 0, final.stderr
    # A trial process of the last killed run may still commit the trial it was finishing after the
    # snapshot (Ray workers can outlive the kill by a moment): never fewer done than were committed.
    done_at_start = int(re.search(r"(\d+) already done", final.stderr).group(1))
    assert done_at_start >= len(before_kill), final.stderr
    assert f"{done_at_start} already done, {spec.num_trials - done_at_start} to run" in final.stderr

    after = committed(out)
    assert {k: after[k] for k in before_kill} == before_kill  # committed trials never ran again
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.trial_id) == sorted(t.trial_id for t in spec.trials())  # each exactly once
    keys = ["trial_id", "true_class", "pred_class"]
    ours = pd.read_parquet(out / "confusion").sort_values(keys).reset_index(drop=True)
    theirs = pd.read_parquet(reference / "confusion").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)  # cell by cell, same as the uninterrupted run
    assert not (out / ".lock").exists()
    assert not any(p.name.startswith(".") for p in (out / "confusion").iterdir())  # no temp file left

    restarts = sum(killed_startups)
    report = (f"uninterrupted {uninterrupted:.1f} s; {KILLS} kills at {kill_points} committed trials + final run "
              f"{interrupted:.1f} s (ratio {interrupted / uninterrupted:.2f}); start-up of the killed runs "
              f"{' + '.join(f'{s:.1f}' for s in killed_startups)} = {restarts:.1f} s")
    print(report)
    assert interrupted - restarts <= 3 * uninterrupted, report
