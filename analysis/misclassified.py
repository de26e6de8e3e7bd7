"""The test images a model gets wrong most confidently, from the per-example probabilities (OUT/probs).

``OUT/probs/<trial_id>.parquet`` exists for trials run with ``keep_probs`` (``sweep run --keep-probs``):
one row per test example with its softmax vector in class order. :func:`load_probs` reads and checks
them as one long, tidy table (one row per trial, example and class); :func:`misclassified_examples`
takes the strongest directed confusions A -> B of a cell and, for each, the test images of class A
with the highest probability of B, averaged over the seeds, and in how many seeds the model
actually took them for B. An image confused in every seed is a "grey area" of the dataset rather
than bad luck of one run. The images themselves are read by :mod:`analysis.images`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.contract import PROBS_SCHEMA

from .load import _kind_ok, optional_folder
from .schema import AXIS_DECIMALS, TRIAL_KEY_COLUMNS

KEY_COLUMNS = ("trial_id", *TRIAL_KEY_COLUMNS)
PROB_TOLERANCE = 1e-3  # a softmax row may miss 1 by float32 rounding, not by more


class NoProbsError(FileNotFoundError, ValueError):
    """OUT holds no per-example probabilities (its trials ran without keep_probs)."""


def _classes_of(fs: pafs.FileSystem, root: str, trial_id: str) -> list[str]:
    """The dataset's class order: the writer emits a trial's confusion rows in it (true class outer),
    and compaction keeps them in that order. Read from the trial's own file, else (compacted) from the
    folder, filtered on the trial id (row-group statistics skip the other files' pages)."""
    path = f"{root.rstrip('/')}/confusion/{trial_id}.parquet"
    try:
        if fs.get_file_info(path).type == pafs.FileType.File:
            with fs.open_input_file(path) as fh:
                true = pq.read_table(fh, columns=["true_class"]).column("true_class").to_pylist()
        else:
            path = path.rsplit("/", 1)[0]
            true = ds.dataset(path, filesystem=fs, format="parquet").to_table(
                columns=["true_class"], filter=pc.field("trial_id") == trial_id).column("true_class").to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"cannot read the class order from {path}: {error}") from None
    if not true:
        raise ValueError(f"no confusion rows of trial {trial_id} in {path} to read the class order from")
    return list(dict.fromkeys(str(c) for c in true))


def load_probs(path: str | os.PathLike, *, model: str | None = None, noise_fraction: float | None = None,
               train_fraction: float | None = None) -> pd.DataFrame:
    """Read and validate ``OUT/probs``, optionally only one model or cell.

    Parameters
    ----------
    path : str or os.PathLike
        The results folder OUT (local path or pyarrow URI).
    model, noise_fraction, train_fraction : keyword-only, optional
        Read only the trials with these values (train_fraction matched to 6 decimals).

    Returns
    -------
    pandas.DataFrame
        One row per (trial, example, class): trial_id, the key columns (experiment, dataset,
        model, noise_mode, noise_fraction, realized_noise, train_size, train_fraction, seed),
        example (int64, index in the test split), true_class, pred_class (the trial's prediction),
        class_name (ordered categoricals in the dataset's class order), prob (float32, the softmax
        probability of class_name). Sorted by model, noise_fraction, train_fraction (descending),
        seed, example, class_name; clean RangeIndex.

    Raises
    ------
    NoProbsError
        OUT has no ``probs/`` folder, or none of its files match the filter.
    ValueError
        Missing or mistyped columns, nulls, a probability vector whose length is not K, values
        outside [0, 1] or rows not summing to 1, a pred_class that is not the vector's argmax, an
        example twice in a trial, or trials of one dataset that disagree on the test labels.
    """
    fs, root, dataset, where = optional_folder(path, "probs", NoProbsError, "its trials ran without keep_probs")
    schema = dataset.schema
    wanted = {f.name: f.type for f in PROBS_SCHEMA}
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise ValueError(f"{where} is missing column(s) {missing}; per-example probabilities need {list(wanted)}")
    for name, kind in wanted.items():
        have = schema.field(name).type
        ok = (pa.types.is_list(have) or pa.types.is_large_list(have)) if name == "probs" else _kind_ok(
            "str" if pa.types.is_string(kind) else "int" if pa.types.is_integer(kind) else "float", have)
        if not ok:
            raise ValueError(f"column {name!r} in {where} has type {have}; expected {kind}")
    condition = None
    for column, value in (("model", model), ("noise_fraction", noise_fraction), ("train_fraction", train_fraction)):
        if value is None:
            continue
        test = (ds.field(column) == value) if column == "model" else (
            pc.abs(pc.subtract(ds.field(column), float(value))) < 0.5 * 10.0 ** -AXIS_DECIMALS)
        condition = test if condition is None else condition & test
    table = dataset.to_table(columns=list(wanted), filter=condition)
    if table.num_rows == 0:
        raise NoProbsError(f"{where} holds no probabilities for model {model!r}, noise_fraction {noise_fraction!r}, "
                           f"train_fraction {train_fraction!r}")
    for name in wanted:
        if table.column(name).null_count:
            raise ValueError(f"{table.column(name).null_count} missing value(s) in column {name!r} of {where}")
    frame = table.drop(["probs"]).to_pandas()
    for column in ("experiment", "trial_id", "dataset", "model", "noise_mode", "true_class", "pred_class"):
        frame[column] = frame[column].astype(str)
    for column in ("noise_fraction", "train_fraction"):
        frame[column] = np.round(frame[column].astype(np.float64), AXIS_DECIMALS)

    lists = table.column("probs").combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    classes = _classes_of(fs, root, frame["trial_id"].iloc[0])
    K = len(classes)
    if (lengths != K).any():
        row = int(np.flatnonzero(lengths != K)[0])
        raise ValueError(f"trial {frame['trial_id'].iloc[row]} example {frame['example'].iloc[row]} has "
                         f"{lengths[row]} probabilities in {where}; the dataset has K = {K} classes {classes}")
    probs = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, K)
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"probabilities in {where} must be finite numbers in [0, 1]")
    total = probs.sum(axis=1, dtype=np.float64)
    if (np.abs(total - 1) > PROB_TOLERANCE).any():
        row = int(np.argmax(np.abs(total - 1)))
        raise ValueError(f"the probabilities of trial {frame['trial_id'].iloc[row]} example "
                         f"{frame['example'].iloc[row]} sum to {total[row]:.4f} in {where}; a softmax sums to 1")
    argmax = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    bad = argmax != frame["pred_class"].to_numpy(dtype=object)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"trial {frame['trial_id'].iloc[row]} example {frame['example'].iloc[row]}: pred_class "
                         f"{frame['pred_class'].iloc[row]!r} is not its most probable class {argmax[row]!r} in {where}")
    unknown = sorted(set(frame["true_class"]) - set(classes))
    if unknown:
        raise ValueError(f"true_class value(s) {unknown} in {where} are not classes of the dataset {classes}")
    if frame.duplicated(["trial_id", "example"]).any():
        row = frame[frame.duplicated(["trial_id", "example"])].iloc[0]
        raise ValueError(f"trial {row['trial_id']} has example {row['example']} twice in {where}")
    labels = frame.drop_duplicates(["dataset", "example", "true_class"])
    clash = labels.duplicated(["dataset", "example"])
    if clash.any():
        row = labels[clash].iloc[0]
        raise ValueError(f"trials of {row['dataset']!r} disagree on the true class of test example {row['example']} "
                         f"in {where}; every trial must score the same test split")

    n = len(frame)
    out = frame.loc[np.repeat(np.arange(n), K), [*KEY_COLUMNS, "example", "true_class", "pred_class"]]
    out = out.reset_index(drop=True)
    out["class_name"] = np.tile(np.asarray(classes, dtype=object), n)
    out["prob"] = probs.reshape(-1)
    for column in ("true_class", "pred_class", "class_name"):
        out[column] = pd.Categorical(out[column], categories=classes, ordered=True)
    out = out.sort_values(["model", "noise_fraction", "train_fraction", "seed", "example", "class_name"],
                          ascending=[True, True, False, True, True, True], kind="stable")
    return out.reset_index(drop=True)


def misclassified_examples(probs: pd.DataFrame, *, top_pairs: int = 3, per_pair: int = 6,
                           noise_fraction: float | None = None, train_fraction: float | None = None) -> pd.DataFrame:
    """The test images most confidently taken for another class, for a cell's strongest confusions.

    Parameters
    ----------
    probs : pandas.DataFrame
        The table from :func:`load_probs`.
    top_pairs : int, keyword-only
        Directed confusions A -> B per model, the most frequent in the cell first (>= 1).
    per_pair : int, keyword-only
        Images per confusion (>= 1): those of class A with the highest mean probability of B that
        were taken for B in at least one seed.
    noise_fraction, train_fraction : float, keyword-only, optional
        The cell; default each model's baseline among the trials with probabilities (noise 0 if
        present, else the lowest noise; the largest train fraction there).

    Returns
    -------
    pandas.DataFrame
        One row per image shown: model, noise_fraction, train_fraction, true_class, pred_class
        (the confusion A -> B), pair_rank (1 = most frequent confusion), pair_rate (share of A's
        test images taken for B, over the seeds), example (index in the test split), mean_prob
        (probability of B, mean over the seeds), sd_prob (its sd over seeds, NaN with one seed),
        seeds_wrong (seeds in which the image was taken for B), n_seeds (seeds with probabilities).
        Sorted by model, pair_rank, mean_prob (descending), example; clean RangeIndex. Empty (with
        these columns) when the cell has no mistake.
    """
    for name, value in (("top_pairs", top_pairs), ("per_pair", per_pair)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    needed = {"model", "noise_fraction", "train_fraction", "seed", "example", "true_class", "pred_class",
              "class_name", "prob"}
    if not isinstance(probs, pd.DataFrame):
        raise TypeError(f"probs must be the DataFrame from load_probs, got {type(probs).__name__}")
    if needed - set(probs.columns):
        raise ValueError(f"probs lacks column(s) {sorted(needed - set(probs.columns))}; pass the table from load_probs")
    columns = ["model", "noise_fraction", "train_fraction", "true_class", "pred_class", "pair_rank", "pair_rate",
               "example", "mean_prob", "sd_prob", "seeds_wrong", "n_seeds"]
    classes = list(probs["class_name"].cat.categories)
    K = len(classes)
    parts = []
    for model, part in probs.groupby("model", sort=True, observed=True):
        x = noise_fraction if noise_fraction is not None else (
            0.0 if (part["noise_fraction"] == 0).any() else part["noise_fraction"].min())
        cell = part[np.isclose(part["noise_fraction"], x)]
        f = train_fraction if train_fraction is not None else cell["train_fraction"].max()
        cell = cell[np.isclose(cell["train_fraction"], f)]
        if cell.empty:
            raise ValueError(f"model {model!r} has no probabilities at noise_fraction {x!r}, train_fraction {f!r}")
        seeds = np.sort(cell["seed"].unique())
        examples = np.sort(cell["example"].unique())
        S, N = len(seeds), len(examples)
        s_idx = np.searchsorted(seeds, cell["seed"].to_numpy())
        e_idx = np.searchsorted(examples, cell["example"].to_numpy())
        k_idx = cell["class_name"].cat.codes.to_numpy()
        P = np.full((S, N, K), np.nan, dtype=np.float64)
        P[s_idx, e_idx, k_idx] = cell["prob"].to_numpy()
        true = np.empty(N, dtype=np.int64)
        true[e_idx] = cell["true_class"].cat.codes.to_numpy()
        present = ~np.isnan(P[..., 0])  # (S, N): a seed may lack an example only if its file is partial
        pred = np.where(present, np.nan_to_num(P, nan=-1.0).argmax(axis=-1), -1)  # (S, N) class index
        wrong = np.zeros((K, K))
        np.add.at(wrong, (np.broadcast_to(true, pred.shape)[present], pred[present]), 1)
        support = np.bincount(true, minlength=K) * S
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = wrong / support[:, None]
        np.fill_diagonal(rate, 0.0)
        pairs = [(a, b) for a, b in zip(*np.unravel_index(np.argsort(-rate, axis=None, kind="stable"), rate.shape))
                 if rate[a, b] > 0][:top_pairs]
        for rank, (a, b) in enumerate(pairs, start=1):
            members = np.flatnonzero(true == a)
            p_b = P[:, members, b]
            n_wrong = (pred[:, members] == b).sum(axis=0)
            keep = n_wrong > 0
            mean = np.nanmean(p_b, axis=0)
            sd = np.nanstd(p_b, axis=0, ddof=1) if S > 1 else np.full(len(members), np.nan)
            order = np.lexsort((examples[members], -mean))
            order = order[keep[order]][:per_pair]
            parts.append(pd.DataFrame({
                "model": model, "noise_fraction": float(x), "train_fraction": float(f),
                "true_class": classes[a], "pred_class": classes[b], "pair_rank": rank, "pair_rate": float(rate[a, b]),
                "example": examples[members][order].astype(np.int64), "mean_prob": mean[order], "sd_prob": sd[order],
                "seeds_wrong": n_wrong[order].astype(np.int64),
                "n_seeds": (~np.isnan(p_b[:, order])).sum(axis=0).astype(np.int64)}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    for column in ("true_class", "pred_class"):
        out[column] = pd.Categorical(out[column], categories=classes, ordered=True)
    return out[columns].reset_index(drop=True)


__all__ = ["load_probs", "misclassified_examples", "NoProbsError"]
