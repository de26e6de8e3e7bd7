"""Synthetic sweep results with planted truths, in the exact Parquet contract of the sweep.

Use them to check the statistics (does the analysis recover what was planted?), to test the report
without a GPU, and to benchmark at scale. The generative model, per model m, class k, seed s and grid
cell (noise fraction x, train fraction f):

    recall = base_k - slope_k * x - collapse_k * max(0, x - collapse_at) - scale_k * (f**-0.5 - 1)
             + u[m, s, k] + e[m, x, f, s, k]            (clipped to [0.01, 0.995])

``u`` is a per-seed effect shared by every cell of that seed (the sweep's common random numbers make
same-seed trials alike), ``e`` is small per-trial jitter. A class's errors are spread over the other
classes by fixed weights, with one planted directed confusion A -> B (most of A's errors go to B,
almost none of B's to A). Each confusion row is then a multinomial draw of the finite test set
(``test_per_class`` examples per class), so counts carry real sampling noise.

Planted truths, with the defaults of :class:`SyntheticSpec` (CIFAR-10 class names):
    collapse_class "bird"       flat until noise 0.3, then recall falls 2.5 per unit of noise
    noise_hurts_class "cat"     loses 0.4 recall per unit of noise, little to less data
    data_hungry_class "frog"    hardly minds noise (0.06 per unit), loses much to less data
    flat_classes                "automobile", "truck": neither factor changes them
    confusion_pair              ("deer", "horse"): deer -> horse >> horse -> deer
    the other classes           moderate linear noise slopes and power-law size effects
With several models the ordinary classes' slopes are rotated, so their ranking depends on the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sweep.contract import trial_id

from .schema import CONFUSION_COLUMNS

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Every planted class may be None (not planted) and must be one of ``classes``."""

    classes: tuple[str, ...] = CIFAR10_CLASSES  # K class names, K >= 2
    models: tuple[str, ...] = ("blog_cnn",)
    noise_fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # each in [0, 1]
    train_fractions: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)  # each in (0, 1]
    n_seeds: int = 5  # seeds 0 .. n_seeds-1, >= 1
    full_train_size: int = 50_000  # examples in the full training split
    test_per_class: int = 1_000  # test examples per class (the test set is the same for every trial)
    base_recall: float = 0.85  # clean, full-size recall of an ordinary class
    noise_slopes: tuple[float, float] = (0.10, 0.20)  # ordinary classes: recall lost per unit noise, spread
    size_scales: tuple[float, float] = (0.04, 0.10)  # ordinary classes: scale of the f**-0.5 size effect
    collapse_class: str | None = "bird"
    collapse_at: float = 0.3  # noise fraction where the collapse starts
    collapse_slope: float = 2.5  # recall lost per unit noise past collapse_at
    noise_hurts_class: str | None = "cat"
    noise_hurts_slope: float = 0.4
    data_hungry_class: str | None = "frog"
    data_hungry_scale: float = 0.25
    flat_classes: tuple[str, ...] = ("automobile", "truck")
    flat_recall: float = 0.95
    confusion_pair: tuple[str, str] | None = ("deer", "horse")
    confusion_share: float = 0.8  # share of A's errors that go to B
    seed_sd: float = 0.01  # sd of the per-seed recall effect shared across cells
    cell_sd: float = 0.004  # sd of the per-trial jitter
    experiment: str = "synthetic"
    dataset: str = "synthetic"
    noise_mode: str = "symmetric"
    random_state: int = 0

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be >= 2 distinct names, got {self.classes!r}")
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds!r}")
        if not all(0.0 <= x <= 1.0 for x in self.noise_fractions):
            raise ValueError(f"noise_fractions must be in [0, 1], got {self.noise_fractions!r}")
        if not all(0.0 < f <= 1.0 for f in self.train_fractions):
            raise ValueError(f"train_fractions must be in (0, 1], got {self.train_fractions!r}")
        named = [self.collapse_class, self.noise_hurts_class, self.data_hungry_class, *self.flat_classes]
        named += list(self.confusion_pair or ())
        unknown = [c for c in named if c is not None and c not in self.classes]
        if unknown:
            raise ValueError(f"planted classes {unknown} are not among classes {list(self.classes)}")


def _planted_recall(spec: SyntheticSpec, m: int, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Noise-free recall, shape (len(x), len(f), K), for model index m."""
    classes = list(spec.classes)
    K = len(classes)
    special = {spec.collapse_class, spec.noise_hurts_class, spec.data_hungry_class, *spec.flat_classes}
    ordinary = [k for k, c in enumerate(classes) if c not in special]
    base = np.full(K, spec.base_recall - 0.03 * m)
    slope = np.zeros(K)
    scale = np.zeros(K)
    collapse = np.zeros(K)
    if ordinary:
        spread = np.linspace(0.0, 1.0, len(ordinary))
        spread = np.roll(spread, m)  # another model, another order of the ordinary classes
        slope[ordinary] = spec.noise_slopes[0] + spread * (spec.noise_slopes[1] - spec.noise_slopes[0])
        scale[ordinary] = spec.size_scales[0] + spread[::-1] * (spec.size_scales[1] - spec.size_scales[0])
    index = {c: k for k, c in enumerate(classes)}
    if spec.collapse_class is not None:
        collapse[index[spec.collapse_class]] = spec.collapse_slope
        scale[index[spec.collapse_class]] = spec.size_scales[0]
    if spec.noise_hurts_class is not None:
        k = index[spec.noise_hurts_class]
        slope[k], scale[k] = spec.noise_hurts_slope, spec.size_scales[0]
    if spec.data_hungry_class is not None:
        k = index[spec.data_hungry_class]
        slope[k], scale[k] = 0.06, spec.data_hungry_scale
    for c in spec.flat_classes:
        base[index[c]] = spec.flat_recall
    x = np.asarray(x, float)[:, None, None]
    f = np.asarray(f, float)[None, :, None]
    drop = slope * x + collapse * np.maximum(0.0, x - spec.collapse_at) + scale * (f**-0.5 - 1.0)
    return base - drop


def _error_weights(spec: SyntheticSpec) -> np.ndarray:
    """K x K row-stochastic share of each class's errors going to each other class (zero diagonal)."""
    K = len(spec.classes)
    w = np.ones((K, K))
    np.fill_diagonal(w, 0.0)
    w /= w.sum(1, keepdims=True)
    if spec.confusion_pair is not None:
        a, b = (spec.classes.index(c) for c in spec.confusion_pair)
        rest = (1.0 - spec.confusion_share) / max(K - 2, 1)
        w[a] = rest
        w[a, a], w[a, b] = 0.0, spec.confusion_share if K > 2 else 1.0
        w[b, a] = 0.005  # B almost never goes to A
        w[b] /= w[b].sum()
    return w


def synthetic_results(spec: SyntheticSpec | None = None, **overrides) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a full synthetic sweep in memory.

    Parameters
    ----------
    spec : SyntheticSpec, optional
        What to generate; defaults to ``SyntheticSpec()``.
    **overrides
        Fields of :class:`SyntheticSpec` to change, e.g. ``n_seeds=20``.

    Returns
    -------
    confusion : pandas.DataFrame
        The ``OUT/confusion`` table: the 13 contract columns (experiment, trial_id, dataset, model,
        noise_mode, noise_fraction, realized_noise, train_size, train_fraction, seed, true_class,
        pred_class, count), K*K rows per trial, trials in (model, noise_fraction, train_fraction desc,
        seed) order, rows of a trial in (true_class, pred_class) class order.
    trials : pandas.DataFrame
        The ``OUT/trials`` table, one row per trial in the same order: the key columns (all of the
        above except true_class, pred_class, count) plus accuracy, test_size, epochs, train_seconds,
        seconds, device, numpy_version, finished_at.
    """
    spec = replace(spec or SyntheticSpec(), **overrides) if overrides else (spec or SyntheticSpec())
    rng = np.random.default_rng(spec.random_state)
    classes = list(spec.classes)
    K = len(classes)
    noise = np.asarray(spec.noise_fractions, float)
    fracs = np.sort(np.asarray(spec.train_fractions, float))[::-1]
    M, X, F, S = len(spec.models), len(noise), len(fracs), spec.n_seeds
    recall = np.stack([_planted_recall(spec, m, noise, fracs) for m in range(M)])  # (M, X, F, K)
    seed_effect = rng.normal(0.0, spec.seed_sd, (M, 1, 1, S, K))
    jitter = rng.normal(0.0, spec.cell_sd, (M, X, F, S, K))
    recall = np.clip(recall[:, :, :, None, :] + seed_effect + jitter, 0.01, 0.995)  # (M, X, F, S, K)
    weights = _error_weights(spec)
    probs = (1.0 - recall)[..., None] * weights  # (M, X, F, S, K, K)
    diag = np.arange(K)
    probs[..., diag, diag] = recall
    counts = rng.multinomial(spec.test_per_class, probs)  # one multinomial per confusion row

    m_i, x_i, f_i, s_i = (a.ravel() for a in np.meshgrid(np.arange(M), np.arange(X), np.arange(F),
                                                          np.arange(S), indexing="ij"))
    n_trials = m_i.size
    train_size = np.round(fracs[f_i] * spec.full_train_size).astype(np.int64)
    realized = np.round(noise[x_i] * train_size) / train_size  # whole examples flipped
    trials = pd.DataFrame({
        "experiment": spec.experiment,
        "dataset": spec.dataset,
        "model": np.asarray(spec.models, dtype=object)[m_i],
        "noise_mode": spec.noise_mode,
        "noise_fraction": noise[x_i],
        "realized_noise": realized,
        "train_size": train_size,
        "train_fraction": fracs[f_i],
        "seed": s_i.astype(np.int64),
    })
    trials.insert(1, "trial_id", [
        trial_id({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
        for row in trials.drop(columns="realized_noise").to_dict("records")
    ])
    flat = counts.reshape(n_trials, K, K)
    trials["accuracy"] = np.trace(flat, axis1=1, axis2=2) / (K * spec.test_per_class)
    trials["test_size"] = np.int64(K * spec.test_per_class)
    trials["epochs"] = np.int64(10)
    trials["train_seconds"] = 0.5 + trials["train_size"] / 1e4
    trials["seconds"] = trials["train_seconds"] + 0.1
    trials["device"] = "synthetic"
    trials["numpy_version"] = np.__version__
    trials["finished_at"] = pd.Timestamp("2025-01-01", tz="UTC")

    rows = np.repeat(np.arange(n_trials), K * K)
    confusion = trials.iloc[rows, : len(trials.columns) - 8].reset_index(drop=True)
    confusion = confusion[[c for c in CONFUSION_COLUMNS if c in confusion.columns]]
    confusion["true_class"] = np.tile(np.repeat(np.asarray(classes, dtype=object), K), n_trials)
    confusion["pred_class"] = np.tile(np.asarray(classes, dtype=object), n_trials * K)
    confusion["count"] = flat.reshape(-1).astype(np.int64)
    for frame in (confusion, trials):
        for column in ("experiment", "trial_id", "dataset", "model", "noise_mode", "true_class",
                       "pred_class", "device", "numpy_version"):
            if column in frame:
                frame[column] = frame[column].astype(str)
    return confusion, trials


def write_synthetic_results(out: str | os.PathLike, spec: SyntheticSpec | None = None, **overrides) -> Path:
    """Write synthetic results to ``out`` as the sweep would: ``out/confusion/<trial_id>.parquet`` and
    ``out/trials/<trial_id>.parquet``, one file per trial. Returns ``Path(out)``.

    Takes the same arguments as :func:`synthetic_results`. Existing files of the same trials are
    overwritten (the names are deterministic), others are left alone.
    """
    confusion, trials = synthetic_results(spec, **overrides)
    out = Path(out)
    (out / "confusion").mkdir(parents=True, exist_ok=True)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    conf_table = pa.Table.from_pandas(confusion, preserve_index=False)
    trial_table = pa.Table.from_pandas(trials, preserve_index=False)
    rows = len(confusion) // len(trials)
    for i, trial_id in enumerate(trials["trial_id"]):
        pq.write_table(conf_table.slice(i * rows, rows), out / "confusion" / f"{trial_id}.parquet")
        pq.write_table(trial_table.slice(i, 1), out / "trials" / f"{trial_id}.parquet")
    return out


def write_synthetic_epochs(out: str | os.PathLike, *, first_class: str, epochs: int = 6, seed: int = 0) -> Path:
    """Write ``out/epochs/<trial_id>.parquet`` (learning curves) for every trial in ``out/trials``.

    Planted truth: the corrupted examples of ``first_class`` are memorised three times as fast as
    those of the other classes (expected share 0.9 * epoch / epochs against 0.3 * epoch / epochs),
    each count a binomial draw; a class has ``train_size // K`` examples, of which the trial's
    realized_noise share is corrupted. The test columns are null (no test curve). Returns ``Path(out)``.
    """
    from sweep.contract import EPOCHS_SCHEMA

    out = Path(out)
    trials = pd.read_parquet(out / "trials")
    first = trials["trial_id"].iloc[0]
    classes = list(dict.fromkeys(pd.read_parquet(out / "confusion" / f"{first}.parquet")["true_class"]))
    if first_class not in classes:
        raise ValueError(f"first_class must be one of {classes}, got {first_class!r}")
    rng = np.random.default_rng(seed)
    K = len(classes)
    rate = np.where(np.asarray(classes) == first_class, 0.9, 0.3)
    (out / "epochs").mkdir(parents=True, exist_ok=True)
    for row in trials.to_dict("records"):
        examples = np.full(K, int(row["train_size"]) // K)
        corrupted = np.round(examples * row["realized_noise"]).astype(np.int64)
        table = {f.name: [] for f in EPOCHS_SCHEMA}
        for epoch in range(1, epochs + 1):
            memorised = rng.binomial(corrupted, np.clip(rate * epoch / epochs, 0, 1))
            corrupted_true = rng.binomial(corrupted - memorised, 0.5)
            values = {"epoch": [epoch] * K, "true_class": classes, "examples": examples, "corrupted": corrupted,
                      "fitted": (examples - corrupted) * 9 // 10 + memorised, "memorised": memorised,
                      "corrupted_true": corrupted_true, "loss_sum": examples * (2.0 - epoch / epochs),
                      "test_examples": [None] * K, "test_correct": [None] * K}
            for name in table:
                table[name] += list(values[name]) if name in values else [row[name]] * K
        pq.write_table(pa.Table.from_pydict(table, schema=EPOCHS_SCHEMA), out / "epochs" / f"{row['trial_id']}.parquet")
    return out


__all__ = ["CIFAR10_CLASSES", "SyntheticSpec", "synthetic_results", "write_synthetic_results", "write_synthetic_epochs"]
