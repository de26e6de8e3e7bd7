"""The smoke sweep: the real `sweep run` path end to end on digits, in this process's Ray session.

Covers: the full correct table (learning curves included), per-epoch reports to Tune, rerun adds nothing, --seeds extends with only the new trials, an
always-failing trial (drill 4), a worker process that dies mid-trial and is retried (drill 3).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sweeptest import sweep_main

from sweep.distributed.store import CONFUSION_SCHEMA, EPOCHS_SCHEMA, TRIALS_SCHEMA
from sweep.distributed.spec import load_spec

pytestmark = pytest.mark.ray


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.parquet")}


def test_smoke_sweep_writes_the_full_correct_table(smoke_run):
    assert smoke_run["code"] == 0
    out, spec = smoke_run["out"], load_spec(smoke_run["spec"])
    confusion = pd.read_parquet(out / "confusion")
    trials = pd.read_parquet(out / "trials")
    expected_ids = {t.trial_id for t in spec.trials()}
    assert set(trials.trial_id) == expected_ids and len(trials) == 8  # every trial exactly once
    assert len(confusion) == 8 * 10 * 10  # all K x K cells of every trial
    assert confusion.groupby("trial_id")[["true_class", "pred_class"]].value_counts().max() == 1
    per_trial = confusion.groupby("trial_id")["count"].sum()
    assert (per_trial == trials.set_index("trial_id").test_size.reindex(per_trial.index)).all()
    correct = confusion[confusion.true_class == confusion.pred_class].groupby("trial_id")["count"].sum()
    np.testing.assert_allclose(correct / per_trial, trials.set_index("trial_id").accuracy.reindex(per_trial.index))
    assert set(trials.train_size) == {300, 673}  # 0.5 of the 1,346-image train split
    assert trials.realized_noise[trials.noise_fraction == 0].eq(0).all()
    assert trials.realized_noise[trials.noise_fraction == 0.5].between(0.35, 0.5).all()  # shuffle keeps ~1/K
    assert (trials.attempt == 1).all() and trials.device.str.startswith("cpu").all()
    assert trials.worker_pid.nunique() <= 2  # actors reused: one process per slot decodes digits once
    for name, schema in (("confusion", CONFUSION_SCHEMA), ("trials", TRIALS_SCHEMA), ("epochs", EPOCHS_SCHEMA)):
        some = next((out / name).glob("*.parquet"))
        assert pq.read_schema(some).remove_metadata() == schema
    record = json.loads((out / "experiment.json").read_text())
    assert record["identity"]["name"] == "smoke" and record["spec"]["seeds"] == [0, 1]
    assert not (out / ".lock").exists() and not (out / "failed").exists()

    # Learning curves: one row per trial x epoch (1 here) x class, counted over the training subset.
    epochs = pd.read_parquet(out / "epochs")
    assert len(epochs) == 8 * 1 * 10 and set(epochs.trial_id) == expected_ids
    per_trial = epochs.groupby("trial_id")[["examples", "corrupted", "memorised", "corrupted_true"]].sum()
    facts = trials.set_index("trial_id").reindex(per_trial.index)
    # Every training example is seen once an epoch (no trailing batch of one at these sizes).
    assert (per_trial.examples == facts.train_size).all()
    # corrupted = labels that differ from the truth: exactly the realized noise.
    np.testing.assert_allclose(per_trial.corrupted / per_trial.examples, facts.realized_noise)
    assert (per_trial.memorised + per_trial.corrupted_true <= per_trial.corrupted).all()
    assert epochs.test_examples.isna().all()  # eval_every is off by default


def test_trials_report_each_epoch_to_tune_and_a_test_curve_does_not_change_them(ray_session, write_spec,
                                                                              smoke_spec_text, tmp_path, monkeypatch):
    """Each epoch reaches Tune (what logger callbacks see); the final report is the written trial's, so
    the progress line counts trials, not epochs; --eval-every adds test counts, never new trial ids."""
    from sweep.distributed.progress import SweepProgress

    reports: dict[str, list[dict]] = {}  # Tune trial id -> what the driver received, in order
    counted = SweepProgress.on_trial_result

    def spy(self, iteration, trials, trial, result, **info):
        reports.setdefault(trial.trial_id, []).append(dict(result))
        return counted(self, iteration, trials, trial, result, **info)

    monkeypatch.setattr(SweepProgress, "on_trial_result", spy)
    spec = write_spec(smoke_spec_text.replace("epochs = 1", "epochs = 2").replace("train_sizes = [300, 0.5]",
                                                                                 "train_sizes = [300]"))
    assert sweep_main(["run", spec, "--out", tmp_path / "out", "--seeds", "1", "--eval-every", "2"]) == 0
    assert len(reports) == 2
    for trial in reports.values():
        assert [r["epoch"] for r in trial] == [1, 2, 2]  # epoch 1, epoch 2, then the final report after the write
        assert ["sweep_trial_id" in r for r in trial] == [False, False, True]
        assert ["test_accuracy" in r for r in trial] == [False, True, True]
        assert trial[1]["test_accuracy"] == pytest.approx(trial[-1]["accuracy"])  # last epoch's model = final
        assert {"train_loss", "train_accuracy", "epoch_seconds"} <= set(trial[0])
    shares = [r["memorised_share"] for trial in reports.values() for r in trial if "memorised_share" in r]
    assert len(shares) == 3 and all(0 <= v <= 1 for v in shares)  # the noisy trial only: no NaN reported
    ids = {t.trial_id for t in load_spec(spec).with_overrides(seeds=1).trials()}
    trials = pd.read_parquet(tmp_path / "out" / "trials")
    assert set(trials.trial_id) == ids  # the same ids as without --eval-every
    epochs = pd.read_parquet(tmp_path / "out" / "epochs")
    assert epochs.test_examples[epochs.epoch == 1].isna().all() and epochs.test_examples[epochs.epoch == 2].notna().all()
    scored = epochs[epochs.epoch == 2].groupby("trial_id")[["test_correct", "test_examples"]].sum()
    np.testing.assert_allclose(scored.test_correct / scored.test_examples,
                               trials.set_index("trial_id").accuracy.reindex(scored.index))


def test_rerun_adds_nothing(smoke_run, capfd):
    before = mtimes(smoke_run["out"])
    assert sweep_main(["run", smoke_run["spec"], "--out", smoke_run["out"]]) == 0
    assert "8 trials, 8 already done, 0 to run" in capfd.readouterr().err
    assert mtimes(smoke_run["out"]) == before


def test_more_seeds_runs_only_the_new_ones_and_a_corrupt_trial_again(smoke_run, tmp_path, capfd):
    out = tmp_path / "out"
    shutil.copytree(smoke_run["out"], out)
    # Drill 7: one finished trial's row is truncated on disk.
    corrupt = sorted((out / "trials").glob("*.parquet"))[0]
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    before = mtimes(out)
    del before[corrupt.name]
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "3"]) == 0
    err = capfd.readouterr().err
    assert f"{corrupt} does not read as Parquet; moved to _corrupt/, its trial will be rerun" in err
    assert "12 trials, 7 already done, 5 to run" in err and "12/12 trials done (5 now, 7 before)" in err
    after = mtimes(out)
    assert len(after) == 12 and {k: after[k] for k in before} == before  # old trials untouched
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.seed.value_counts().to_dict().items()) == [(0, 4), (1, 4), (2, 4)]
    assert len(pd.read_parquet(out / "confusion")) == 12 * 100
    assert sorted(p.name for p in (out / "_corrupt").rglob("*.parquet")) == [corrupt.name] * 3  # + epochs


def test_always_failing_trial_is_reported_and_only_it_is_retried_later(smoke_run, tmp_path, capfd, monkeypatch):
    out = tmp_path / "out"
    spec = load_spec(smoke_run["spec"]).with_overrides(seeds=1)
    bad = spec.trial_config("blog_cnn", 0.5, 300, 0)
    monkeypatch.setenv("SWEEP_FAIL_TRIALS", "*noise_fraction=0.5/train_size=300/seed=0")
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "1"]) == 1
    err = capfd.readouterr().err
    assert "1 trial(s) failed after 1 retries:" in err
    assert f"{bad.trial_id}  {bad.key}: RuntimeError: injected failure" in err
    trials = pd.read_parquet(out / "trials")
    assert len(trials) == 3 and bad.trial_id not in set(trials.trial_id)
    record = json.loads((out / "failed" / f"{bad.trial_id}.json").read_text())
    assert record["attempt"] == 2 and "injected failure" in record["error"]  # first try + 1 retry

    assert sweep_main(["status", out]) == 0
    assert "4 trials in the grid: 3 done, 0 missing, 1 failed" in capfd.readouterr().out

    monkeypatch.delenv("SWEEP_FAIL_TRIALS")
    before = mtimes(out)
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "1"]) == 0
    assert "4 trials, 3 already done, 1 to run" in capfd.readouterr().err
    after = mtimes(out)
    assert {k: after[k] for k in before} == before and len(after) == 4
    assert not (out / "failed" / f"{bad.trial_id}.json").exists()
    row = pd.read_parquet(out / "trials").set_index("trial_id").loc[bad.trial_id]
    assert row.attempt == 3
    # Same seed, same trial: the retried result equals the uninterrupted run's, cell by cell.
    ours = pd.read_parquet(out / "confusion", filters=[("trial_id", "==", bad.trial_id)])
    theirs = pd.read_parquet(smoke_run["out"] / "confusion", filters=[("trial_id", "==", bad.trial_id)])
    assert ours.sort_values(["true_class", "pred_class"])["count"].tolist() == \
        theirs.sort_values(["true_class", "pred_class"])["count"].tolist()


def test_worker_process_killed_mid_trial_is_retried_and_recorded_once(smoke_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    spec = load_spec(smoke_run["spec"]).with_overrides(seeds=1)
    victim = spec.trial_config("blog_cnn", 0.0, 0.5, 0)
    monkeypatch.setenv("SWEEP_FAIL_TRIALS", victim.trial_id)
    monkeypatch.setenv("SWEEP_FAIL_HOW", "exit")  # the process dies, as if OOM-killed
    monkeypatch.setenv("SWEEP_FAIL_TIMES", "1")
    assert sweep_main(["run", smoke_run["spec"], "--out", out, "--seeds", "1"]) == 0
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.trial_id) == sorted(t.trial_id for t in spec.trials())
    assert trials.set_index("trial_id").loc[victim.trial_id, "attempt"] == 2
    assert len(pd.read_parquet(out / "confusion")) == 4 * 100


def test_a_grid_larger_than_a_chunk_runs_as_several_fits_to_the_same_exact_result(smoke_run, tmp_path, capfd,
                                                                                  monkeypatch):
    from sweep.distributed import tune_layer

    fits = []
    real_fit = tune_layer._fit
    monkeypatch.setattr(tune_layer, "chunk_size", lambda slots: 5)  # 8 trials: fits of 5 and 3
    monkeypatch.setattr(tune_layer, "_fit", lambda spec, out, chunk, *a, **k: (
        fits.append(len(chunk)), real_fit(spec, out, chunk, *a, **k))[1])
    out = tmp_path / "out"
    assert sweep_main(["run", smoke_run["spec"], "--out", out]) == 0
    assert fits == [5, 3]
    assert "8/8 trials done (8 now, 0 before)" in capfd.readouterr().err
    keys = ["trial_id", "true_class", "pred_class"]
    ours = pd.read_parquet(out / "confusion").sort_values(keys).reset_index(drop=True)
    theirs = pd.read_parquet(smoke_run["out"] / "confusion").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert len(pd.read_parquet(out / "trials")) == 8
