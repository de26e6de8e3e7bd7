"""Several results folders as one table: a layer over the single-folder load, checked and combined.

The common case is a model (or a recipe) per folder on the same dataset and grid: the combined table
is then what one sweep running both models would have written, because a trial's training subset and
noisy labels come from its seed, dataset, train size and noise settings, never from its model (README,
"Common random numbers"). Each folder is read and checked alone by :func:`analysis.load.load_results`;
this module then refuses what cannot be combined, in one line: a folder given twice (the same path, or
a copy holding the same trials), class lists that differ (names or order), one grid point under two
trial ids, and trials of one dataset scored on different test sets. When the folders hold more than
one experiment, every model is labelled ``<experiment>/<model>``, so the model axis tells the folders
apart even when two of them swept the same model (a dataset, or a recipe, per folder).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from .load import _filesystem, load_results
from .schema import STRING_KEYS

SORT = ["experiment", "model", "noise_mode", "noise_fraction", "train_fraction", "seed", "true_class", "pred_class"]
# TrialConfig fields that decide a trial's training data besides the contract's columns: with the same
# values (and seed, dataset, train size, noise mode and fraction) two trials train on the same examples
# with the same noisy labels, whatever their model.
DATA_SETTINGS = ("subset_mode", "noise_pairs", "noise_matrix")


def results_paths(path_or_paths) -> list:
    """The folders named by ``path_or_paths``: ``[path]`` for one str/PathLike, else the sequence's items."""
    if isinstance(path_or_paths, (str, os.PathLike)):
        return [path_or_paths]
    if not isinstance(path_or_paths, (list, tuple)):  # a set has no order, a str is one path
        raise TypeError("results must be a path (str or os.PathLike) or a list of paths, got "
                        f"{type(path_or_paths).__name__}")
    paths = list(path_or_paths)
    if not paths:
        raise ValueError("no results folder given: pass a path or a non-empty list of paths")
    bad = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise TypeError(f"every results folder must be a str or os.PathLike, got {type(bad[0]).__name__} {bad[0]!r}")
    return paths


def _resolved(path) -> str:
    text = os.fspath(path)
    return text.rstrip("/") if "://" in text else os.path.realpath(text)


def _classes(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df["true_class"].cat.categories]


def _per_trial(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its key columns, string keys as str."""
    first = ~df["trial_id"].duplicated().to_numpy()
    columns = ["trial_id", *STRING_KEYS, "noise_fraction", "train_fraction", "seed", "train_size", "realized_noise"]
    return df.loc[first, columns].astype({c: str for c in ("trial_id", *STRING_KEYS)})


def _test_set(df: pd.DataFrame) -> np.ndarray:
    """Test examples per true class, of the table's first trial (load_results checked the rest agree)."""
    trial = df[df["trial_id"] == df["trial_id"].iloc[0]]
    return trial.groupby("true_class", observed=False)["count"].sum().to_numpy()


def _data_settings(path) -> set[tuple]:
    """The distinct DATA_SETTINGS of a folder's trials, from ``trials/``'s config_json (empty when absent)."""
    fs, root = _filesystem(path)
    where = f"{root.rstrip('/')}/trials"
    if fs.get_file_info(where).type != pafs.FileType.Directory:
        return set()
    dataset = ds.dataset(where, filesystem=fs, format="parquet")
    if "config_json" not in dataset.schema.names:
        return set()
    settings = set()
    for text in set(dataset.to_table(columns=["config_json"]).column("config_json").to_pylist()):
        config = json.loads(text) if text else {}
        settings.add(tuple(json.dumps(config.get(key), sort_keys=True) for key in DATA_SETTINGS))
    return settings


def load_several(paths: Sequence) -> tuple[pd.DataFrame, list[tuple[str, list[str]]]]:
    """Load, check and combine several results folders; see :func:`analysis.load_results`.

    Returns the combined table and, per folder in the order given, ``(path, its experiments)``.
    """
    paths = results_paths(paths)
    seen: dict[str, str] = {}
    for path in paths:
        key = _resolved(path)
        if key in seen:
            raise ValueError(f"the results folder {os.fspath(path)} is given twice (as {seen[key]} and "
                             f"{os.fspath(path)}); give each folder once")
        seen[key] = os.fspath(path)
    if len(paths) == 1:  # exactly the single-folder load, its warnings as they are
        frame = load_results(paths[0])
        return frame, [(os.fspath(paths[0]), sorted(map(str, frame["experiment"].unique())))]
    frames = []
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            frame = load_results(path)
        for w in caught:  # say which folder a loader warning is about
            warnings.warn(f"{os.fspath(path)}: {w.message}", w.category, stacklevel=3)
        frames.append(frame)
    names = [os.fspath(p) for p in paths]

    classes = _classes(frames[0])
    for name, frame in zip(names[1:], frames[1:]):
        other = _classes(frame)
        if other != classes:
            only_a = [c for c in classes if c not in other]
            only_b = [c for c in other if c not in classes]
            differ = (f"only in {names[0]}: {only_a}, only in {name}: {only_b}" if only_a or only_b
                      else "the same classes in another order")
            raise ValueError(f"{names[0]} and {name} do not share their classes ({differ}; {names[0]} has "
                             f"{classes}, {name} has {other}); folders are analysed together only when their "
                             "class lists are the same, in the same order")

    trials = [_per_trial(frame) for frame in frames]
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            same = trials[i].merge(trials[j], on=["experiment", "trial_id"])
            if len(same):
                raise ValueError(f"{names[i]} and {names[j]} hold the same trials of experiment "
                                 f"{same['experiment'].iloc[0]!r} (e.g. trial {same['trial_id'].iloc[0]}): the same "
                                 "folder twice, or a copy of it; give each folder once")
    keys = ["experiment", "dataset", "model", "noise_mode", "noise_fraction", "train_fraction", "seed"]
    points = pd.concat([t[keys].assign(folder=k) for k, t in enumerate(trials)], ignore_index=True)
    clash = points.duplicated(keys, keep=False)
    if clash.any():
        row = points[clash].iloc[0]
        where = sorted(set(points.loc[clash & (points[keys] == row[keys]).all(axis=1), "folder"]))
        raise ValueError(f"grid point (experiment {row['experiment']!r}, model {row['model']!r}, noise_fraction "
                         f"{row['noise_fraction']}, train_fraction {row['train_fraction']}, seed {row['seed']}) has "
                         f"a trial in both {names[where[0]]} and {names[where[-1]]} under different trial ids (two "
                         "recipes under one experiment name?); rename one experiment or give one folder")

    tests: dict[str, tuple[str, np.ndarray]] = {}
    for name, frame in zip(names, frames):
        for dataset, part in frame.groupby("dataset", observed=True):
            sizes = _test_set(part)
            first = tests.setdefault(str(dataset), (name, sizes))
            if not np.array_equal(first[1], sizes):
                raise ValueError(f"dataset {dataset!r} was scored on different test sets in {first[0]} and {name} "
                                 f"(class sizes {first[1].astype(int).tolist()} vs {sizes.astype(int).tolist()}); "
                                 "results of one dataset must count the same test set")
    _warn_unpaired(names, trials, paths)

    folders = [(name, sorted(set(t["experiment"]))) for name, t in zip(names, trials)]
    experiments = sorted({e for _, exps in folders for e in exps})
    if len(experiments) > 1:
        frames = [_labelled(frame) for frame in frames]
    # Categoricals with one sorted category list per column concatenate as categoricals (codes, not
    # strings: cheap at millions of rows); the class columns already share theirs.
    for column in (*STRING_KEYS, "trial_id"):
        categories = sorted({str(c) for frame in frames for c in frame[column].cat.categories})
        frames = [frame.assign(**{column: frame[column].cat.set_categories(categories)}) for frame in frames]
    if all(len(exps) == 1 for _, exps in folders) and len(experiments) == len(folders):
        # One experiment per folder, each sorted by load_results: in experiment order they are sorted.
        order = np.argsort([exps[0] for _, exps in folders], kind="stable")
        combined = pd.concat([frames[k] for k in order], ignore_index=True)
    else:
        combined = pd.concat(frames, ignore_index=True)
        combined = combined.sort_values(SORT, ascending=[True, True, True, True, False, True, True, True])
    return combined.reset_index(drop=True), folders


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``model`` as ``<experiment>/<model>``, built on the categories (a handful of labels, not a string a row)."""
    experiments, models = frame["experiment"].cat.categories, frame["model"].cat.categories
    pair = frame["experiment"].cat.codes.to_numpy(np.int64) * len(models) + frame["model"].cat.codes.to_numpy(np.int64)
    used, codes = np.unique(pair, return_inverse=True)
    labels = [f"{experiments[u // len(models)]}/{models[u % len(models)]}" for u in used]
    return frame.assign(model=pd.Categorical.from_codes(codes.reshape(-1), categories=labels))


def _warn_unpaired(names: list[str], trials: list[pd.DataFrame], paths: list) -> None:
    """Warn when folders of one dataset and noise mode drew their training data differently: different
    subset modes or noise pairs/matrices (from config_json), or trials at the same seed, noise fraction
    and train fraction with a different train size or realized noise. Same-seed trials then do not share
    their subsets and noisy labels, and comparisons across the folders are not paired."""
    keys = ["dataset", "noise_mode", "noise_fraction", "train_fraction", "seed"]
    trials = [t[[*keys, "train_size", "realized_noise"]].drop_duplicates(keys) for t in trials]
    for i in range(len(trials)):
        for j in range(i + 1, len(trials)):
            both = trials[i].merge(trials[j], on=keys, suffixes=("_a", "_b"))
            differ = (both["train_size_a"] != both["train_size_b"]) | ~np.isclose(both["realized_noise_a"],
                                                                                   both["realized_noise_b"])
            if differ.any():
                r = both[differ].iloc[0]
                warnings.warn(f"{names[i]} and {names[j]} trained on different data at the same seed: "
                              f"{r['dataset']}, noise {r['noise_mode']} {r['noise_fraction']:g}, train fraction "
                              f"{r['train_fraction']:g}, seed {r['seed']} has train_size {r['train_size_a']} and "
                              f"realized noise {r['realized_noise_a']:.4f} in one, {r['train_size_b']} and "
                              f"{r['realized_noise_b']:.4f} in the other; comparisons across them are not paired",
                              stacklevel=3)
                return
    seen: dict[tuple[str, str], tuple[str, set]] = {}
    for name, t, path in zip(names, trials, paths):
        settings = _data_settings(path)
        if not settings:
            continue  # no config_json to compare (synthetic or hand-written results)
        for dataset, mode in set(zip(t["dataset"], t["noise_mode"])):
            first = seen.setdefault((dataset, mode), (name, settings))
            if first[1] != settings:
                warnings.warn(f"{first[0]} and {name} both hold {dataset} with noise mode {mode} but draw their "
                              f"training data differently ({', '.join(DATA_SETTINGS)}: {sorted(first[1])} vs "
                              f"{sorted(settings)}), so their same-seed trials do not share subsets and noisy "
                              "labels; comparisons across them are not paired", stacklevel=3)


__all__ = ["load_several", "results_paths"]
