"""Learning curves (OUT/epochs): when a model memorises the wrong labels, and whose first.

``OUT/epochs/<trial_id>.parquet`` holds, per epoch and true class, counts read from the training
passes (``sweep.engine.curves``): examples seen, fitted to their given label, corrupted, and
*memorised* (corrupted and predicted as their wrong label). :func:`load_epochs` reads and checks
them; :func:`memorisation_curves` gives the share of corrupted examples memorised against epoch,
mean over seeds with a t-interval, per cell (and class); :func:`memorisation_order` says which
classes' wrong labels are learned first.

"First" is measured by the memorised share averaged over the epochs (the area under the class's
memorisation curve, divided by the epochs): it is defined for every class with corrupted
examples, uses every epoch rather than one threshold crossing (a class has only tens of corrupted
examples on small data, so a crossing epoch jumps by whole epochs between seeds), and it is larger
both for a class memorised earlier and for one memorised more, which is the same thing read at any
fixed epoch. Each class is compared with the mean of all classes *in the same trial* (a paired
per-seed difference), so a seed that memorises everything faster does not make a class look fast.
The epoch at which the share first reaches half of its last-epoch value is reported beside it.
docs/analysis.md has the derivation.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sweep.contract import EPOCH_COUNT_COLUMNS, EPOCHS_SCHEMA

from .grid import check_options, holm, seed_mean
from .load import _kind_ok, optional_folder
from .schema import AXIS_DECIMALS, TRIAL_KEY_COLUMNS

KEY_COLUMNS = ("trial_id", *TRIAL_KEY_COLUMNS)
CELL = ["experiment", "model", "noise_mode", "noise_fraction", "train_fraction"]
TEST_COLUMNS = ("test_examples", "test_correct")  # null at epochs where the test set was not scored


class NoEpochsError(FileNotFoundError, ValueError):
    """OUT holds no learning curves (its trials ran before they were recorded)."""


def _kind(arrow_type: pa.DataType) -> str:
    return "str" if pa.types.is_string(arrow_type) else "int" if pa.types.is_integer(arrow_type) else "float"


def load_epochs(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate ``OUT/epochs``, the committed trials' learning curves.

    Parameters
    ----------
    path : str or os.PathLike
        The results folder OUT (local path or pyarrow URI).

    Returns
    -------
    pandas.DataFrame
        One row per (trial, epoch, true class): the key columns (experiment, trial_id, dataset,
        model, noise_mode, noise_fraction and train_fraction rounded to 6 decimals,
        realized_noise, train_size, seed), epoch (int64, 1-based), true_class (ordered
        categorical, the dataset's class order), examples, fitted, corrupted, memorised,
        corrupted_true (int64), loss_sum (float64), test_examples, test_correct (nullable Int64,
        <NA> at epochs where the test set was not scored). Sorted by model, noise_fraction,
        train_fraction (descending), seed, epoch, true_class; clean RangeIndex.

    Raises
    ------
    NoEpochsError
        OUT has no ``epochs/`` folder or no file in it (results from before learning curves).
    ValueError
        Missing or mistyped columns, nulls outside the test columns, negative counts, counts that
        contradict each other (more fitted or corrupted than examples, more memorised plus
        corrupted_true than corrupted, more test_correct than test_examples), a (trial, epoch,
        class) twice, or a trial whose epochs do not all list the same classes.

    Warns
    -----
    UserWarning
        When some trials have learning curves but no ``trials/`` row (unfinished; left out).
    """
    fs, root, dataset, where = optional_folder(path, "epochs", NoEpochsError,
                                               "its trials ran before learning curves were recorded")
    base = root.rstrip("/")
    wanted = {f.name: _kind(f.type) for f in EPOCHS_SCHEMA}
    missing = [c for c in wanted if c not in dataset.schema.names]
    if missing:
        raise ValueError(f"{where} is missing column(s) {missing}; learning curves need {list(wanted)}")
    for name, kind in wanted.items():
        if not _kind_ok(kind, dataset.schema.field(name).type):
            raise ValueError(f"column {name!r} in {where} has type {dataset.schema.field(name).type}; expected {kind}")
    table = dataset.to_table(columns=list(wanted))
    for name in wanted:
        column = table.column(name)
        bad = column.null_count + (pc.sum(pc.is_nan(column)).as_py() or 0 if pa.types.is_floating(column.type) else 0)
        if bad and name not in TEST_COLUMNS:
            raise ValueError(f"{bad} missing or NaN value(s) in column {name!r} of {where}")
    frame = table.to_pandas()
    for column in ("experiment", "trial_id", "dataset", "model", "noise_mode", "true_class"):
        frame[column] = frame[column].astype(str)
    for column in ("noise_fraction", "train_fraction"):
        frame[column] = np.round(frame[column].astype(np.float64), AXIS_DECIMALS)
    for column in ("epoch", *EPOCH_COUNT_COLUMNS):
        frame[column] = frame[column].astype(np.int64)
    for column in TEST_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    _check_counts(frame, where)

    trials_dir = f"{base}/trials"
    if fs.get_file_info(trials_dir).type == pafs.FileType.Directory:
        committed = set(ds.dataset(trials_dir, filesystem=fs, format="parquet").to_table(
            columns=["trial_id"]).column("trial_id").to_pylist())
        loose = sorted(set(frame["trial_id"]) - committed)
        if loose:
            warnings.warn(f"{len(loose)} trial(s) have learning curves but no trials/ row (unfinished?), "
                          f"e.g. {loose[0]}; they are left out", stacklevel=2)
            frame = frame[frame["trial_id"].isin(committed)]
    classes = list(dict.fromkeys(frame["true_class"]))  # the writer emits each epoch in class order
    frame["true_class"] = pd.Categorical(frame["true_class"], categories=classes, ordered=True)
    frame = frame.sort_values(["model", "noise_fraction", "train_fraction", "seed", "epoch", "true_class"],
                              ascending=[True, True, False, True, True, True], kind="stable")
    return frame.reset_index(drop=True)


def _check_counts(frame: pd.DataFrame, where: str) -> None:
    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            row = frame[mask].iloc[0]
            raise ValueError(f"trial {row['trial_id']} epoch {row['epoch']} class {row['true_class']!r} in {where}: {what}")

    counts = {c: frame[c].to_numpy() for c in EPOCH_COUNT_COLUMNS}
    fail(np.column_stack(list(counts.values())).min(axis=1) < 0, "a count is negative")
    fail(frame["epoch"].to_numpy() < 1, "epochs are numbered from 1")
    fail(counts["fitted"] > counts["examples"], "fitted exceeds examples")
    fail(counts["corrupted"] > counts["examples"], "corrupted exceeds examples")
    fail(counts["memorised"] + counts["corrupted_true"] > counts["corrupted"],
         "memorised + corrupted_true exceeds corrupted")
    test_ex, test_ok = frame["test_examples"], frame["test_correct"]
    fail((test_ex.isna() != test_ok.isna()).to_numpy(), "test_examples and test_correct must be null together")
    fail((test_ok > test_ex).fillna(False).to_numpy(bool) | (test_ok < 0).fillna(False).to_numpy(bool),
         "test_correct must be in [0, test_examples]")
    fail(frame.duplicated(["trial_id", "epoch", "true_class"]).to_numpy(), "the row is present twice")
    per_epoch = frame.groupby(["trial_id", "epoch"]).size()
    per_trial = per_epoch.groupby(level="trial_id").agg(["min", "max"])
    uneven = per_trial.index[(per_trial["min"] != per_trial["max"]).to_numpy()]
    if len(uneven):
        raise ValueError(f"trial {uneven[0]} lists different classes at different epochs in {where}")


def _check_epochs_frame(epochs: object) -> pd.DataFrame:
    needed = {*CELL, "seed", "trial_id", "epoch", "true_class", "memorised", "corrupted"}
    if not isinstance(epochs, pd.DataFrame):
        raise TypeError(f"epochs must be the DataFrame from load_epochs, got {type(epochs).__name__}")
    if needed - set(epochs.columns):
        raise ValueError(f"epochs lacks column(s) {sorted(needed - set(epochs.columns))}; pass the table from load_epochs")
    return epochs


def _over_seeds(shares: pd.Series, confidence: float) -> pd.DataFrame:
    """Seed mean and t-interval of ``shares`` (indexed by keys + seed)."""
    wide = shares.unstack("seed")
    v = seed_mean(wide.to_numpy(dtype=float), axis=1, confidence=confidence)
    out = wide.index.to_frame(index=False)
    for name in ("n", "mean", "se", "ci_low", "ci_high"):
        out["n_seeds" if name == "n" else name] = v[name]
    return out


def memorisation_curves(epochs: pd.DataFrame, *, by_class: bool = False, confidence: float = 0.95) -> pd.DataFrame:
    """The share of corrupted training examples predicted as their wrong label, against epoch.

    Parameters
    ----------
    epochs : pandas.DataFrame
        The table from :func:`load_epochs`.
    by_class : bool, keyword-only
        One curve per true class instead of one per cell.
    confidence : float, keyword-only
        Level of the t-intervals over seeds.

    Returns
    -------
    pandas.DataFrame
        experiment, model, noise_mode, noise_fraction, train_fraction, epoch, [true_class,]
        corrupted (corrupted examples per seed, mean over seeds), n_seeds, mean (memorised /
        corrupted, mean over seeds), se, ci_low, ci_high (t-interval; NaN with one seed).
        Cells or classes without corrupted examples (noise 0) are left out. Sorted by model,
        noise_fraction, train_fraction (descending), [true_class,] epoch; clean RangeIndex.
    """
    check_options(confidence=confidence)
    epochs = _check_epochs_frame(epochs)
    keys = CELL + (["true_class"] if by_class else []) + ["epoch"]
    sums = epochs.groupby([*keys, "seed"], observed=True)[["memorised", "corrupted"]].sum()
    sums = sums[sums["corrupted"] > 0]
    if sums.empty:
        raise ValueError("no trial has corrupted training examples (noise fraction 0 only): nothing is memorised")
    out = _over_seeds(sums["memorised"] / sums["corrupted"], confidence)
    corrupted = sums["corrupted"].groupby(keys, observed=True).mean()
    out.insert(len(keys), "corrupted", corrupted.reindex(pd.MultiIndex.from_frame(out[keys])).to_numpy())
    order = ["model", "noise_fraction", "train_fraction", *(["true_class"] if by_class else []), "epoch"]
    out = out.sort_values(order, ascending=[o != "train_fraction" for o in order], kind="stable")
    return out.reset_index(drop=True)


def memorisation_order(epochs: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Which classes' wrong labels are memorised first: each class's mean memorised share over the
    epochs, against the mean of all classes of the same trial.

    Parameters
    ----------
    epochs : pandas.DataFrame
        The table from :func:`load_epochs`.
    confidence : float, keyword-only
        Level of the t-intervals over seeds.

    Returns
    -------
    pandas.DataFrame
        experiment, model, noise_mode, noise_fraction, train_fraction, true_class, corrupted
        (corrupted examples of the class per seed, mean), n_seeds, auc (memorised share averaged
        over the epochs, mean over seeds), auc_ci_low, auc_ci_high, excess (auc minus the mean
        auc of the trial's classes, paired per seed; > 0 = memorised sooner than the average
        class), excess_ci_low, excess_ci_high, p (two-sided t-test of excess = 0), p_holm (p
        Holm-adjusted over the classes of the cell), half_epoch
        (first epoch at which the share reaches half of its last-epoch value, mean over seeds;
        NaN where nothing is memorised at the end), rank (1 = largest auc in the cell).
        Classes without corrupted examples are left out. Sorted by model, noise_fraction,
        train_fraction (descending), rank; clean RangeIndex.
    """
    check_options(confidence=confidence)
    epochs = _check_epochs_frame(epochs)
    rows = epochs[epochs["corrupted"] > 0]
    if rows.empty:
        raise ValueError("no trial has corrupted training examples (noise fraction 0 only): nothing is memorised")
    rows = rows.assign(share=rows["memorised"] / rows["corrupted"])
    keys = [*CELL, "true_class"]
    by_trial = rows.groupby([*keys, "seed"], observed=True)
    auc = by_trial["share"].mean()
    excess = auc - auc.groupby([*CELL, "seed"], observed=True).transform("mean")
    half = by_trial[["epoch", "share"]].apply(_half_epoch)
    a = _over_seeds(auc, confidence)
    e = _over_seeds(excess, confidence)
    h = half.groupby(keys, observed=True).mean()
    out = a[keys].copy()
    index = pd.MultiIndex.from_frame(out[keys])
    out["corrupted"] = by_trial["corrupted"].mean().groupby(keys, observed=True).mean().reindex(index).to_numpy()
    out["n_seeds"] = a["n_seeds"]
    out["auc"], out["auc_ci_low"], out["auc_ci_high"] = a["mean"], a["ci_low"], a["ci_high"]
    out["excess"], out["excess_ci_low"], out["excess_ci_high"] = e["mean"], e["ci_low"], e["ci_high"]
    out["p"] = seed_mean(excess.unstack("seed").to_numpy(dtype=float), axis=1, confidence=confidence)["p"]
    out["p_holm"] = out.groupby(CELL, observed=True)["p"].transform(lambda p: holm(p.to_numpy()))
    out["half_epoch"] = h.reindex(index).to_numpy()
    out["rank"] = out.groupby(CELL, observed=True)["auc"].rank(ascending=False, method="first").astype(np.int64)
    out = out.sort_values(["model", "noise_fraction", "train_fraction", "rank"],
                          ascending=[True, True, False, True], kind="stable")
    return out.reset_index(drop=True)


def _half_epoch(trial: pd.DataFrame) -> float:
    """First epoch at which one trial's class reaches half of its last-epoch memorised share."""
    trial = trial.sort_values("epoch")
    last = trial["share"].iloc[-1]
    if not last > 0:
        return float("nan")
    return float(trial["epoch"].to_numpy()[np.argmax(trial["share"].to_numpy() >= last / 2)])


def learned_first(order: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Per model, the classes memorised first at its highest noise level (largest train fraction):
    those whose excess over the class average is positive with a Holm-adjusted p < ``alpha``.

    Parameters
    ----------
    order : pandas.DataFrame
        The table from :func:`memorisation_order`.
    alpha : float, keyword-only
        Family-wise error level over the cell's classes (Holm-adjusted t-tests).

    Returns
    -------
    pandas.DataFrame
        The rows of ``order`` for those classes, same columns, plus settled (bool: p_holm < alpha and
        excess > 0; when no class is settled the cell's rank-1 class is returned with settled
        False). Sorted by model, rank; clean RangeIndex.
    """
    check_options(confidence=1 - alpha)
    picked = []
    for model, part in order.groupby("model", sort=True, observed=True):
        top = part[part["noise_fraction"] == part["noise_fraction"].max()]
        top = top[top["train_fraction"] == top["train_fraction"].max()]
        settled = top[(top["excess"] > 0) & (top["p_holm"] < alpha)]
        chosen = settled.assign(settled=True) if len(settled) else top[top["rank"] == 1].assign(settled=False)
        picked.append(chosen.sort_values("rank"))
    return pd.concat(picked, ignore_index=True) if picked else order.head(0).assign(settled=False)


def learned_first_sentences(first: pd.DataFrame, *, alpha: float = 0.05, chance: float | None = None) -> list[str]:
    """One sentence per model from :func:`learned_first`'s table (made with the same ``alpha``).

    ``chance`` (1/K, the share a guess matches) adds a caveat when a named class's share interval
    reaches it: the measure is per true class, so near chance an excess marks the class the model is
    least sure of (its predictions spread over the others, matching shuffled labels more often), not
    memorisation (docs/cifar10-cpu-study.md shows it on CIFAR-10).
    """
    sentences = []
    for model, part in first.groupby("model", sort=True, observed=True):
        row = part.iloc[0]
        cell = f"{model} at noise {row['noise_fraction']:g} (train fraction {row['train_fraction']:g}, {int(row['n_seeds'])} seeds)"
        names = ", ".join(f"{r.true_class} ({r.auc:.2f}, excess {r.excess:+.2f} [{r.excess_ci_low:+.2f}, {r.excess_ci_high:+.2f}])"
                          for r in part.itertuples())
        if bool(row["settled"]):
            sentences.append(f"{cell} memorises the wrong labels of class{'es' if len(part) > 1 else ''} {names} "
                             "first: mean memorised share over the epochs, and its excess over the average class "
                             f"with its seed interval; Holm p < {alpha:g} over the classes.")
            if chance is not None and (part["auc_ci_low"] <= chance).any():
                sentences[-1] += (f" But the share is within chance (1/K = {chance:.2f}): at this level the excess "
                                  "marks the class the model is least sure of, whose predictions match shuffled "
                                  "labels more often, rather than memorisation.")
        else:
            sentences.append(f"{cell}: no class's wrong labels are memorised measurably sooner than the average "
                             f"class (Holm p = {row['p_holm']:.2f} for the earliest over the classes); the earliest "
                             f"is {names}: mean memorised share over the epochs, excess over the average class.")
    return sentences
