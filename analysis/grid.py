"""The results as one array, and the few statistics every analysis shares.

``to_grid`` pivots the long confusion table into ``counts[model, noise, size, seed, true, pred]``
(NaN where a trial is missing), so every later step is array arithmetic over seeds, never a Python
loop over trials. Seeds pair across cells (common random numbers), so comparisons are per-seed
differences; CIs of means over seeds come from the t distribution, CIs of other statistics (ranks,
breakpoint locations, rank correlations, inverse-curve readings) from an expanded percentile
bootstrap over seeds, given at least ``MIN_BOOT_SEEDS`` seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .intervals import class_test_sizes
from .schema import AXIS_DECIMALS, CONFUSION_COLUMNS

FACTORS = ("noise", "size")


@dataclass(frozen=True)
class Grid:
    """A results table as arrays. Axes of ``counts``: (model, noise, size, seed, true, pred).

    One experiment, or several whose models are told apart by their labels (``load_results`` of
    several folders names them ``<experiment>/<model>``); ``sources`` says where each model comes from.
    """

    experiment: str  # the experiment's name; several joined by ", "
    dataset: str  # likewise
    noise_mode: str  # likewise
    classes: tuple[str, ...]  # K class names in the dataset's order
    models: tuple[str, ...]
    noise: np.ndarray  # (X,) requested noise fractions, ascending
    fracs: np.ndarray  # (F,) train fractions, ascending
    seeds: np.ndarray  # (S,) seeds, ascending
    counts: np.ndarray  # (M, X, F, S, K, K) float64, NaN where that trial is missing
    train_size: np.ndarray  # (M, X, F) examples used (median over seeds), NaN where no trial
    sources: tuple[tuple[str, str, str], ...] = ()  # per model: (experiment, dataset, noise_mode)

    @property
    def present(self) -> np.ndarray:
        """(M, X, F, S) bool: the trial exists."""
        return ~np.isnan(self.counts[..., 0, 0])

    def rates(self) -> np.ndarray:
        """Row-normalized confusion, (M, X, F, S, K, K): share of true class t predicted as p."""
        support = self.counts.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.counts / np.where(support > 0, support, np.nan)

    def test_sizes(self, m: int) -> np.ndarray:
        """(K,) test images per true class of model m: every trial scores the same test set."""
        return class_test_sizes(self.counts[m])

    def baseline(self, m: int) -> tuple[int, int]:
        """(noise index, size index) of model m's baseline cell: noise 0, largest train fraction."""
        cells = self.present[m].any(axis=-1)
        zero = np.flatnonzero(np.isclose(self.noise, 0.0))
        if zero.size == 0 or not cells[zero[0]].any():
            raise ValueError(f"no baseline cell for model {self.models[m]!r}: needs trials at noise_fraction 0 "
                             f"(noise fractions present: {format_levels(self.noise[cells.any(axis=1)])})")
        f_max = np.flatnonzero(cells.any(axis=0)).max()
        if not cells[zero[0], f_max]:
            raise ValueError(f"no baseline cell for model {self.models[m]!r}: needs noise_fraction 0 at the largest "
                             f"train_fraction {self.fracs[f_max]:g} (noise-0 train fractions present: "
                             f"{format_levels(self.fracs[cells[zero[0]]])})")
        return int(zero[0]), int(f_max)

    def axis(self, m: int, factor: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The one-factor cells of model m: ``(x, noise_idx, size_idx, base)``.

        factor "noise": every noise level at the baseline's train fraction, x = noise fraction ascending.
        factor "size": every train fraction at noise 0, x = train fraction ascending.
        ``base`` is the position of the baseline in x. Raises ValueError when fewer than 2 levels exist.
        """
        check_factor(factor)
        i0, j0 = self.baseline(m)
        cells = self.present[m].any(axis=-1)
        if factor == "noise":
            ii = np.flatnonzero(cells[:, j0])
            jj = np.full(ii.size, j0)
            x, base = self.noise[ii], 0
        else:
            jj = np.flatnonzero(cells[i0, :])
            ii = np.full(jj.size, i0)
            x, base = self.fracs[jj], jj.size - 1
        if x.size < 2:
            what = (f"noise fractions at train_fraction {self.fracs[j0]:g}" if factor == "noise"
                    else "train fractions at noise_fraction 0")
            raise ValueError(f"factor={factor!r} needs at least 2 {what} for model {self.models[m]!r}; "
                             f"the grid has only {format_levels(x)}")
        return x, ii, jj, base


    def metric_along(self, m: int, factor: str, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """Rates of the (true, pred) ``pairs`` (P, 2) along one factor, seeds complete on that axis.

        Returns ``(x, values, base, seeds)``: x ascending (L,), values (S, L, P), ``base`` the
        baseline's position in x. The diagonal pairs give each class's recall.
        """
        x, ii, jj, base = self.axis(m, factor)
        complete = self.present[m, ii, jj].all(axis=0)
        if not complete.any():
            raise ValueError(f"no seed of model {self.models[m]!r} has trials at every {factor} level "
                             f"{format_levels(x)}")
        counts = self.counts[m][ii, jj][:, complete]  # (L, S, K, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = counts[..., pairs[:, 0], pairs[:, 1]] / counts.sum(axis=-1)[..., pairs[:, 0]]
        return x, np.moveaxis(values, 0, 1), base, self.seeds[complete]


def format_levels(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def check_factor(factor: object) -> None:
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")


def check_frame(df: object) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected the confusion DataFrame from load_results, got {type(df).__name__}")
    missing = [c for c in CONFUSION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame is missing column(s) {missing}; pass the table from load_results(OUT)")
    if len(df) == 0:
        raise ValueError("the confusion DataFrame is empty")
    return df


def _observed(column: pd.Series) -> list[str]:
    """Distinct values as strings; for categoricals from the categories (fast on a million rows)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = np.bincount(column.cat.codes.to_numpy() + 1, minlength=len(column.cat.categories) + 1)[1:] > 0
        return [str(c) for c, u in zip(column.cat.categories, used) if u]
    return [str(v) for v in pd.unique(column)]


def _single(df: pd.DataFrame, column: str) -> str:
    values = _observed(df[column])
    if len(values) != 1:
        raise ValueError(f"the table holds {len(values)} values of {column} {sorted(values)}; analyse one at a "
                         f"time, e.g. df[df.{column} == {sorted(values)[0]!r}]")
    return values[0]


def _codes(column: pd.Series, order: list | None = None) -> tuple[np.ndarray, list]:
    if isinstance(column.dtype, pd.CategoricalDtype) and order is None:
        used = column.cat.remove_unused_categories()
        return used.cat.codes.to_numpy(np.int64), [str(c) for c in used.cat.categories]
    codes, uniques = pd.factorize(column, sort=order is None)
    return codes.astype(np.int64), list(uniques)


def class_order(df: pd.DataFrame) -> list[str]:
    """Class names: the categorical order from load_results, else order of first appearance."""
    if isinstance(df["true_class"].dtype, pd.CategoricalDtype):
        used = set(_observed(df["true_class"])) | set(_observed(df["pred_class"]))
        return [str(c) for c in df["true_class"].cat.categories if str(c) in used]
    return list(pd.unique(pd.concat([df["true_class"], df["pred_class"]], ignore_index=True).astype(str)))


def _sources(df: pd.DataFrame, model: np.ndarray, models: list) -> tuple[tuple[str, str, str], ...]:
    """(experiment, dataset, noise_mode) of each model; a model in two experiments, or an experiment
    with two datasets or noise modes, is refused (a sweep has one of each; models must be told apart)."""
    experiments = _observed(df["experiment"])
    if len(experiments) == 1:
        one = tuple(_single(df, column) for column in ("experiment", "dataset", "noise_mode"))
        return (one,) * len(models)
    out = []
    for column in ("experiment", "dataset", "noise_mode"):
        codes, names = _codes(df[column])
        pairs = np.unique(model * len(names) + codes)
        owner, value = pairs // len(names), pairs % len(names)
        many = np.flatnonzero(np.bincount(owner, minlength=len(models)) > 1)
        if many.size:
            m = many[0]
            held = sorted(names[v] for v in value[owner == m])
            if column == "experiment":
                raise ValueError(f"the table holds {len(experiments)} values of experiment {sorted(experiments)} and "
                                 f"model {models[m]!r} is in {len(held)} of them {held}; load several results folders "
                                 "with load_results([A, B]), which names each model '<experiment>/<model>'")
            raise ValueError(f"model {models[m]!r} has {len(held)} values of {column} {held}; a sweep has one")
        out.append([names[value[owner == m][0]] for m in range(len(models))])
    return tuple(zip(*out))


def _sorted_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` by hashing instead of sorting the rows: an axis
    has few levels, so this is about 10x faster on 10 million rows."""
    codes, levels = pd.factorize(values, sort=False, use_na_sentinel=False)  # NaN a level, last, as in np.unique
    order = np.argsort(levels, kind="stable")
    rank = np.empty(len(levels), dtype=np.int64)
    rank[order] = np.arange(len(levels))
    return np.asarray(levels)[order], rank[codes]


def to_grid(df: pd.DataFrame) -> Grid:
    """Pivot a validated confusion table into a :class:`Grid` (vectorized; ~0.3 s per million rows)."""
    df = check_frame(df)
    classes = class_order(df)
    index = {c: k for k, c in enumerate(classes)}
    K = len(classes)
    if isinstance(df["true_class"].dtype, pd.CategoricalDtype):
        remap = np.array([index.get(str(c), -1) for c in df["true_class"].cat.categories])
        true = remap[df["true_class"].cat.codes.to_numpy()]
        remap = np.array([index.get(str(c), -1) for c in df["pred_class"].cat.categories])
        pred = remap[df["pred_class"].cat.codes.to_numpy()]
    else:
        true = df["true_class"].astype(str).map(index).to_numpy(np.int64)
        pred = df["pred_class"].astype(str).map(index).to_numpy(np.int64)
    model, models = _codes(df["model"])
    sources = _sources(df, model, models)
    experiment, dataset, noise_mode = (", ".join(dict.fromkeys(s[i] for s in sources)) for i in range(3))
    noise, noise_idx = _sorted_levels(np.round(df["noise_fraction"].to_numpy(float), AXIS_DECIMALS))
    fracs, size_idx = _sorted_levels(np.round(df["train_fraction"].to_numpy(float), AXIS_DECIMALS))
    seeds, seed_idx = _sorted_levels(df["seed"].to_numpy(np.int64))
    shape = (len(models), len(noise), len(fracs), len(seeds), K, K)
    counts = np.full(shape, np.nan)
    counts[model, noise_idx, size_idx, seed_idx, true, pred] = df["count"].to_numpy(float)
    # A present trial has every cell filled (load_results guarantees it); zero-fill defensively otherwise.
    present = ~np.isnan(counts).all(axis=(-2, -1))
    counts = np.where(present[..., None, None] & np.isnan(counts), 0.0, counts)
    cell = np.ravel_multi_index((model, noise_idx, size_idx), shape[:3])
    train_size = pd.Series(df["train_size"].to_numpy(float)).groupby(cell).median()
    sizes = np.full(int(np.prod(shape[:3])), np.nan)
    sizes[train_size.index.to_numpy()] = train_size.to_numpy()
    return Grid(experiment, dataset, noise_mode, tuple(classes), tuple(str(m) for m in models), noise, fracs,
                seeds, counts, sizes.reshape(shape[:3]), sources)


# ---- statistics shared by the analyses ---------------------------------------------------------

def seed_mean(values: np.ndarray, *, confidence: float = 0.95, axis: int = 0) -> dict[str, np.ndarray]:
    """Mean over seeds (NaN-aware) with its standard error and a t-interval; n is the seeds used.

    With one seed the se and the interval are NaN (one draw says nothing about the spread); a test
    whose se is 0 is not testable: p NaN, never 0. Rates and contrasts of rates use
    :mod:`analysis.intervals` instead, which adds the test set's sampling error.
    """
    n = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": the NaN already says it
        mean = np.nanmean(values, axis=axis)
        sd = np.nanstd(values, axis=axis, ddof=1)
        se = np.where(n >= 2, sd / np.sqrt(n), np.nan)
        tq = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(mean / se), np.maximum(n - 1, 1)), np.nan)
        p = np.where(n >= 2, p, np.nan)
    return {"n": n, "mean": mean, "se": se, "ci_low": mean - tq * se, "ci_high": mean + tq * se, "p": p}


# Fewest seeds for a bootstrap interval. With S seeds a resample of the seeds takes only
# C(2S-1, S) distinct values (10 at 3 seeds), and no percentile interval can reach the nominal
# level below 5: it never reaches past the seeds' own range, which holds their true mean with
# probability 1 - 2**(1 - S) (75 % at 3 seeds, 94 % at 5). Means over seeds use t-intervals instead.
MIN_BOOT_SEEDS = 5


def expanded_percentile(boot: np.ndarray, n_seeds: int, confidence: float,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The expanded percentile interval of bootstrap replicates ``boot`` (NaN-aware along ``axis``).

    A plain percentile interval of a statistic resampled over S seeds is too narrow for small S (it
    mimics a z-interval with the spread shrunk by sqrt((S-1)/S)). The expanded interval (Hesterberg,
    "What teachers should know about the bootstrap", 2015) takes the percentiles at alpha'/2 and
    1 - alpha'/2 with Phi^-1(alpha'/2) = -sqrt(S/(S-1)) * t_{S-1}(1 - alpha/2), so that for a mean
    it matches the t-interval. NaN below ``MIN_BOOT_SEEDS`` seeds.
    """
    shape = np.delete(np.asarray(boot.shape), axis)
    if n_seeds < MIN_BOOT_SEEDS:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    alpha = 1 - confidence
    z = np.sqrt(n_seeds / (n_seeds - 1)) * stats.t.ppf(1 - alpha / 2, n_seeds - 1)
    tail = 100 * stats.norm.sf(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        return np.nanpercentile(boot, tail, axis=axis), np.nanpercentile(boot, 100 - tail, axis=axis)


def bootstrap_indices(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_seeds) seed indices drawn with replacement."""
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (family = the given array, NaN kept and not counted).

    Controls the family-wise error: the chance that any true null in the family is rejected at
    level alpha is at most alpha, whatever the dependence between the tests.
    """
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    order = np.argsort(q)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (len(q) - np.arange(len(q))) * q[order]))
    result = np.empty_like(q)
    result[order] = adjusted
    out[ok] = result
    return out


MAX_N_BOOT = 100_000  # resamples; every bootstrap holds n_boot x seeds draws in memory at once


def check_options(*, confidence: float, n_boot: int | None = None) -> None:
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_boot is not None and (not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool)
                               or not 100 <= n_boot <= MAX_N_BOOT):
        raise ValueError(f"n_boot must be an integer in [100, {MAX_N_BOOT:,}], got {n_boot!r}")


def check_level(name: str, value, *, optional: bool = False) -> None:
    """A requested grid level (a noise or train fraction) must be a finite number."""
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value)):
        allowed = "a finite number" + (" or None" if optional else "")
        raise TypeError(f"{name} must be {allowed}, got {value!r}")


def class_dtype(classes) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(classes), ordered=True)


def per_model(grid: Grid, compute, what: str) -> list:
    """Run ``compute(m)`` for every model; skip (with a warning) models it cannot handle, raise if none."""
    out, reasons = [], []
    for m, name in enumerate(grid.models):
        try:
            out.append(compute(m))
        except ValueError as error:
            reasons.append(f"{name}: {error}")
    if not out:
        raise ValueError(f"cannot compute {what}: " + "; ".join(reasons))
    if reasons:
        warnings.warn(f"{what} skipped for " + "; ".join(reasons), stacklevel=3)
    return out
