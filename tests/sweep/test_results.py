"""The Parquet contract and the guards on OUT, without Ray: schema, atomic writes, done-scan, lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sweeptest import make_result

from sweep.distributed.scan import quarantine, remove_stale_temp_files, remove_uncommitted, scan_done
from sweep.distributed.store import (
    CONFUSION_SCHEMA, EPOCHS_SCHEMA, PROBS_SCHEMA, TRIALS_SCHEMA, open_output, read_failed, write_failed, write_trial,
)
from sweep.distributed.experiment_record import check_experiment, record_experiment, stored_spec
from sweep.distributed.lock import OutputLock, OutputLockedError
from sweep.distributed.spec import load_preset

CONTRACT_KEYS = ["experiment", "trial_id", "dataset", "model", "noise_mode", "noise_fraction",
                 "realized_noise", "train_size", "train_fraction", "seed"]
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_schemas_start_with_the_contract_columns_in_order():
    assert CONFUSION_SCHEMA.names == CONTRACT_KEYS + ["true_class", "pred_class", "count"]
    assert TRIALS_SCHEMA.names[:22] == CONTRACT_KEYS + [
        "accuracy", "test_size", "epochs", "train_seconds", "seconds", "device", "torch_version",
        "torchvision_version", "numpy_version", "python_version", "sweep_version", "finished_at"]
    assert PROBS_SCHEMA.names[-4:] == ["example", "true_class", "pred_class", "probs"]
    assert EPOCHS_SCHEMA.names == CONTRACT_KEYS + [
        "epoch", "true_class", "examples", "fitted", "corrupted", "memorised", "corrupted_true", "loss_sum",
        "test_examples", "test_correct"]


def test_written_trial_reads_back_exactly(tmp_path):
    out = open_output(str(tmp_path / "out"))
    result = make_result(keep_probs=True)
    write_trial(out, result, "exp", started_at=NOW, placement={"hostname": "h", "node_ip": "1.2.3.4", "pid": 7})
    tid = result.config.trial_id
    assert pq.read_schema(tmp_path / "out" / "confusion" / f"{tid}.parquet").remove_metadata() == CONFUSION_SCHEMA
    assert pq.read_schema(tmp_path / "out" / "trials" / f"{tid}.parquet").remove_metadata() == TRIALS_SCHEMA
    confusion = pd.read_parquet(tmp_path / "out" / "confusion")
    assert len(confusion) == 9  # all K x K cells, the zero one included
    assert confusion.loc[(confusion.true_class == "class0") & (confusion.pred_class == "class1"), "count"].item() == 0
    matrix = confusion.pivot(index="true_class", columns="pred_class", values="count").to_numpy()
    np.testing.assert_array_equal(matrix, result.confusion)
    assert set(confusion.trial_id) == {tid} and set(confusion.experiment) == {"exp"}
    trials = pd.read_parquet(tmp_path / "out" / "trials")
    row = trials.iloc[0]
    assert row.accuracy == pytest.approx(result.accuracy) and row.train_size == 100 and row.seed == 0
    assert row.node_ip == "1.2.3.4" and row.worker_pid == 7 and row.attempt == 1
    assert json.loads(row.config_json)["noise_fraction"] == 0.25
    probs = pd.read_parquet(tmp_path / "out" / "probs")
    assert len(probs) == result.test_size
    np.testing.assert_allclose(np.stack(probs.probs.to_numpy()), result.probs)
    assert pq.read_schema(tmp_path / "out" / "epochs" / f"{tid}.parquet").remove_metadata() == EPOCHS_SCHEMA
    epochs = pd.read_parquet(tmp_path / "out" / "epochs")
    assert len(epochs) == 2 * 3 and epochs.epoch.tolist() == [1, 1, 1, 2, 2, 2]  # epochs x classes, in order
    assert epochs.true_class.tolist() == ["class0", "class1", "class2"] * 2
    for stats, rows in zip(result.curves, (epochs[epochs.epoch == 1], epochs[epochs.epoch == 2])):
        np.testing.assert_array_equal(rows[["examples", "fitted", "corrupted", "memorised", "corrupted_true"]],
                                      stats.counts)
        np.testing.assert_allclose(rows.loss_sum, stats.loss_sum)
    assert epochs.test_examples[epochs.epoch == 1].isna().all()  # not scored at epoch 1: null, not 0
    assert epochs.test_correct[epochs.epoch == 2].tolist() == (result.curves[1].test_examples - 1).tolist()


def test_a_trial_without_learning_curves_is_done_and_a_broken_curve_file_is_not(tmp_path):
    """Trials written before learning curves have no epochs/ file and stay done; a damaged one is rerun."""
    out = open_output(str(tmp_path))
    old, new = make_result(), make_result(seed=1, config=make_result().config.replace(seed=1))
    write_trial(out, type(old)(**{**old.__dict__, "curves": ()}), "exp", started_at=NOW)
    write_trial(out, new, "exp", started_at=NOW)
    assert not (tmp_path / "epochs" / f"{old.config.trial_id}.parquet").exists()
    assert scan_done(out).done == {old.config.trial_id, new.config.trial_id}
    path = tmp_path / "epochs" / f"{new.config.trial_id}.parquet"
    path.write_bytes(path.read_bytes()[:60])
    scan = scan_done(out)
    assert scan.done == {old.config.trial_id} and scan.corrupt == (str(path),)
    moved = quarantine(out, scan.corrupt)
    assert len(moved) == 3  # its epochs, confusion and trials files
    assert scan_done(out).done == {old.config.trial_id}


def test_rewriting_a_trial_replaces_it_never_duplicates(tmp_path):
    out = open_output(str(tmp_path))
    for _ in range(3):
        write_trial(out, make_result(), "exp", started_at=NOW)
    write_trial(out, make_result(seed=1, config=make_result().config.replace(seed=1)), "exp", started_at=NOW)
    assert len(pd.read_parquet(tmp_path / "trials")) == 2
    assert len(pd.read_parquet(tmp_path / "confusion")) == 18
    assert len(scan_done(out).done) == 2


def test_temp_files_are_invisible_to_readers_and_cleaned_when_stale(tmp_path):
    out = open_output(str(tmp_path))
    write_trial(out, make_result(), "exp", started_at=NOW)
    (tmp_path / "confusion" / ".abc.parquet.tmp-123").write_bytes(b"half a parquet file")
    (tmp_path / "trials" / ".abc.parquet.tmp-123").write_bytes(b"PAR1 garbage")
    assert len(pd.read_parquet(tmp_path / "confusion")) == 9
    assert len(pd.read_parquet(tmp_path / "trials")) == 1
    assert scan_done(out).corrupt == ()
    assert remove_stale_temp_files(out, older_than_s=3600) == 0  # a live writer's file is kept
    assert remove_stale_temp_files(out, older_than_s=-1) == 2
    assert sorted(p.name for p in tmp_path.rglob(".*tmp-*")) == []


def test_a_failure_before_the_trials_row_leaves_the_trial_not_done(tmp_path):
    out = open_output(str(tmp_path))
    result = make_result(keep_probs=True)
    broken = type(result)(**{**result.__dict__, "probs": result.probs[:, :2]})  # probs table cannot build
    with pytest.raises(ValueError, match="probs must be"):
        write_trial(out, broken, "exp", started_at=NOW)
    # confusion/ was written first, then taken back: no rows of an uncommitted trial stay visible
    assert not (tmp_path / "confusion" / f"{result.config.trial_id}.parquet").exists()
    assert not (tmp_path / "trials").exists()  # the commit marker was never written
    assert scan_done(out).done == frozenset()


def test_a_crash_before_the_trials_row_leaves_the_trial_not_done(tmp_path):
    out = open_output(str(tmp_path))
    result = make_result()
    write_trial(out, result, "exp", started_at=NOW)
    (tmp_path / "trials" / f"{result.config.trial_id}.parquet").unlink()  # killed between the two writes
    assert scan_done(out).done == frozenset()
    assert remove_uncommitted(out) == 2  # what the next run does first, under OUT's lock
    assert list((tmp_path / "confusion").iterdir()) == [] and list((tmp_path / "epochs").iterdir()) == []


def test_truncated_files_are_reported_by_name_and_quarantined(tmp_path):
    out = open_output(str(tmp_path))
    good, bad = make_result(), make_result(seed=1, config=make_result().config.replace(seed=1))
    for r in (good, bad):
        write_trial(out, r, "exp", started_at=NOW)
    path = tmp_path / "trials" / f"{bad.config.trial_id}.parquet"
    path.write_bytes(path.read_bytes()[:50])  # truncated: the footer is gone
    scan = scan_done(out)
    assert scan.done == {good.config.trial_id}
    assert scan.corrupt == (str(path),)
    moved = quarantine(out, scan.corrupt)
    assert len(moved) == 3 and all("/_corrupt/" in m for m in moved)  # its confusion and epochs files go too
    assert len(pd.read_parquet(tmp_path / "trials")) == 1 and len(pd.read_parquet(tmp_path / "confusion")) == 9
    assert scan_done(out).corrupt == ()


def test_failed_record_is_replaced_then_cleared_by_success(tmp_path):
    out = open_output(str(tmp_path))
    result = make_result()
    tid = result.config.trial_id
    write_failed(out, tid, key={"seed": 0}, error="RuntimeError: one", attempt=1)
    write_failed(out, tid, key={"seed": 0}, error="RuntimeError: two", attempt=2)
    assert read_failed(out)[tid]["error"] == "RuntimeError: two" and read_failed(out)[tid]["attempt"] == 2
    write_trial(out, result, "exp", started_at=NOW)
    assert read_failed(out) == {}


def test_experiment_guard_allows_growing_axes_refuses_another_experiment(tmp_path):
    out = open_output(str(tmp_path))
    quick = load_preset("quick")
    check_experiment(out, quick)
    record_experiment(out, quick)
    check_experiment(out, quick.with_overrides(seeds=10))  # extend: fine
    record_experiment(out, quick.with_overrides(seeds=10))
    assert stored_spec(out).seeds == tuple(range(10))
    before = (tmp_path / "experiment.json").read_bytes()
    with pytest.raises(ValueError, match=r"holds results of a different experiment \(dataset: 'digits' there, "
                                         r"'cifar10' here; .*name: 'quick' there, 'blog' here"):
        check_experiment(out, load_preset("blog"))
    with pytest.raises(ValueError, match="epochs: 8 there, 3 here"):
        check_experiment(out, replace(quick, base=quick.base.replace(epochs=3)))
    assert (tmp_path / "experiment.json").read_bytes() == before


def test_a_record_written_before_the_spec_was_built_on_the_trial_config_still_matches(tmp_path):
    # Records from before kept data_dir in the identity; where torchvision's files live names no
    # experiment, and such a folder must stay extendable.
    out = open_output(str(tmp_path))
    quick = load_preset("quick")
    legacy = {**quick.identity(), "data_dir": None}
    (tmp_path / "experiment.json").write_text(json.dumps({"identity": legacy, "spec": quick.to_dict()}))
    check_experiment(out, quick.with_overrides(seeds=5))
    with pytest.raises(ValueError, match="epochs: 8 there, 3 here"):
        check_experiment(out, replace(quick, base=quick.base.replace(epochs=3)))


def test_results_without_an_experiment_record_are_not_mixed_into(tmp_path):
    (tmp_path / "trials").mkdir()
    with pytest.raises(ValueError, match="holds a trials/ folder but no experiment.json"):
        check_experiment(open_output(str(tmp_path)), load_preset("quick"))


def test_second_driver_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = open_output(str(tmp_path))
    with OutputLock(out):
        with pytest.raises(OutputLockedError, match=rf"in use by another sweep driver \(pid {os.getpid()} on "):
            OutputLock(out).acquire()
    assert not (tmp_path / ".lock").exists()
    OutputLock(out).acquire().release()  # free again


def test_a_stale_lock_of_a_dead_driver_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    lock = OutputLock(open_output(str(tmp_path))).acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_an_empty_lock_file_is_stale_only_once_it_is_old(tmp_path):
    (tmp_path / ".lock").write_text("")  # a driver died between creating and writing it
    with pytest.raises(OutputLockedError, match="lock is being written"):
        OutputLock(open_output(str(tmp_path))).acquire()
    os.utime(tmp_path / ".lock", (0, 0))
    OutputLock(open_output(str(tmp_path))).acquire().release()


def test_bad_output_locations_are_one_line():
    with pytest.raises(ValueError, match="output location must be a non-empty path or URI, got ''"):
        open_output("")
    with pytest.raises(ValueError, match="cannot use output location 'nosuchfs://x'"):
        open_output("nosuchfs://x")
