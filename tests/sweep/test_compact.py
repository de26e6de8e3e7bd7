"""Compaction: per-trial files merged into units, read as before, and exactly-once through a crash at any step."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone

import pandas as pd
import pyarrow.dataset as ds
import pytest
from sweeptest import make_result, sweep_main

from analysis import load_results
from sweep.contract import COMPACTION_JOURNAL, CONFUSION_SCHEMA
from sweep.distributed import compact as compaction
from sweep.distributed.scan import (quarantine, read_trial_rows, remove_uncommitted, scan_done,
                                    trials_with_probs)
from sweep.distributed.store import open_output, write_trial
from sweep.engine.config import TrialConfig

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
K = 3  # make_result's classes
CRASH_POINTS = ("staged", "journal", "renamed-one", "renamed", "deleted-half", "deleted")


def write_grid(root, *, models=("blog_cnn", "fast_cnn"), noises=(0.0, 0.25), seeds=(0, 1), probs_seed=0):
    """Trials of a small grid written as the workers write them; those of ``probs_seed`` keep probs."""
    out = open_output(str(root))
    ids = []
    for model in models:
        for noise in noises:
            for seed in seeds:
                config = TrialConfig(dataset="digits", model=model, noise_fraction=noise, train_size=100, seed=seed,
                                     keep_probs=seed == probs_seed)
                write_trial(out, make_result(config, seed=seed, keep_probs=seed == probs_seed), "exp", started_at=NOW)
                ids.append(config.trial_id)
    return out, ids


def rows_per_trial(root) -> dict[str, int]:
    return pd.read_parquet(root / "confusion").trial_id.value_counts().to_dict()


def damage_pages(path) -> None:
    """Overwrite a Parquet file's data pages with garbage, keeping its footer: readable only by not reading it."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[4:len(data) - footer] = b"\xff" * (len(data) - footer - 4)
    path.write_bytes(bytes(data))


def test_compacted_folder_reads_whole_with_contract_types_and_filters_skip_other_units(tmp_path):
    out, ids = write_grid(tmp_path)
    before = pd.read_parquet(tmp_path / "confusion")
    probs = pd.read_parquet(tmp_path / "probs")
    result = compaction.compact(out)
    assert (result.trials, result.units, result.generation) == (8, 4, 1)
    assert result.files_removed == 8 + 8 + 8 + 4  # trials, confusion, epochs, and the 4 probs files
    assert all(name.startswith("part-") for name in os.listdir(tmp_path / "epochs"))  # compacted like the rest
    assert sorted(os.listdir(tmp_path / "confusion")) == [
        "part-00001-blog_cnn-nf0.000000.parquet", "part-00001-blog_cnn-nf0.250000.parquet",
        "part-00001-fast_cnn-nf0.000000.parquet", "part-00001-fast_cnn-nf0.250000.parquet"]
    assert len(os.listdir(tmp_path / "probs")) == 4 and not (tmp_path / COMPACTION_JOURNAL).exists()

    after = pd.read_parquet(tmp_path / "confusion")
    assert after.dtypes.to_dict() == before.dtypes.to_dict()
    assert ds.dataset(tmp_path / "confusion").schema.remove_metadata() == CONFUSION_SCHEMA
    key = ["trial_id", "true_class", "pred_class"]
    pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True),
                                  before.sort_values(key).reset_index(drop=True))
    assert len(pd.read_parquet(tmp_path / "trials")) == 8
    assert sorted(map(tuple, pd.read_parquet(tmp_path / "probs")[["trial_id", "example"]].to_numpy())) == sorted(
        map(tuple, probs[["trial_id", "example"]].to_numpy()))

    # A per-trial file written after the compaction sits next to the units and reads with them.
    config = TrialConfig(dataset="digits", model="fast_cnn", noise_fraction=0.25, train_size=100, seed=2)
    write_trial(out, make_result(config, seed=2), "exp", started_at=NOW)
    assert len(pd.read_parquet(tmp_path / "confusion")) == 9 * K * K

    # A filter reads only the matching files: the others' pages are garbage and are never touched.
    for name in os.listdir(tmp_path / "confusion"):
        if name.startswith("part-") and "fast_cnn-nf0.250000" not in name:
            damage_pages(tmp_path / "confusion" / name)
    with pytest.raises(Exception):
        pd.read_parquet(tmp_path / "confusion")
    part = pd.read_parquet(tmp_path / "confusion", filters=[("model", "==", "fast_cnn"), ("noise_fraction", "==", 0.25)])
    assert len(part) == 3 * K * K and set(part.seed) == {0, 1, 2}
    assert part.dtypes.to_dict() == before.dtypes.to_dict()


def test_the_readers_of_out_count_compacted_trials_as_done(tmp_path):
    out, ids = write_grid(tmp_path)
    scan = scan_done(out)
    with_probs = trials_with_probs(out)
    compaction.compact(out)
    assert scan_done(out).done == scan_done(out, validate=False).done == scan.done == frozenset(ids)
    assert trials_with_probs(out) == with_probs and len(with_probs) == 4
    assert sorted(r["trial_id"] for r in read_trial_rows(out, ids[:3], columns=["trial_id", "seed"])) == sorted(ids[:3])
    assert scan_done(out).stray == () and scan_done(out).corrupt == ()

    # A trial interrupted between its writes (confusion, no trials row) is still removed; the units stay.
    config = TrialConfig(dataset="digits", model="blog_cnn", noise_fraction=0.25, train_size=100, seed=7)
    write_trial(out, make_result(config, seed=7), "exp", started_at=NOW)
    (tmp_path / "trials" / f"{config.trial_id}.parquet").unlink()
    (tmp_path / "confusion" / "notes.txt").write_text("not a result")
    assert remove_uncommitted(out) == 2  # its confusion and epochs files
    assert scan_done(out).stray == (str(tmp_path / "confusion" / "notes.txt"),)
    (tmp_path / "confusion" / "notes.txt").unlink()

    # A unit whose file does not read is corrupt as a whole: moved aside in every folder, its trials not done.
    unit = "part-00001-fast_cnn-nf0.000000.parquet"
    damage_pages(tmp_path / "confusion" / unit)
    scan = scan_done(out)
    assert scan.corrupt == (str(tmp_path / "confusion" / unit),)
    lost = set(pd.read_parquet(tmp_path / "trials" / unit).trial_id)
    assert scan.done == frozenset(ids) - lost and len(lost) == 2
    moved = quarantine(out, scan.corrupt)
    assert sorted(p.rsplit("/", 2)[-2] for p in moved) == ["confusion", "epochs", "probs", "trials"]
    assert scan_done(out).corrupt == () and len(pd.read_parquet(tmp_path / "confusion")) == 6 * K * K


@pytest.mark.parametrize("step", CRASH_POINTS)
def test_a_crash_at_any_step_loses_no_trial_and_recovery_doubles_no_row(tmp_path, monkeypatch, step):
    out, ids = write_grid(tmp_path)
    probs = len(pd.read_parquet(tmp_path / "probs"))

    class Crash(BaseException):
        """The process dies here: nothing after this line runs, no cleanup."""

    def die(name: str) -> None:
        if name == step:
            raise Crash(name)

    monkeypatch.setattr(compaction, "_step", die)
    with pytest.raises(Crash):
        compaction.compact(out)
    # Right after the crash: every trial done, none of its rows missing from the folder.
    assert scan_done(out).done == frozenset(ids)
    counts = rows_per_trial(tmp_path)
    assert set(counts) == set(ids) and all(n >= K * K for n in counts.values())
    if step in ("staged", "journal"):  # before the first rename nothing visible has changed
        assert set(counts.values()) == {K * K}
    assert (tmp_path / COMPACTION_JOURNAL).exists() == (step != "staged")

    # Recovery (what the next `sweep run` or `sweep compact` does first): exactly once, nothing left over.
    monkeypatch.setattr(compaction, "_step", lambda name: None)
    compaction.compact(out)
    assert rows_per_trial(tmp_path) == {t: K * K for t in ids}
    assert len(pd.read_parquet(tmp_path / "trials")) == len(ids) and len(pd.read_parquet(tmp_path / "probs")) == probs
    assert scan_done(out).done == frozenset(ids) and scan_done(out).corrupt == ()
    assert not (tmp_path / COMPACTION_JOURNAL).exists()
    assert [p.name for p in tmp_path.rglob(".*") if p.name != ".lock"] == []  # no staged file left
    assert all(name.startswith("part-") for d in ("confusion", "trials", "probs") for name in os.listdir(tmp_path / d))
    assert compaction.compact(out).trials == 0  # nothing waits any more


def test_a_journal_whose_unit_file_is_gone_is_undone_keeping_the_per_trial_files(tmp_path, monkeypatch):
    out, ids = write_grid(tmp_path)
    monkeypatch.setattr(compaction, "_step", lambda name: (_ for _ in ()).throw(KeyboardInterrupt) if name == "journal"
                        else None)
    with pytest.raises(KeyboardInterrupt):
        compaction.compact(out)
    journal = json.loads((tmp_path / COMPACTION_JOURNAL).read_text())
    staged, _ = journal["units"][0]["files"]["confusion"]
    (tmp_path / "confusion" / staged).unlink()  # removed by hand
    messages = []
    assert compaction.finish_interrupted(out, messages.append) == 0
    assert "lost a unit file: undone" in messages[0]
    assert rows_per_trial(tmp_path) == {t: K * K for t in ids} and scan_done(out).done == frozenset(ids)
    assert sorted(os.listdir(tmp_path / "confusion")) == sorted(f"{t}.parquet" for t in ids)


def test_load_results_refuses_a_trial_present_twice_and_names_the_fix(tmp_path, monkeypatch):
    from analysis import SyntheticSpec, write_synthetic_results

    write_synthetic_results(tmp_path, SyntheticSpec(n_seeds=2, noise_fractions=(0.0, 0.5), train_fractions=(1.0,)))
    out = open_output(str(tmp_path))
    expected = load_results(tmp_path)
    monkeypatch.setattr(compaction, "_step", lambda name: (_ for _ in ()).throw(KeyboardInterrupt) if name == "renamed"
                        else None)
    with pytest.raises(KeyboardInterrupt):
        compaction.compact(out)
    with pytest.raises(ValueError, match=r"present more than once .* `sweep compact OUT` finishes it"):
        load_results(tmp_path)
    monkeypatch.setattr(compaction, "_step", lambda name: None)
    compaction.compact(out)
    pd.testing.assert_frame_equal(load_results(tmp_path), expected)


def test_sweep_compact_command_reports_what_it_did(tmp_path, capfd):
    write_grid(tmp_path / "out")
    assert sweep_main(["compact", tmp_path / "out"]) == 0
    captured = capfd.readouterr()
    assert "compacted 8 trials into 4 file(s) per result folder (generation 1), removed 28 per-trial files" in captured.out
    assert "unit 4/4: fast_cnn noise 0.25, 2 trials" in captured.err
    assert sweep_main(["compact", tmp_path / "out", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert captured.out.startswith("nothing to compact in") and captured.err == ""


@pytest.mark.ray
def test_a_compacted_sweep_resumes_and_extends_without_a_duplicate(smoke_run, tmp_path, capfd, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(smoke_run["out"], out)
    assert sweep_main(["compact", out]) == 0
    monkeypatch.setattr(compaction, "AUTO_MIN_TRIALS", 1)  # the run's own compaction, at this size
    assert sweep_main(["run", smoke_run["spec"], "--out", out]) == 0
    assert "8 trials, 8 already done, 0 to run" in capfd.readouterr().err
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "3"]) == 0
    err = capfd.readouterr().err
    assert "12 trials, 8 already done, 4 to run" in err
    assert "compacted 4 trials into 2 file(s) per result folder (generation 2" in err
    confusion = pd.read_parquet(out / "confusion")
    assert confusion.trial_id.value_counts().to_dict() == {t: 100 for t in set(confusion.trial_id)}
    assert confusion.trial_id.nunique() == 12 and len(pd.read_parquet(out / "trials")) == 12
    assert all(name.startswith("part-") for name in os.listdir(out / "confusion"))
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "3"]) == 0
    assert "nothing to do" in capfd.readouterr().err


def test_load_probs_reads_a_compacted_folder_as_before(tmp_path):
    from analysis import load_probs

    out, _ = write_grid(tmp_path, seeds=(0,))  # one seed: every trial scored on the same test labels
    before = load_probs(tmp_path)
    compaction.compact(out)
    assert not (tmp_path / "confusion" / f"{before.trial_id.iloc[0]}.parquet").exists()
    pd.testing.assert_frame_equal(load_probs(tmp_path), before)


def test_a_corrupt_per_trial_file_stops_the_compaction_before_anything_changes(tmp_path, capfd):
    out, ids = write_grid(tmp_path / "out")
    bad = tmp_path / "out" / "confusion" / f"{ids[5]}.parquet"
    bad.write_bytes(bad.read_bytes()[:50])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert sweep_main(["compact", tmp_path / "out"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"sweep compact: error: {bad} does not read as Parquet") and len(err[-1]) < 1000
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing staged is left


def test_the_runs_own_compaction_failing_leaves_the_results_and_says_so(tmp_path, monkeypatch):
    out, ids = write_grid(tmp_path)
    monkeypatch.setattr(compaction, "AUTO_MIN_TRIALS", 1)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compaction, "_write_staged", full_disk)
    messages = []
    assert compaction.compact_after_run(out, messages.append) is None
    assert messages == ["not compacted: [Errno 28] No space left on device; the results are intact, "
                        "`sweep compact` retries"]
    assert rows_per_trial(tmp_path) == {t: K * K for t in ids} and scan_done(out).done == frozenset(ids)
    monkeypatch.undo()
    monkeypatch.setattr(compaction, "AUTO_MIN_TRIALS", 9)  # 8 trials wait: fewer than the threshold
    assert compaction.compact_after_run(out, messages.append).trials == 0 and len(messages) == 1
