"""load_results: round trip and every kind of bad folder, each with a message that names the problem."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import load_results
from analysis.schema import CONFUSION_COLUMNS


def _first(folder):
    return sorted(folder.glob("*.parquet"))[0]


def test_round_trip_types_order_and_classes(small_dir, small):
    df = load_results(small_dir)
    assert list(df.columns) == list(CONFUSION_COLUMNS)
    assert len(df) == len(small)
    assert list(df["true_class"].cat.categories) == ["ant", "bee", "cat", "dog"]  # dataset order, not sorted
    assert df["true_class"].cat.ordered
    assert df["count"].dtype == np.int64 and df["seed"].dtype == np.int64
    keys = df[["noise_fraction", "train_fraction", "seed"]].drop_duplicates()
    assert keys.equals(keys.sort_values(["noise_fraction", "train_fraction", "seed"],
                                        ascending=[True, False, True]))
    assert df.index.equals(pd.RangeIndex(len(df)))
    assert df["count"].sum() == small["count"].sum()


def test_uri_and_hidden_temp_files(small_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(small_dir, out)
    shutil.copy(_first(out / "confusion"), out / "confusion" / ".tmp-half-written.parquet")
    shutil.copy(_first(out / "confusion"), out / "confusion" / "_partial.parquet")
    df = load_results(f"file://{out}")
    assert df["trial_id"].nunique() == len(list((out / "trials").glob("*.parquet")))


def test_missing_folder():
    with pytest.raises(FileNotFoundError, match="results folder not found"):
        load_results("/nonexistent/results")


def test_not_a_results_folder(tmp_path):
    with pytest.raises(ValueError, match="no confusion/ dataset"):
        load_results(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "confusion").mkdir()
    with pytest.raises(ValueError, match="folder is empty"):
        load_results(tmp_path)


def test_folder_of_other_parquet(tmp_path):
    (tmp_path / "confusion").mkdir()
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "confusion" / "other.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['experiment', 'trial_id'"):
        load_results(tmp_path)


def _rewrite(path, change):
    table = pq.read_table(path).to_pandas()
    pq.write_table(pa.Table.from_pandas(change(table), preserve_index=False), path)


def test_missing_column_is_named(write):
    out = write()
    for path in (out / "confusion").glob("*.parquet"):
        _rewrite(path, lambda t: t.drop(columns="realized_noise"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['realized_noise'\]"):
        load_results(out)


def test_nan_values(write):
    out = write()
    _rewrite(_first(out / "confusion"), lambda t: t.assign(realized_noise=np.nan))
    with pytest.raises(ValueError, match="NaN value.*'realized_noise'"):
        load_results(out)


def test_negative_counts(write):
    out = write()
    _rewrite(_first(out / "confusion"), lambda t: t.assign(count=np.where(t.index == 1, -3, t["count"])))
    with pytest.raises(ValueError, match="negative count -3"):
        load_results(out)


def test_trial_present_twice(write):
    out = write()
    shutil.copy(_first(out / "confusion"), out / "confusion" / "copy-of-a-trial.parquet")
    with pytest.raises(ValueError, match="present more than once"):
        load_results(out)


def test_two_trials_for_one_grid_point(write):
    out = write()
    path = _first(out / "confusion")
    _rewrite(path, lambda t: t)
    shutil.copy(path, out / "confusion" / "other.parquet")
    _rewrite(out / "confusion" / "other.parquet", lambda t: t.assign(trial_id="ffffffffffffffff"))
    with pytest.raises(ValueError, match="has 2 trials"):
        load_results(out)


def test_cells_must_sum_to_test_size(write):
    out = write()
    _rewrite(_first(out / "trials"), lambda t: t.assign(test_size=t["test_size"] + 5))
    with pytest.raises(ValueError, match="sum to .* test_size"):
        load_results(out)


def test_missing_rows_of_a_trial(write):
    out = write()
    _rewrite(_first(out / "confusion"), lambda t: t.iloc[:-1])
    with pytest.raises(ValueError, match=r"has 15 confusion rows .*expected K\*K = 16"):
        load_results(out)


def test_unfinished_trial_is_dropped_with_a_warning(write):
    out = write()
    _first(out / "trials").unlink()
    with pytest.warns(UserWarning, match="no trials/ row"):
        df = load_results(out)
    assert df["trial_id"].nunique() == len(list((out / "trials").glob("*.parquet")))
