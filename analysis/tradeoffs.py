"""Label noise against less data: is a class hurt by misleading labels or just by fewer good ones?

``noise_vs_reduction`` compares x % noisy labels with x % fewer clean examples: both leave the same
number of correctly labeled examples, so a class that loses more to noise is misled by the wrong
labels, not merely starved. ``exchange_rate`` turns the whole noise x size grid into iso-accuracy
terms: how much clean data a noisy training set is worth.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .grid import (MIN_BOOT_SEEDS, Grid, bootstrap_indices, check_frame, check_level, check_options, class_dtype,
                   expanded_percentile, format_levels, per_model, to_grid)
from .intervals import binomial_var, contrast_interval


def _recall(grid: Grid) -> np.ndarray:
    """(M, X, F, S, K) recall, NaN where the trial is missing."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(grid.counts, axis1=-2, axis2=-1) / grid.counts.sum(axis=-1)


def _matches(grid: Grid, m: int) -> list[tuple[float, int, int, int]]:
    """(x, noise index, size index of the same reduction) for every x both axes have."""
    i0, j0 = grid.baseline(m)
    cells = grid.present[m].any(axis=-1)
    full_split = float(np.nanmax(grid.train_size[m, i0, j0])) / grid.fracs[j0]  # examples in the train split
    one_example = 1.0 / full_split
    out = []
    for i in np.flatnonzero(cells[:, j0]):
        x = grid.noise[i]
        if x <= 0:
            continue
        # A requested fraction becomes a whole number of examples (rounded), so the realized
        # train_fraction may sit up to half an example off (1 - x): match within one example.
        j = np.flatnonzero(np.abs(grid.fracs - grid.fracs[j0] * (1 - x)) <= one_example + 1e-9)
        if j.size and cells[i0, j[0]]:
            out.append((float(x), int(i), int(j[0]), i0))
    return out


def noise_vs_reduction(df: pd.DataFrame, *, fraction: float | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per class: recall lost to a fraction x of noisy labels against recall lost to x fewer examples.

    Compares the cell (noise x, full size) with the cell (noise 0, train fraction (1 - x) * full),
    paired by seed against the shared baseline. Both keep the same number of correctly labeled
    examples (requested noise; realized noise may differ slightly).

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    fraction : float, optional, keyword-only
        The x to compare; default every x that both the noise and the size axis have.
    confidence : float, keyword-only
        Level of the paired interval.

    Returns
    -------
    pandas.DataFrame
        model, fraction, class_name (ordered categorical), n_seeds (seeds in all three cells),
        baseline_recall, noise_recall, reduction_recall (seed means), drop_noise, drop_reduction
        (recall lost from baseline), difference (mean per-seed drop_noise - drop_reduction: > 0 means
        the wrong labels hurt more than losing those examples), se, df, ci_low, ci_high (paired over
        seeds, binomial floor, ``analysis.intervals``), p_value (t-test of difference = 0; NaN where
        not testable).
        Sorted by model, fraction, then difference descending.

    Raises
    ------
    ValueError
        When no x is on both axes (the message lists both axes), or ``fraction`` is not one of them.
    """
    check_options(confidence=confidence)
    check_level("fraction", fraction, optional=True)
    grid = to_grid(check_frame(df))
    recall = _recall(grid)

    def one(m: int) -> pd.DataFrame:
        matches = _matches(grid, m)
        if not matches:
            cells = grid.present[m].any(axis=-1)
            raise ValueError("noise_vs_reduction needs, for some x, noise x at full size and train fraction "
                             f"(1 - x) at noise 0; noise fractions: {format_levels(grid.noise[cells.any(1)])}, "
                             f"train fractions: {format_levels(grid.fracs[cells.any(0)])}")
        if fraction is not None:
            chosen = [t for t in matches if np.isclose(t[0], fraction)]
            if not chosen:
                available = format_levels(np.array([t[0] for t in matches]))
                raise ValueError(f"fraction {fraction!r} is not on both axes; available: {available}")
            matches = chosen
        _, j0 = grid.baseline(m)
        frames = []
        for x, i, j, i0 in matches:
            base, noisy, reduced = recall[m, i0, j0], recall[m, i, j0], recall[m, i0, j]  # (S, K)
            both = ~np.isnan(base[:, 0]) & ~np.isnan(noisy[:, 0]) & ~np.isnan(reduced[:, 0])
            base, noisy, reduced = base[both], noisy[both], reduced[both]
            n_test = grid.test_sizes(m)  # the same images in both cells: a same-image contrast
            floor = binomial_var(reduced.mean(0), n_test) + binomial_var(noisy.mean(0), n_test)
            d = contrast_interval(reduced - noisy, floor_var=floor, axis=0, confidence=confidence)
            K = base.shape[1]
            frames.append(pd.DataFrame({
                "model": grid.models[m], "fraction": x, "class_name": np.arange(K), "n_seeds": int(both.sum()),
                "baseline_recall": base.mean(0), "noise_recall": noisy.mean(0), "reduction_recall": reduced.mean(0),
                "drop_noise": (base - noisy).mean(0), "drop_reduction": (base - reduced).mean(0),
                "difference": d["mean"], "se": d["se"], "df": d["df"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                "p_value": d["p"],
            }).sort_values("difference", ascending=False, kind="stable"))
        return pd.concat(frames, ignore_index=True)

    frame = pd.concat(per_model(grid, one, "noise_vs_reduction"), ignore_index=True)
    frame["class_name"] = pd.Categorical.from_codes(frame["class_name"].to_numpy(), dtype=class_dtype(grid.classes))
    return frame


def _invert(curve: np.ndarray, fracs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Train fraction at which the clean curve reaches ``target`` (linear interpolation).

    curve (..., F) recall at ascending fracs, made non-decreasing first (more clean data never
    hurts; dips are noise); target (...). NaN outside the curve's range.
    """
    mono = np.maximum.accumulate(curve, axis=-1)
    j = np.clip((mono <= target[..., None]).sum(axis=-1) - 1, 0, fracs.size - 2)
    lo = np.take_along_axis(mono, j[..., None], -1)[..., 0]
    hi = np.take_along_axis(mono, j[..., None] + 1, -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(hi > lo, (target - lo) / (hi - lo), 0.0)
    out = fracs[j] + np.clip(share, 0, 1) * (fracs[j + 1] - fracs[j])
    inside = (target >= mono[..., 0]) & (target <= mono[..., -1])
    return np.where(inside, out, np.nan)


def exchange_rate(df: pd.DataFrame, *, n_boot: int = 1000, confidence: float = 0.95,
                  random_state: int = 0) -> pd.DataFrame:
    """Iso-accuracy: how much clean training data each noisy training set is worth, per class.

    For every cell with noise x > 0 and train fraction f, the class's recall there is located on its
    clean curve (noise 0 across train fractions): the clean fraction f0 with the same recall. A
    noisy set of f is worth f0 clean, so ``exchange_rate = f / f0`` noisy examples buy one clean
    one, and clean data of ``f - f0`` more would offset the noise. Only inside the grid: a noisy
    recall below the smallest clean size's, or above the full clean size's, has no f0 (see note).

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    n_boot, confidence, random_state : keyword-only
        Expanded percentile bootstrap over seeds (both curves resampled with the same seeds).

    Returns
    -------
    pandas.DataFrame
        model, class_name (ordered categorical), noise_fraction, train_fraction, train_size, n_seeds,
        recall (seed mean at the noisy cell), clean_equivalent_fraction (f0), ci_low, ci_high
        (bootstrap interval of f0; NaN below 5 seeds and where fewer than half the resamples fall
        inside the grid),
        exchange_rate (train_fraction / f0), note ("ok", "below grid": worse than the smallest clean
        size, "above grid": no worse than the full clean size).
        Sorted by model, class_name, noise_fraction, train_fraction (descending).

    Raises
    ------
    ValueError
        When no model has 2 train fractions at noise 0 and a cell with noise > 0.
    """
    check_options(confidence=confidence, n_boot=n_boot)
    grid = to_grid(check_frame(df))
    recall = _recall(grid)
    rng = np.random.default_rng(random_state)

    def one(m: int) -> pd.DataFrame:
        _, jj_clean = grid.axis(m, "size")[1:3]
        i0 = grid.baseline(m)[0]
        cells = grid.present[m].any(axis=-1)
        ii, jj = np.nonzero(cells & (grid.noise > 0)[:, None])
        if ii.size == 0:
            raise ValueError("exchange_rate needs cells with noise_fraction > 0; the grid has none")
        fracs = grid.fracs[jj_clean]
        clean = recall[m, i0][jj_clean].transpose(1, 0, 2)  # (S, F0, K)
        noisy = recall[m, ii, jj]  # (C, S, K)
        S = clean.shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            clean_mean = np.nanmean(clean, axis=0).T  # (K, F0)
            noisy_mean = np.nanmean(noisy, axis=1)  # (C, K)
            f0 = _invert(clean_mean[None], fracs, noisy_mean)  # (C, K)
            low = high = np.full(f0.shape, np.nan)
            if S >= MIN_BOOT_SEEDS:
                idx = bootstrap_indices(S, n_boot, rng)
                boot_clean = np.nanmean(clean[idx], axis=1).transpose(0, 2, 1)  # (B, K, F0)
                boot_noisy = np.nanmean(noisy[:, idx], axis=2).transpose(1, 0, 2)  # (B, C, K)
                boot = _invert(boot_clean[:, None], fracs, boot_noisy)  # (B, C, K)
                enough = np.isfinite(boot).mean(axis=0) >= 0.5
                low, high = expanded_percentile(boot, S, confidence)
                low, high = np.where(enough, low, np.nan), np.where(enough, high, np.nan)
        C, K = f0.shape
        note = np.where(np.isfinite(f0), "ok",
                        np.where(noisy_mean < clean_mean[:, 0][None], "below grid", "above grid"))
        frame = pd.DataFrame({
            "model": grid.models[m], "class_name": np.tile(np.arange(K), C),
            "noise_fraction": np.repeat(grid.noise[ii], K), "train_fraction": np.repeat(grid.fracs[jj], K),
            "train_size": np.repeat(grid.train_size[m, ii, jj], K).round().astype(np.int64),
            "n_seeds": (~np.isnan(noisy[..., 0])).sum(axis=1).repeat(K),
            "recall": noisy_mean.reshape(-1), "clean_equivalent_fraction": f0.reshape(-1),
            "ci_low": low.reshape(-1), "ci_high": high.reshape(-1), "note": note.reshape(-1),
        })
        frame.insert(10, "exchange_rate", frame["train_fraction"] / frame["clean_equivalent_fraction"])
        return frame.sort_values(["class_name", "noise_fraction", "train_fraction"], ascending=[True, True, False],
                                 kind="stable")

    frame = pd.concat(per_model(grid, one, "exchange_rate"), ignore_index=True)
    frame["class_name"] = pd.Categorical.from_codes(frame["class_name"].to_numpy(), dtype=class_dtype(grid.classes))
    return frame


__all__ = ["noise_vs_reduction", "exchange_rate"]
