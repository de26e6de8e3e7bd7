"""Read a results folder (``OUT/confusion`` and ``OUT/trials``) and refuse anything inconsistent.

Every check names the bad value and what is allowed, because a wrong number in a ranking is worse
than no ranking. The checks are vectorized (integer codes and ``np.bincount``), so a million rows
validate in well under a second.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from .schema import AXIS_DECIMALS, CONFUSION_COLUMNS, STRING_KEYS, TRIAL_KEY_COLUMNS, TRIALS_COLUMNS


def _filesystem(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"results path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if "://" in text:
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), os.path.abspath(text)


def optional_folder(path: str | os.PathLike, name: str, missing: type[Exception],
                    why: str) -> tuple[pafs.FileSystem, str, ds.Dataset, str]:
    """(filesystem, root, dataset, where) of the optional result folder ``path/name`` (probs/, epochs/):
    ``missing`` (one line, ending in ``why``) when the folder is absent or holds no Parquet file."""
    fs, root = _filesystem(path)
    where, folder = f"{os.fspath(path)}/{name}", f"{root.rstrip('/')}/{name}"
    if fs.get_file_info(folder).type != pafs.FileType.Directory:
        raise missing(f"{os.fspath(path)} has no {name}/ folder: {why}")
    dataset = ds.dataset(folder, filesystem=fs, format="parquet")
    if not dataset.files:
        raise missing(f"no Parquet files in {where}: {why}")
    return fs, root, dataset, where


def _kind_ok(kind: str, dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if kind == "str":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)
    if kind == "int":
        return pa.types.is_integer(dtype)
    return pa.types.is_floating(dtype) or pa.types.is_integer(dtype)


def _first_appearance(column: pd.Series) -> list[str]:
    """A categorical's values in order of first appearance (hashing the codes, not sorting the rows)."""
    cats = column.cat.categories
    return [str(cats[c]) for c in pd.unique(column.cat.codes.to_numpy()) if c >= 0]


def _drop_unused(column: pd.Series) -> pd.Series:
    """``remove_unused_categories``, skipped when every category is used (its np.unique sorts all rows)."""
    used = np.bincount(column.cat.codes.to_numpy() + 1, minlength=len(column.cat.categories) + 1)[1:] > 0
    return column if used.all() else column.cat.remove_unused_categories()


def _sort_rows(df: pd.DataFrame, keys: list[str], ascending: list[bool]) -> pd.DataFrame:
    """``df.sort_values(keys, ascending=...)`` (stable), through one int64 key per row, and not at all
    when the rows are in order already (compacted files are written in this order)."""
    key = np.zeros(len(df), dtype=np.int64)
    span = 1
    for column, up in zip(keys, ascending):
        values = df[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            rank, n = values.cat.codes.to_numpy(np.int64), len(values.cat.categories)
        else:
            codes, levels = pd.factorize(values.to_numpy(), sort=True)
            rank, n = codes.astype(np.int64), len(levels)
        if n == 0 or span > (2**62) // max(n, 1):
            return df.sort_values(keys, ascending=ascending, kind="stable")  # too many levels for one int64
        key = key * n + (rank if up else n - 1 - rank)
        span *= n
    if (np.diff(key) >= 0).all():
        return df
    return df.take(np.argsort(key, kind="stable"))


def _read_folder(fs: pafs.FileSystem, root: str, name: str, wanted: dict[str, str], *,
                 required: bool) -> pa.Table | None:
    """Read ``root/name`` as a Parquet dataset, keeping the ``wanted`` columns (checked by kind)."""
    where = f"{root.rstrip('/')}/{name}"
    info = fs.get_file_info(where)
    if info.type != pafs.FileType.Directory:
        if required:
            raise ValueError(f"{root} is not a results folder: no {name}/ dataset inside "
                             "(expected OUT/confusion/ and OUT/trials/ written by `sweep run`)")
        return None
    # Names starting with '.' or '_' (the writer's temp files) are skipped by pyarrow's default.
    # Strings are read as dictionaries: 10 million rows hold a few hundred distinct values, and
    # materialising them as strings first costs seconds and gigabytes.
    strings = [c for c, kind in wanted.items() if kind == "str"]
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=strings))
    dataset = ds.dataset(where, filesystem=fs, format=fmt)
    if not dataset.files:
        raise ValueError(f"no Parquet files in {where}: the folder is empty (has the sweep finished a trial?)")
    schema = dataset.schema
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise ValueError(f"{where} is missing column(s) {missing}; a results folder needs {list(wanted)} "
                         f"(found {schema.names[:12]}{' ...' if len(schema.names) > 12 else ''})")
    for column, kind in wanted.items():
        if not _kind_ok(kind, schema.field(column).type):
            raise ValueError(f"column {column!r} in {where} has type {schema.field(column).type}; "
                             f"expected {kind}")
    return dataset.to_table(columns=list(wanted), use_threads=True).unify_dictionaries()


def _check_no_missing(table: pa.Table, where: str) -> None:
    for column in table.column_names:
        data = table.column(column)
        bad = data.null_count
        if pa.types.is_floating(data.type):
            bad += pc.sum(pc.is_nan(data)).as_py() or 0
        if bad:
            raise ValueError(f"{bad} missing or NaN value(s) in column {column!r} of {where}; "
                             "every contract column must be filled")


def _codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(series, sort=False)
    return codes.astype(np.int64), pd.Index(uniques)


def _check_trials(df: pd.DataFrame, classes: list[str], where: str) -> tuple[np.ndarray, pd.Index]:
    """Each trial: K*K rows, every (true, pred) pair once, key columns constant. Returns trial codes."""
    K = len(classes)
    trial, trial_ids = _codes(df["trial_id"])
    n_trials = len(trial_ids)
    rows = np.bincount(trial, minlength=n_trials)
    bad = np.flatnonzero(rows != K * K)
    if bad.size:
        t = bad[0]
        if rows[t] > K * K:
            raise ValueError(f"trial {trial_ids[t]} is present more than once in {where} "
                             f"({rows[t]} rows; a trial has K*K = {K * K}); an interrupted compaction leaves "
                             "trials in their per-trial and compacted files: `sweep compact OUT` finishes it")
        raise ValueError(f"trial {trial_ids[t]} has {rows[t]} confusion rows in {where}; expected "
                         f"K*K = {K * K} (one per true/pred class pair over the {K} classes, zeros included)")
    true = df["true_class"].cat.codes.to_numpy(np.int64)
    pred = df["pred_class"].cat.codes.to_numpy(np.int64)
    pair = np.bincount((trial * K + true) * K + pred, minlength=n_trials * K * K)
    if (pair != 1).any():
        t = int(np.flatnonzero(pair != 1)[0] // (K * K))
        raise ValueError(f"trial {trial_ids[t]} repeats some (true_class, pred_class) pairs in {where}: "
                         "a trial is present twice or its rows are corrupt")
    # Files hold a trial's rows together, so the codes (in order of first appearance) rarely need sorting.
    order = np.arange(len(trial)) if (np.diff(trial) >= 0).all() else np.argsort(trial, kind="stable")
    starts = np.searchsorted(trial[order], np.arange(n_trials))
    for column in TRIAL_KEY_COLUMNS:
        values = df[column]
        codes = values.cat.codes.to_numpy() if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
        codes = codes[order]
        low, high = np.minimum.reduceat(codes, starts), np.maximum.reduceat(codes, starts)
        if (low != high).any():
            t = int(np.flatnonzero(low != high)[0])
            raise ValueError(f"trial {trial_ids[t]} has more than one value of {column!r} in {where}; "
                             "the key columns must be constant within a trial")
    return trial, trial_ids


def load_results(path: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Read and validate a sweep's results folder, or several side by side.

    Parameters
    ----------
    path : str or os.PathLike, or a list or tuple of them
        The folder ``OUT`` holding ``OUT/confusion/`` and ``OUT/trials/``; a local path or any
        pyarrow filesystem URI (``s3://bucket/out``, ``file:///...``). Several folders (a model or
        a dataset per folder) are each read and checked as one, then combined by
        :func:`analysis.several.load_several`: they must share their class list (same names, same
        order) and no trial; with more than one experiment, ``model`` reads ``<experiment>/<model>``.

    Returns
    -------
    pandas.DataFrame
        One row per (trial, true_class, pred_class), the 13 contract columns in contract order:
        experiment, trial_id, dataset, model, noise_mode (categorical), noise_fraction (float64,
        rounded to 6 decimals), realized_noise (float64), train_size (int64), train_fraction
        (float64, rounded to 6 decimals), seed (int64), true_class, pred_class (ordered categoricals
        in the dataset's class order, i.e. order of first appearance), count (int64).
        Sorted by experiment, model, noise_mode, noise_fraction, train_fraction (descending), seed,
        true_class, pred_class; clean RangeIndex. Extra columns on disk are not returned.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not a results folder; an empty folder; missing columns or wrong column types; missing or
        NaN values; negative counts; a trial with the wrong number of rows or present twice; two
        trials for one grid point; a trial whose counts do not sum to its ``test_size``; trials of
        one dataset that disagree on the test set's class sizes; values out of range.

    Warns
    -----
    UserWarning
        When ``OUT/trials`` is absent (the test-size check is skipped) or when some trials have
        confusion rows but no ``trials`` row (unfinished; they are dropped).
    """
    if not isinstance(path, (str, os.PathLike)):  # several folders: a layer over this single-folder load
        from .several import load_several

        return load_several(path)[0]
    if not os.fspath(path).strip():  # "" would silently mean the current folder
        raise ValueError("the results folder must be a non-empty path or URI, got ''")
    fs, root = _filesystem(path)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"results folder not found: {os.fspath(path)}")
    where = f"{os.fspath(path)}/confusion"
    table = _read_folder(fs, root, "confusion", CONFUSION_COLUMNS, required=True)
    _check_no_missing(table, where)
    if table.num_rows == 0:
        raise ValueError(f"{where} holds no rows")
    columns = {}
    for column, kind in CONFUSION_COLUMNS.items():
        data = table.column(column)
        if kind == "str":
            data = data.cast(pa.string()) if not pa.types.is_dictionary(data.type) else data
            data = pc.dictionary_encode(data.combine_chunks()) if not pa.types.is_dictionary(data.type) else data
        columns[column] = data
    df = pa.table(columns).to_pandas()
    for column, kind in CONFUSION_COLUMNS.items():
        if kind == "int":
            df[column] = df[column].astype(np.int64)
        elif kind == "float":
            df[column] = df[column].astype(np.float64)
    if (df["count"] < 0).any():
        row = df.loc[df["count"] < 0].iloc[0]
        raise ValueError(f"negative count {row['count']} in {where} (trial {row['trial_id']}, "
                         f"{row['true_class']} -> {row['pred_class']}); counts must be >= 0")
    for column, low, high, low_open in (("noise_fraction", 0.0, 1.0, False), ("train_fraction", 0.0, 1.0, True)):
        values = df[column].to_numpy()
        bad = (values <= low if low_open else values < low) | (values > high)
        if bad.any():
            raise ValueError(f"{column} must be in {'(' if low_open else '['}{low:g}, {high:g}], "
                             f"got {values[bad][0]!r} in {where}")
        df[column] = np.round(values, AXIS_DECIMALS)
    if (df["seed"] < 0).any():
        raise ValueError(f"seed must be >= 0, got {df.loc[df['seed'] < 0, 'seed'].iloc[0]} in {where}")

    # One class list, in order of first appearance (the writer emits the dataset's class order).
    classes: list[str] = []
    for column in ("true_class", "pred_class"):
        classes += [c for c in _first_appearance(df[column]) if c not in classes]
    for column in ("true_class", "pred_class"):
        df[column] = df[column].cat.set_categories(classes, ordered=True)
    for column in (*STRING_KEYS, "trial_id"):
        cats = df[column].cat.categories
        df[column] = df[column].cat.reorder_categories(sorted(cats))
    trial, trial_ids = _check_trials(df, classes, where)

    # One trial per grid point.
    first = np.zeros(len(trial_ids), dtype=np.int64)
    first[trial[::-1]] = np.arange(len(df))[::-1]
    keys = df.iloc[first][[*STRING_KEYS, "noise_fraction", "train_fraction", "seed"]].reset_index(drop=True)
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        row = keys[dup].iloc[0]
        same = trial_ids[dup & (keys == row).all(axis=1).to_numpy()]
        raise ValueError(f"grid point (model {row['model']!r}, noise_fraction {row['noise_fraction']}, "
                         f"train_fraction {row['train_fraction']}, seed {row['seed']}) has {len(same)} "
                         f"trials {list(same)}: a trial is present twice")

    # The test set is the same for every trial of a dataset: same total, same class sizes.
    K = len(classes)
    true = df["true_class"].cat.codes.to_numpy(np.int64)
    support = np.bincount(trial * K + true, weights=df["count"].to_numpy(), minlength=len(trial_ids) * K)
    support = support.reshape(len(trial_ids), K)
    dataset_code = df["dataset"].cat.codes.to_numpy()[first]
    for d in np.unique(dataset_code):
        rows = support[dataset_code == d]
        bad = np.flatnonzero((rows != rows[0]).any(axis=1))
        if bad.size:
            t = trial_ids[dataset_code == d][bad[0]]
            raise ValueError(f"trial {t} was scored on a different test set than the others of its dataset "
                             f"(class sizes {rows[bad[0]].astype(int).tolist()} vs {rows[0].astype(int).tolist()}); "
                             "every trial must count the whole test set once")

    trials = _read_folder(fs, root, "trials", TRIALS_COLUMNS, required=False)
    if trials is None:
        warnings.warn(f"{os.fspath(path)} has no trials/ dataset; the test_size check is skipped", stacklevel=2)
    else:
        _check_no_missing(trials, f"{os.fspath(path)}/trials")
        tt = trials.select(["trial_id", "test_size"]).to_pandas()
        tt["trial_id"] = tt["trial_id"].astype(str)
        if tt["trial_id"].duplicated().any():
            raise ValueError(f"trial {tt.loc[tt['trial_id'].duplicated(), 'trial_id'].iloc[0]} is present "
                             f"twice in {os.fspath(path)}/trials")
        test_size = tt.set_index("trial_id")["test_size"].reindex(trial_ids.astype(str))
        unfinished = test_size.isna().to_numpy()
        totals = support.sum(axis=1)
        bad = ~unfinished & (totals != test_size.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise ValueError(f"trial {trial_ids[t]}: confusion counts sum to {int(totals[t])} but trials/ "
                             f"says test_size {int(test_size.iloc[t])}; the cells of a trial must sum to "
                             "its test set")
        if unfinished.any():
            warnings.warn(f"{int(unfinished.sum())} trial(s) have confusion rows but no trials/ row "
                          f"(unfinished?), e.g. {trial_ids[unfinished][0]}; they are left out", stacklevel=2)
            keep = ~unfinished[trial]
            df = df[keep]
    df = _sort_rows(df, ["experiment", "model", "noise_mode", "noise_fraction", "train_fraction", "seed",
                         "true_class", "pred_class"], ascending=[True, True, True, True, False, True, True, True])
    for column in (*STRING_KEYS, "trial_id"):
        df[column] = _drop_unused(df[column])
    return df.reset_index(drop=True)
