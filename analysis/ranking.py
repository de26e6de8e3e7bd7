"""Which classes are most sensitive to label noise or to less data, and how sure the ranking is.

The sensitivity of a class is the **mean recall lost from baseline over the tested range** of the
factor: the area under its drop-from-baseline curve (trapezoid rule over the grid levels) divided by
the width of the range. It is in recall units (0.10 = ten points lost on average across the range),
compares across grids with different spacing, and uses every level rather than only the last one.
It is computed per seed (paired with that seed's own baseline), then summarized over seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .grid import (MIN_BOOT_SEEDS, Grid, bootstrap_indices, check_factor, check_frame, check_options, class_dtype,
                   expanded_percentile, format_levels, per_model, to_grid)
from .intervals import binomial_var, contrast_interval

POWER = 0.8  # power of the paired test assumed by seeds_to_separate_next
N_SPLITS = 200  # random seed half-splits for rank_tau_halves


def recall_along(grid: Grid, m: int, factor: str) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Every class's recall along one factor: ``(x, recall (S, L, K), base, seeds)``."""
    diagonal = np.repeat(np.arange(len(grid.classes)), 2).reshape(-1, 2)
    return grid.metric_along(m, factor, diagonal)


def per_seed_sensitivity(x: np.ndarray, recall: np.ndarray, base: int) -> np.ndarray:
    """(S, K): mean recall lost from the baseline over the range of x (area under the drop / width)."""
    drop = recall[:, base : base + 1, :] - recall
    return np.trapezoid(drop, x, axis=1) / (x[-1] - x[0])


def sensitivity_floor(x: np.ndarray, recall: np.ndarray, base: int, n_test: np.ndarray) -> np.ndarray:
    """(K,) the per-seed variance binomial test counts alone give each class's sensitivity.

    The sensitivity is linear in the recalls along x (trapezoid weights over the width, minus the
    baseline), so its binomial variance is the weighted sum of each level's; the floor of the seed
    variance in ``analysis.intervals`` (a same-image contrast: no test term of its own).
    """
    w = np.zeros(len(x))
    gaps = np.diff(x) / (x[-1] - x[0])
    w[:-1] += gaps / 2
    w[1:] += gaps / 2
    coef = -w
    coef[base] += 1.0
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = binomial_var(np.nanmean(recall, axis=0), n_test)  # (L, K)
    return (coef[:, None] ** 2 * var).sum(axis=0)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the last axes of a and b (broadcast over leading axes)."""
    da = np.sign(a[..., :, None] - a[..., None, :])
    db = np.sign(b[..., :, None] - b[..., None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (da * db).sum(axis=(-2, -1)) / np.sqrt((da * da).sum(axis=(-2, -1)) * (db * db).sum(axis=(-2, -1)))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = largest along the last axis (ties broken by class order)."""
    order = np.argsort(-values, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[-1] + 1), axis=-1)
    return ranks


def _half_split_tau(per_seed: np.ndarray, rng: np.random.Generator) -> float:
    S = per_seed.shape[0]
    if S < 4:
        return np.nan
    perm = np.argsort(rng.random((N_SPLITS, S)), axis=1)
    half = S // 2
    first = per_seed[perm[:, :half]].mean(axis=1)
    second = per_seed[perm[:, half : 2 * half]].mean(axis=1)
    return float(np.nanmean(kendall_tau(first, second)))


def _classes_with_recall(per_seed: np.ndarray, grid: Grid, m: int, what: str) -> np.ndarray:
    """Indices of the classes whose per-seed values (S, K) are finite; warns about the others.

    A class with no test examples has no recall (0/0) in any trial; it cannot be ranked or fitted.
    """
    finite = np.isfinite(per_seed).all(axis=0)
    if not finite.all():
        names = [grid.classes[k] for k in np.flatnonzero(~finite)]
        warnings.warn(f"{grid.models[m]}: class(es) {names} have no recall (no test examples), so they are left "
                      f"out of {what}", stacklevel=3)
    return np.flatnonzero(finite)


def _boot(per_seed: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    S = per_seed.shape[0]
    if S < 2:
        return np.full((n_boot, per_seed.shape[1]), np.nan)
    return per_seed[bootstrap_indices(S, n_boot, rng)].mean(axis=1)


def sensitivity_ranking(df: pd.DataFrame, *, factor: str = "noise", n_boot: int = 2000,
                        confidence: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Rank classes by how much recall they lose as label noise grows (or the training set shrinks).

    The sensitivity is the mean recall lost from baseline over the tested range (see the module
    docstring); factor "noise" walks the noise fractions at the largest train fraction, factor
    "size" walks the train fractions at noise 0. Seeds with a trial at every level enter.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    factor : {"noise", "size"}, keyword-only
    n_boot : int, keyword-only
        Bootstrap resamples of the seeds, for the rank intervals (>= 100).
    confidence : float, keyword-only
        Level of every interval, in (0, 1).
    random_state : int, keyword-only
        Seed of the bootstrap and of the half-splits; the same value gives the same table.

    Returns
    -------
    pandas.DataFrame
        One row per model and class: model, factor, class_name (ordered categorical), n_seeds,
        baseline_recall, end_recall (recall at the far end of the range: the highest noise or the
        smallest train fraction), sensitivity (mean recall lost over the range), se (over seeds,
        never below the binomial floor of ``analysis.intervals``), df (its degrees of freedom), ci_low, ci_high (t-interval
        over the per-seed sensitivities with that se), p_value (t-test of a sensitivity of 0; NaN
        where not testable), rank (1 = most sensitive),
        rank_ci_low, rank_ci_high (expanded percentile bootstrap of the rank over seeds; NaN below
        5 seeds, see ``grid.MIN_BOOT_SEEDS``), p_vs_next (paired t-test against the class ranked
        just below; NaN where not testable), se_vs_next, df_vs_next (the standard error and degrees of
        freedom of that gap), seeds_to_separate_next (seeds a paired test at level 1 - confidence needs for
        80 % power to tell this class from the next, given the observed gap and spread; NaN for the
        last), rank_tau_halves (the model's rank stability: mean Kendall tau between the rankings
        of two random halves of the seeds over 200 splits; repeated on every row of the model; NaN
        below 4 seeds).
        Sorted by model, then rank. With one seed every interval, p and tau are NaN. A class with
        no test examples has no recall: it is left out, with a warning.

    Raises
    ------
    ValueError
        Bad option values, or no model with a baseline and at least 2 levels of the factor.
    """
    check_factor(factor)
    check_options(confidence=confidence, n_boot=n_boot)
    grid = to_grid(check_frame(df))
    rng = np.random.default_rng(random_state)
    alpha = 1 - confidence

    def one(m: int) -> pd.DataFrame:
        x, recall, base, seeds = recall_along(grid, m, factor)
        per_seed = per_seed_sensitivity(x, recall, base)
        classes = _classes_with_recall(per_seed, grid, m, "the ranking")
        floor = sensitivity_floor(x, recall, base, grid.test_sizes(m))[classes]
        recall, per_seed = recall[..., classes], per_seed[:, classes]  # (S, L, K), (S, K) over the kept classes
        S, K = per_seed.shape
        summary = contrast_interval(per_seed, floor_var=floor, axis=0, confidence=confidence)
        point = summary["mean"]
        rank = _ranks(point)
        order = np.argsort(rank)
        boot_rank = _ranks(_boot(per_seed, n_boot, rng)) if S >= MIN_BOOT_SEEDS else np.full((1, K), np.nan)
        rank_low, rank_high = expanded_percentile(boot_rank, S, confidence)
        end = 0 if factor == "size" else -1
        frame = pd.DataFrame({
            "model": grid.models[m], "factor": factor, "class_name": classes, "n_seeds": S,
            "baseline_recall": recall[:, base].mean(axis=0), "end_recall": recall[:, end].mean(axis=0),
            "sensitivity": point, "se": summary["se"], "df": summary["df"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
            "p_value": summary["p"],
            "rank": rank, "rank_ci_low": rank_low, "rank_ci_high": rank_high,
        }).iloc[order]
        gap = per_seed[:, order[:-1]] - per_seed[:, order[1:]]  # (S, K-1), this class minus the next
        p_next, se_next, df_next = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan)
        need = np.full(K, np.nan)
        if S > 1 and K > 1:
            # Two classes' sensitivities: their floors add (independent images); p NaN if not testable.
            g = contrast_interval(gap, floor_var=floor[order[:-1]] + floor[order[1:]], axis=0, confidence=confidence)
            p_next[:-1], se_next[:-1], df_next[:-1] = g["p"], g["se"], g["df"]
            with np.errstate(invalid="ignore", divide="ignore"):
                z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)
                sd = g["se"] * np.sqrt(S)  # the per-seed spread the test used (floor included)
                need[:-1] = np.maximum(2, np.ceil((z * sd / np.abs(g["mean"])) ** 2))
        frame["p_vs_next"] = p_next
        frame["se_vs_next"], frame["df_vs_next"] = se_next, df_next
        frame["seeds_to_separate_next"] = need
        frame["rank_tau_halves"] = _half_split_tau(per_seed, rng)
        return frame

    frame = pd.concat(per_model(grid, one, f"sensitivity_ranking(factor={factor!r})"), ignore_index=True)
    frame["class_name"] = pd.Categorical.from_codes(frame["class_name"].to_numpy(), dtype=class_dtype(grid.classes))
    return frame.reset_index(drop=True)


def model_comparison(df: pd.DataFrame, *, factor: str = "noise", n_boot: int = 2000, confidence: float = 0.95,
                     random_state: int = 0) -> pd.DataFrame:
    """How much the class ranking depends on the model: Kendall's tau between models' sensitivities.

    Parameters are those of :func:`sensitivity_ranking`.

    Returns
    -------
    pandas.DataFrame
        One row per pair of models: factor, model_a, model_b, n_classes (classes with recall in both
        models), n_seeds (the smaller of the two models' seed counts), kendall_tau (tau-b between
        the two models' sensitivities; 1 = same order, 0 = unrelated, -1 = reversed), ci_low, ci_high
        (expanded percentile bootstrap, each model's seeds resampled independently; NaN below 5
        seeds), top_class_a, top_class_b (each model's most sensitive class), same_top (bool), note
        ("ok", or why the pair is not compared: models of different datasets or noise modes, whose
        recalls are not measured on the same data, or different levels of the factor, whose
        sensitivities average over different ranges; the statistics are then NaN or None and
        same_top False).
        Sorted by model_a, model_b (in the models' order).

    Raises
    ------
    ValueError
        When fewer than 2 models have the factor's levels.
    """
    check_factor(factor)
    check_options(confidence=confidence, n_boot=n_boot)
    grid = to_grid(check_frame(df))
    rng = np.random.default_rng(random_state)
    fitted, levels = {}, {}
    for m, name in enumerate(grid.models):
        try:
            x, recall, base, _ = recall_along(grid, m, factor)
        except ValueError:
            continue
        fitted[name] = per_seed_sensitivity(x, recall, base)  # (S, K)
        # What the sensitivity is measured on: the data (dataset, noise mode) and the factor's levels,
        # with the other factor's level (noise: the baseline's train fraction; size: noise 0).
        levels[name] = (grid.sources[m][1:], x, grid.fracs[grid.baseline(m)[1]] if factor == "noise" else 0.0)
    if len(fitted) < 2:
        raise ValueError(f"model_comparison needs at least 2 models with a baseline and 2 {factor} levels; "
                         f"usable: {sorted(fitted) or 'none'} of {list(grid.models)}")
    rows = []
    names = list(fitted)
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            note = _not_comparable(a, b, levels[a], levels[b], factor)
            if note:
                rows.append({"factor": factor, "model_a": a, "model_b": b, "n_classes": 0,
                             "n_seeds": min(len(fitted[a]), len(fitted[b])), "kendall_tau": np.nan, "ci_low": np.nan,
                             "ci_high": np.nan, "top_class_a": None, "top_class_b": None, "note": note})
                continue
            sa, sb = fitted[a], fitted[b]
            # Classes without recall in either model (no test examples) cannot be compared.
            common = np.flatnonzero(np.isfinite(sa).all(axis=0) & np.isfinite(sb).all(axis=0))
            sa, sb = sa[:, common], sb[:, common]
            pa, pb = sa.mean(axis=0), sb.mean(axis=0)
            n_seeds = min(len(sa), len(sb))
            low = high = np.nan
            if n_seeds >= MIN_BOOT_SEEDS and common.size >= 2:
                taus = kendall_tau(_boot(sa, n_boot, rng), _boot(sb, n_boot, rng))
                low, high = (float(v) for v in expanded_percentile(taus, n_seeds, confidence))
            rows.append({
                "factor": factor, "model_a": a, "model_b": b, "n_classes": int(common.size),
                "n_seeds": n_seeds, "kendall_tau": float(kendall_tau(pa, pb)) if common.size >= 2 else np.nan,
                "ci_low": low, "ci_high": high,
                "top_class_a": grid.classes[common[np.argmax(pa)]] if common.size else None,
                "top_class_b": grid.classes[common[np.argmax(pb)]] if common.size else None, "note": "ok",
            })
    frame = pd.DataFrame(rows)
    frame.insert(len(frame.columns) - 1, "same_top", (frame["top_class_a"] == frame["top_class_b"])
                 & frame["top_class_a"].notna())
    return frame


def _not_comparable(a: str, b: str, level_a: tuple, level_b: tuple, factor: str) -> str:
    """Why two models' sensitivities cannot be compared ("" when they can)."""
    (data_a, x_a, other_a), (data_b, x_b, other_b) = level_a, level_b
    if data_a[0] != data_b[0]:
        return (f"not compared: {a} is on dataset {data_a[0]}, {b} on {data_b[0]}; across datasets the training "
                "and test data differ, so no paired comparison is made")
    if data_a[1] != data_b[1]:
        return (f"not compared: {a} has noise mode {data_a[1]}, {b} {data_b[1]}; the same noise fraction "
                "corrupts other labels, so no paired comparison is made")
    if x_a.shape != x_b.shape or not np.allclose(x_a, x_b) or not np.isclose(other_a, other_b):
        unit = "noise fractions" if factor == "noise" else "train fractions"
        return (f"not compared: {a} has {unit} {format_levels(x_a)}, {b} {format_levels(x_b)}"
                + (f" (at train fraction {other_a:g} vs {other_b:g})" if factor == "noise" else "")
                + "; their sensitivities average over different ranges")
    return ""


def class_table(df: pd.DataFrame, *, cells: str = "axes", confidence: float = 0.95) -> pd.DataFrame:
    """Classes sorted by recall in each grid cell, for reading cells side by side.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    cells : {"axes", "all"}, keyword-only
        "axes": the baseline, each noise level at the baseline's train fraction and each train
        fraction at noise 0 (models without a baseline: every cell); "all": every cell of the grid.
    confidence : float, keyword-only
        Level of the t-interval over seeds.

    Returns
    -------
    pandas.DataFrame
        model, noise_fraction, train_fraction, train_size, position (1 = highest recall in the cell),
        class_name (ordered categorical), recall (mean over seeds), recall_se, ci_low, ci_high,
        n_seeds.
        Sorted by model, noise_fraction, train_fraction (descending), position.
    """
    from .confusion import mean_confusion  # one place computes per-cell means

    if cells not in ("axes", "all"):
        raise ValueError(f"cells must be 'axes' or 'all', got {cells!r}")
    table = mean_confusion(df, confidence=confidence)
    table = table[table["true_class"].astype(str) == table["pred_class"].astype(str)]
    if cells == "axes":
        grid = to_grid(df)
        keep = []
        for m, name in enumerate(grid.models):
            rows = table["model"] == name
            try:
                i0, j0 = grid.baseline(m)
            except ValueError:
                keep.append(rows)
                continue
            on_axis = (np.isclose(table["noise_fraction"], grid.noise[i0]) |
                       np.isclose(table["train_fraction"], grid.fracs[j0]))
            keep.append(rows & on_axis)
        table = table[np.logical_or.reduce(keep)]
    table = table.rename(columns={"true_class": "class_name", "rate": "recall", "rate_se": "recall_se",
                                  "rate_ci_low": "ci_low", "rate_ci_high": "ci_high"})
    table = table.sort_values(["model", "noise_fraction", "train_fraction", "recall"],
                              ascending=[True, True, False, False], kind="stable")
    table["position"] = table.groupby(["model", "noise_fraction", "train_fraction"], sort=False).cumcount() + 1
    columns = ["model", "noise_fraction", "train_fraction", "train_size", "position", "class_name", "recall",
               "recall_se", "ci_low", "ci_high", "n_seeds"]
    return table[columns].reset_index(drop=True)


__all__ = ["sensitivity_ranking", "model_comparison", "class_table", "kendall_tau"]
