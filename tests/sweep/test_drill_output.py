"""Drill 6: a full or read-only output location.

Before the start, an OUT (or a result folder in it) that cannot be written stops `sweep run` with one
line and exit 2, with nothing started and nothing in OUT touched. Mid-run, a disk that fills up while
a trial commits (simulated with the SWEEP_FAIL_WRITES hook, which fails a write half way with
ENOSPC) fails that attempt: the trial is retried, then reported failed, and nothing half-written is
left that a later run or `pd.read_parquet` would read as a result; once OUT is writable again, the
same command completes to the exact result.

A read-only location is real, not simulated: permission bits for an ordinary user; for root (whom
permission bits do not stop) a read-only bind mount in a private mount namespace (``unshare -m``),
so nothing leaks to the host's mount table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from sweeptest import make_result, sweep_command, sweep_main

from sweep.distributed.scan import remove_uncommitted, scan_done
from sweep.distributed.store import (
    OutputNotWritableError, check_writable, open_output, write_bytes_atomic, write_trial,
)
from sweep.distributed.experiment_record import record_experiment
from sweep.distributed.fault_hooks import failing_writes
from sweep.distributed.spec import load_spec

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder``, files with their bytes."""
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def hidden_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file() and p.name != ".lock"]


# ---- without Ray: the pieces --------------------------------------------------------------------
def test_a_write_that_fails_half_way_leaves_no_file_and_no_temp(tmp_path):
    out = open_output(str(tmp_path / "out"))
    with failing_writes({"SWEEP_FAIL_WRITES": "trials/*"}, attempt=1):
        with pytest.raises(OSError, match="No space left on device"):
            write_bytes_atomic(out, "trials/abc.parquet", b"x" * 1000)
    assert list((tmp_path / "out" / "trials").iterdir()) == []  # neither the file nor its temp
    write_bytes_atomic(out, "trials/abc.parquet", b"x" * 1000)  # outside the block: writes again
    assert (tmp_path / "out" / "trials" / "abc.parquet").read_bytes() == b"x" * 1000


@pytest.mark.parametrize("failing", ["confusion/*", "probs/*", "epochs/*", "trials/*"])
def test_a_trial_whose_commit_fails_leaves_nothing_visible(tmp_path, failing):
    out = open_output(str(tmp_path / "out"))
    result = make_result(keep_probs=True)
    with failing_writes({"SWEEP_FAIL_WRITES": failing}, attempt=1), pytest.raises(OSError, match="No space left"):
        write_trial(out, result, "exp", started_at=NOW)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # no result, no temp
    assert scan_done(out).done == frozenset()
    write_trial(out, result, "exp", started_at=NOW)  # the retry writes it whole
    assert scan_done(out).done == {result.config.trial_id}
    assert len(pd.read_parquet(tmp_path / "out" / "confusion")) == 9


def test_files_of_an_uncommitted_trial_are_removed_before_a_run(tmp_path):
    out = open_output(str(tmp_path / "out"))
    done, interrupted = make_result(seed=0), make_result(seed=1)
    write_trial(out, done, "exp", started_at=NOW)
    write_trial(out, interrupted, "exp", started_at=NOW)
    (tmp_path / "out" / "trials" / f"{interrupted.config.trial_id}.parquet").unlink()  # died before its commit
    assert remove_uncommitted(out) == 2  # its confusion and epochs files
    assert set(pd.read_parquet(tmp_path / "out" / "confusion").trial_id) == {done.config.trial_id}
    assert set(pd.read_parquet(tmp_path / "out" / "epochs").trial_id) == {done.config.trial_id}
    assert scan_done(out).done == {done.config.trial_id}


def test_check_writable_probes_out_and_each_result_folder(tmp_path, monkeypatch):
    out = open_output(str(tmp_path / "out"))
    write_trial(out, make_result(), "exp", started_at=NOW)
    before = snapshot(tmp_path / "out")
    check_writable(out)  # writable: passes, and leaves no probe behind
    assert snapshot(tmp_path / "out") == before
    real_open = open

    def refuse_trials(path, *args, **kwargs):
        if os.path.dirname(str(path)).endswith("/trials") and ".write-probe-" in str(path):
            raise OSError(30, "Read-only file system")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse_trials)
    with pytest.raises(OutputNotWritableError, match=r"cannot write to .*/out/trials: Read-only file system"):
        check_writable(out)


# ---- the command line on a real read-only location ----------------------------------------------
def run_with_read_only(argv: list[str], read_only: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the `sweep` command line with ``read_only`` (a folder) not writable; skip if we cannot."""
    command = sweep_command() + argv
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [read_only, *read_only.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("running as root without unshare/mount: cannot make a folder read-only")
    script = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && '
              '! touch "$0/.probe" 2>/dev/null && exec "$@"')
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(read_only),
                           str(read_only), *command], capture_output=True, text=True, timeout=120)
    if proc.returncode != 2 and "error:" not in proc.stderr:
        pytest.skip(f"could not make {read_only} read-only here: {proc.stderr.strip()[:200]}")
    return proc


@pytest.fixture
def finished_out(tmp_path, smoke_spec_text):
    """A smoke OUT holding one finished trial (written without training) and its spec file."""
    spec_path = tmp_path / "smoke.toml"
    spec_path.write_text(smoke_spec_text)
    spec = load_spec(spec_path)
    out = open_output(str(tmp_path / "out"))
    record_experiment(out, spec)
    write_trial(out, make_result(spec.trials()[0]), spec.name, started_at=NOW)
    return spec_path, tmp_path / "out"


@pytest.mark.parametrize("where", ["out", "out/trials", "parent"])
def test_read_only_output_is_refused_before_anything_starts(finished_out, tmp_path, where):
    spec_path, out = finished_out
    if where == "parent":  # OUT does not exist yet and cannot be created
        parent = tmp_path / "ro-parent"
        parent.mkdir()
        target, read_only = parent / "out", parent
    else:
        target, read_only = out, tmp_path / where
    before = snapshot(tmp_path)
    proc = run_with_read_only(["run", str(spec_path), "--out", str(target)], read_only, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Read-only file system" in lines[0] or "Permission denied" in lines[0], lines[0]
    expected = {"out": str(out), "out/trials": str(out / "trials"), "parent": str(target)}[where]
    assert lines[0].startswith("sweep run: error: cannot ") and expected in lines[0], lines[0]
    assert snapshot(tmp_path) == before  # nothing written, nothing touched


# ---- the whole sweep: a disk that fills up mid-trial ---------------------------------------------
@pytest.mark.drill
@pytest.mark.ray
def test_disk_full_mid_trial_fails_cleanly_and_a_later_run_completes_exactly(smoke_run, tmp_path, monkeypatch,
                                                                           capfd):
    out = tmp_path / "out"
    spec = load_spec(smoke_run["spec"]).with_overrides(seeds=1)
    victim = spec.trial_config("blog_cnn", 0.5, 300, 0).trial_id
    # The disk is full whenever this trial commits: its trials/ row fails half way, every attempt.
    monkeypatch.setenv("SWEEP_FAIL_WRITES", f"trials/{victim}.parquet")
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "1"]) == 1
    err = capfd.readouterr().err
    assert "1 trial(s) failed after 1 retries:" in err and f"{victim}  " in err and "No space left on device" in err
    done = {p.stem for p in (out / "trials").glob("*.parquet")}
    assert len(done) == 3 and victim not in done
    assert {p.stem for p in (out / "confusion").iterdir()} == done  # the victim's confusion was taken back
    assert hidden_files(out) == []  # no temp file either
    record = json.loads((out / "failed" / f"{victim}.json").read_text())
    assert "No space left on device" in record["error"] and record["attempt"] == 2  # tried, retried, failed
    assert set(pd.read_parquet(out / "confusion").trial_id) == done  # what pandas sees: committed trials only
    assert not (out / ".lock").exists()

    monkeypatch.delenv("SWEEP_FAIL_WRITES")  # space freed
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "1"]) == 0
    assert "4 trials, 3 already done, 1 to run" in capfd.readouterr().err
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.trial_id) == sorted(t.trial_id for t in spec.trials())
    assert trials.set_index("trial_id").attempt[victim] == 3
    keys = ["trial_id", "true_class", "pred_class"]
    ours = pd.read_parquet(out / "confusion").sort_values(keys).reset_index(drop=True)
    theirs = pd.read_parquet(smoke_run["out"] / "confusion", filters=[("seed", "==", 0)])
    pd.testing.assert_frame_equal(ours, theirs.sort_values(keys).reset_index(drop=True))  # exact, once each
    assert not (out / "failed" / f"{victim}.json").exists()
