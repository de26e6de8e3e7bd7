"""Drill 1: the driver is SIGKILLed at random points and restarted with the same command.

The final OUT must hold every trial exactly once, equal cell by cell to an uninterrupted run with the
same seeds, and no trial committed before a kill may run again (no finished work is lost). Each
driver runs as its own process group with its own local Ray; after the kill the group's leftovers
are killed too, as when a machine goes away.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pandas as pd
import pytest
from conftest import sweep_command

from sweep.spec import load_spec

pytestmark = [pytest.mark.drill, pytest.mark.ray]


def committed(out):
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


def test_sigkilled_driver_resumes_to_the_exact_result(smoke_run, tmp_path):
    out = tmp_path / "out"
    spec = load_spec(smoke_run["spec"])
    command = sweep_command() + ["run", str(smoke_run["spec"]), "--out", str(out), "--num-cpus", "2"]
    kill_points = sorted(random.Random(20250101).sample(range(1, spec.num_trials - 1), 2))
    before_kill: dict[str, int] = {}
    for point in kill_points:
        proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(committed(out)) < point and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"driver ended before the kill point {point}: {proc.stderr.read()}"
        kill_group(proc)
        proc.stderr.close()
        before_kill = committed(out)
        assert len(before_kill) >= point
    assert (out / ".lock").exists()  # the killed driver's lock: stale, and taken over below

    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"{len(before_kill)} already done, {spec.num_trials - len(before_kill)} to run" in final.stderr

    after = committed(out)
    assert {k: after[k] for k in before_kill} == before_kill  # committed trials never ran again
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.trial_id) == sorted(t.trial_id for t in spec.trials())  # each exactly once
    keys = ["trial_id", "true_class", "pred_class"]
    ours = pd.read_parquet(out / "confusion").sort_values(keys).reset_index(drop=True)
    theirs = pd.read_parquet(smoke_run["out"] / "confusion").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)  # cell by cell, same as the uninterrupted run
    assert not (out / ".lock").exists()
    assert not any(p.name.startswith(".") for p in (out / "confusion").iterdir())  # no temp file left
