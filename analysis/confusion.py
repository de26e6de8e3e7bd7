"""Confusion matrices across seeds: the mean per cell, the change against baseline, directed pairs.

Rates are row-normalized (share of true class A predicted as B), so they compare across classes of
different test sizes. Every comparison against the baseline is paired by seed: the sweep's common
random numbers make same-seed trials alike, so the per-seed difference has far less noise than the
difference of two means.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .grid import Grid, check_frame, check_level, check_options, class_dtype, holm, per_model, seed_mean, to_grid
from .intervals import binomial_var, contrast_interval, rate_interval


def _cell_rows(grid: Grid, m: int, ii: np.ndarray, jj: np.ndarray, pairs: int) -> pd.DataFrame:
    """Leading columns for ``len(ii)`` cells of model m, each repeated ``pairs`` times."""
    return pd.DataFrame({
        "model": np.repeat(grid.models[m], len(ii) * pairs),
        "noise_fraction": np.repeat(grid.noise[ii], pairs),
        "train_fraction": np.repeat(grid.fracs[jj], pairs),
        "train_size": np.repeat(grid.train_size[m, ii, jj], pairs).round().astype(np.int64),
    })


def _cells_in_order(grid: Grid, m: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells (noise asc, train fraction desc) where ``mask[noise, size]`` holds."""
    ii, jj = np.nonzero(mask[:, ::-1])
    return ii, mask.shape[1] - 1 - jj


def mean_confusion(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean confusion matrix of every grid cell across its seeds, in counts and row-normalized.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    confidence : float, keyword-only
        Level of the intervals, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per (model, cell, true_class, pred_class), all K*K entries of every cell:
        model, noise_fraction, train_fraction, train_size (examples, median over seeds),
        true_class, pred_class (ordered categoricals in class order), n_seeds,
        count (mean test examples over seeds), count_se (standard error over seeds, NaN with one seed),
        rate (mean share of true_class predicted as pred_class), rate_se, rate_ci_low, rate_ci_high
        (seed spread plus the test set's sampling error, inside [0, 1]: ``analysis.intervals``;
        NaN with one seed).
        Sorted by model, noise_fraction, train_fraction (descending), true_class, pred_class.
    """
    check_options(confidence=confidence)
    grid = to_grid(check_frame(df))
    K = len(grid.classes)
    rates = grid.rates()
    frames = []
    for m in range(len(grid.models)):
        ii, jj = _cells_in_order(grid, m, grid.present[m].any(axis=-1))
        c = seed_mean(grid.counts[m, ii, jj], axis=1, confidence=confidence)
        r = rate_interval(rates[m, ii, jj], grid.test_sizes(m)[:, None], axis=1, confidence=confidence)
        frame = _cell_rows(grid, m, ii, jj, K * K)
        frame["true_class"] = np.tile(np.repeat(np.arange(K), K), len(ii))
        frame["pred_class"] = np.tile(np.arange(K), len(ii) * K)
        frame["n_seeds"] = c["n"].reshape(-1)
        frame["count"] = c["mean"].reshape(-1)
        frame["count_se"] = c["se"].reshape(-1)
        frame["rate"] = r["mean"].reshape(-1)
        frame["rate_se"] = r["se"].reshape(-1)
        frame["rate_ci_low"] = r["ci_low"].reshape(-1)
        frame["rate_ci_high"] = r["ci_high"].reshape(-1)
        frames.append(frame)
    return _finish(pd.concat(frames, ignore_index=True), grid)


def _finish(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    dtype = class_dtype(grid.classes)
    for column in ("true_class", "pred_class", "class_a", "class_b", "class_name"):
        if column in frame and frame[column].dtype.kind in "iu":
            frame[column] = pd.Categorical.from_codes(frame[column].to_numpy(), dtype=dtype)
    return frame.reset_index(drop=True)


def relative_confusion(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Every cell's row-normalized confusion minus its model's baseline, paired by seed.

    The baseline is noise_fraction 0 at the largest train_fraction of the same model. Only seeds
    present in both the cell and the baseline enter.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    confidence : float, keyword-only
        Level of the intervals, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per (model, non-baseline cell, true_class, pred_class): model, noise_fraction,
        train_fraction, train_size, true_class, pred_class, n_seeds (paired seeds),
        baseline_rate, rate (seed means), difference (mean of per-seed rate - baseline_rate; negative
        on the diagonal means recall lost), se, df (degrees of freedom), ci_low, ci_high (paired over seeds, the seed variance
        never below the binomial one, ``analysis.intervals``; NaN with one seed), p_value (paired
        t-test against 0; NaN where not testable).
        Sorted by model, noise_fraction, train_fraction (descending), true_class, pred_class.

    Raises
    ------
    ValueError
        When no model has a baseline cell, or the baseline is the only cell.
    """
    check_options(confidence=confidence)
    grid = to_grid(check_frame(df))
    K = len(grid.classes)
    rates = grid.rates()

    def one(m: int) -> pd.DataFrame:
        i0, j0 = grid.baseline(m)
        mask = grid.present[m].any(axis=-1)
        mask[i0, j0] = False
        if not mask.any():
            raise ValueError("the baseline is the only grid cell; nothing to compare it with")
        ii, jj = _cells_in_order(grid, m, mask)
        base = rates[m, i0, j0]  # (S, K, K)
        diff = rates[m, ii, jj] - base[None]
        n_test = grid.test_sizes(m)[:, None]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():  # same images in both cells
            warnings.simplefilter("ignore", RuntimeWarning)
            floor = (binomial_var(np.nanmean(rates[m, ii, jj], axis=1), n_test)
                     + binomial_var(np.nanmean(base, axis=0), n_test)[None])
        d = contrast_interval(diff, floor_var=floor, axis=1, confidence=confidence)
        frame = _cell_rows(grid, m, ii, jj, K * K)
        frame["true_class"] = np.tile(np.repeat(np.arange(K), K), len(ii))
        frame["pred_class"] = np.tile(np.arange(K), len(ii) * K)
        frame["n_seeds"] = d["n"].reshape(-1)
        paired = ~np.isnan(diff)
        with np.errstate(invalid="ignore"):
            frame["baseline_rate"] = (np.where(paired, base[None], 0).sum(1) / d["n"]).reshape(-1)
        frame["rate"] = (frame["baseline_rate"] + d["mean"].reshape(-1))
        frame["difference"] = d["mean"].reshape(-1)
        for key in ("se", "df", "ci_low", "ci_high"):
            frame[key] = d[key].reshape(-1)
        frame["p_value"] = d["p"].reshape(-1)
        return frame

    return _finish(pd.concat(per_model(grid, one, "relative_confusion"), ignore_index=True), grid)


def asymmetry_interval(ab: np.ndarray, ba: np.ndarray, n_a, n_b, *, axis: int, confidence: float) -> dict:
    """The contrast rate_ab - rate_ba over seeds: two classes' test images, independent samples, so
    each adds its test term (``analysis.intervals``)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = binomial_var(np.nanmean(ab, axis=axis), n_a) + binomial_var(np.nanmean(ba, axis=axis), n_b)
    return contrast_interval(ab - ba, floor_var=var, test_var=var, axis=axis, confidence=confidence)


def _pair_stats(rates: np.ndarray, n_test: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    """rates (S, K, K) -> per ordered pair (a, b), a != b, flattened row-major."""
    K = rates.shape[-1]
    a, b = np.nonzero(~np.eye(K, dtype=bool))
    ab, ba = rates[:, a, b], rates[:, b, a]
    d = asymmetry_interval(ab, ba, n_test[a], n_test[b], axis=0, confidence=confidence)
    mean_ab = seed_mean(ab, axis=0)["mean"]
    mean_ba = seed_mean(ba, axis=0)["mean"]
    # Each unordered pair is one test; its two ordered rows share the Holm-adjusted p.
    upper = a < b
    adjusted = np.empty(a.size)
    holm_upper = holm(d["p"][upper])
    lookup = {(x, y): h for x, y, h in zip(a[upper], b[upper], holm_upper)}
    adjusted[:] = [lookup[(min(x, y), max(x, y))] for x, y in zip(a, b)]
    return {"a": a, "b": b, "rate_ab": mean_ab, "rate_ba": mean_ba, "asymmetry": d["mean"], "se": d["se"], "df": d["df"],
            "ci_low": d["ci_low"], "ci_high": d["ci_high"], "p_value": d["p"], "p_holm": adjusted, "n": d["n"]}


def _cell_index(grid: Grid, m: int, noise_fraction: float, train_fraction: float | None) -> tuple[int, int]:
    present = grid.present[m].any(axis=-1)
    if train_fraction is None:
        train_fraction = grid.fracs[grid.baseline(m)[1]] if np.isclose(noise_fraction, 0.0) else \
            grid.fracs[np.flatnonzero(present.any(axis=0)).max()]
    i = np.flatnonzero(np.isclose(grid.noise, noise_fraction))
    j = np.flatnonzero(np.isclose(grid.fracs, train_fraction))
    if i.size == 0 or j.size == 0 or not present[i[0], j[0]]:
        cells = ", ".join(f"({grid.noise[x]:g}, {grid.fracs[y]:g})" for x, y in zip(*np.nonzero(present)))
        raise ValueError(f"no trials at noise_fraction {noise_fraction:g}, train_fraction {train_fraction:g} for "
                         f"model {grid.models[m]!r}; cells (noise_fraction, train_fraction) present: {cells}")
    return int(i[0]), int(j[0])


def directional_confusions(df: pd.DataFrame, *, noise_fraction: float = 0.0, train_fraction: float | None = None,
                           confidence: float = 0.95) -> pd.DataFrame:
    """For every ordered class pair A -> B at one grid cell: how often A is taken for B, and vice versa.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    noise_fraction : float, keyword-only
        The cell's noise fraction; default 0 (the clean model's own confusions).
    train_fraction : float, optional, keyword-only
        The cell's train fraction; default the largest present.
    confidence : float, keyword-only
        Level of the intervals, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per model and ordered pair (K*(K-1) rows per model): model, noise_fraction,
        train_fraction, class_a, class_b (ordered categoricals), n_seeds,
        rate_ab (mean share of true class_a predicted as class_b), rate_ba (true class_b predicted as
        class_a), asymmetry (mean per-seed rate_ab - rate_ba), se, df, ci_low, ci_high (over seeds and
        both classes' finite test sets, ``analysis.intervals``), p_value (t-test of asymmetry = 0;
        NaN where not testable, never 0 for a degenerate one), p_holm (Holm-adjusted over the
        model's K*(K-1)/2 unordered pairs).
        Sorted by model, then asymmetry descending (strongest A -> B first; each pair appears twice,
        its mirror with the opposite sign near the bottom).
    """
    check_options(confidence=confidence)
    check_level("noise_fraction", noise_fraction)
    check_level("train_fraction", train_fraction, optional=True)
    grid = to_grid(check_frame(df))
    rates = grid.rates()

    def one(m: int) -> pd.DataFrame:
        i, j = _cell_index(grid, m, noise_fraction, train_fraction)
        s = _pair_stats(rates[m, i, j], grid.test_sizes(m), confidence)
        frame = pd.DataFrame({"model": grid.models[m], "noise_fraction": grid.noise[i],
                              "train_fraction": grid.fracs[j], "class_a": s["a"], "class_b": s["b"],
                              "n_seeds": s["n"], **{k: s[k] for k in ("rate_ab", "rate_ba", "asymmetry", "se", "df",
                                                                       "ci_low", "ci_high", "p_value", "p_holm")}})
        return frame.sort_values(["asymmetry", "class_a", "class_b"], ascending=[False, True, True], kind="stable")

    return _finish(pd.concat(per_model(grid, one, "directional_confusions"), ignore_index=True), grid)


def directional_trends(df: pd.DataFrame, *, top: int = 5, noise_fraction: float = 0.0,
                       train_fraction: float | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """How the strongest directed confusions change with noise and with training-set size.

    The ``top`` pairs with the largest asymmetry at the chosen cell (see
    :func:`directional_confusions`) are followed along the noise axis (at the baseline's train
    fraction) and the size axis (at noise 0); an axis with fewer than 2 levels is left out.

    Returns
    -------
    pandas.DataFrame
        model, pair_rank (1 = strongest at the chosen cell), class_a, class_b, factor ("noise" or
        "size"), noise_fraction, train_fraction, train_size, n_seeds, rate_ab, rate_ba, asymmetry,
        ci_low, ci_high (as in :func:`directional_confusions`).
        Sorted by model, pair_rank, factor, then noise_fraction ascending / train_fraction descending.

    Raises
    ------
    ValueError
        When ``top`` is not a positive integer, or no model has 2 levels of either factor.
    """
    if not isinstance(top, (int, np.integer)) or isinstance(top, bool) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    pairs = directional_confusions(df, noise_fraction=noise_fraction, train_fraction=train_fraction,
                                   confidence=confidence)
    grid = to_grid(df)
    rates = grid.rates()
    index = {c: k for k, c in enumerate(grid.classes)}

    def one(m: int) -> pd.DataFrame:
        best = pairs[pairs["model"] == grid.models[m]].head(top)
        a = best["class_a"].astype(str).map(index).to_numpy()
        b = best["class_b"].astype(str).map(index).to_numpy()
        frames, reasons = [], []
        for factor in ("noise", "size"):
            try:
                x, ii, jj, _ = grid.axis(m, factor)
            except ValueError as error:
                reasons.append(str(error))
                continue
            order = np.arange(len(x)) if factor == "noise" else np.arange(len(x))[::-1]
            ii, jj = ii[order], jj[order]
            r = rates[m, ii, jj]  # (L, S, K, K)
            ab, ba = r[..., a, b], r[..., b, a]  # (L, S, P)
            n_test = grid.test_sizes(m)
            d = asymmetry_interval(ab, ba, n_test[a], n_test[b], axis=1, confidence=confidence)
            L, P = len(ii), len(a)
            frames.append(pd.DataFrame({
                "model": grid.models[m], "pair_rank": np.tile(np.arange(1, P + 1), L),
                "class_a": np.tile(a, L), "class_b": np.tile(b, L), "factor": factor,
                "noise_fraction": np.repeat(grid.noise[ii], P), "train_fraction": np.repeat(grid.fracs[jj], P),
                "train_size": np.repeat(grid.train_size[m, ii, jj], P).round().astype(np.int64),
                "n_seeds": d["n"].reshape(-1), "rate_ab": seed_mean(ab, axis=1)["mean"].reshape(-1),
                "rate_ba": seed_mean(ba, axis=1)["mean"].reshape(-1), "asymmetry": d["mean"].reshape(-1),
                "ci_low": d["ci_low"].reshape(-1), "ci_high": d["ci_high"].reshape(-1),
            }))
        if not frames:
            raise ValueError(" and ".join(reasons))
        frame = pd.concat(frames, ignore_index=True)
        return frame.sort_values(["pair_rank", "factor"], kind="stable")

    return _finish(pd.concat(per_model(grid, one, "directional_trends"), ignore_index=True), grid)


__all__ = ["mean_confusion", "relative_confusion", "directional_confusions", "directional_trends"]
