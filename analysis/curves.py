"""Nonlinearity: each class's curve against noise or size, and whether it bends at a breakpoint.

Three models are fitted to the seed-mean curve by least squares: a line; a continuous
one-breakpoint ("hinge") line ``a + b*x + d*max(0, x - c)`` with c searched on a fine grid between
the second and the second-to-last level (so each side has two levels); and, for size, a power law
``a + b * x**-e`` (the usual learning-curve shape). The breakpoint's CI is a percentile bootstrap
over seeds (refit on every resample). The break is tested with a seed-level residual bootstrap of
``T = (RSS_line - RSS_hinge) / RSS_hinge``: null curves are the fitted line plus resampled seed
deviations, so they carry the real (correlated, heteroscedastic) seed noise. An F table would be
wrong here: c is estimated, so the hinge is not a fixed nested model (Davies' problem).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .grid import (Grid, check_factor, check_frame, check_options, class_dtype, format_levels, per_model, seed_mean,
                   to_grid)

N_BREAKS = 41  # candidate breakpoints between the 2nd and 2nd-to-last level (plus the levels)
EXPONENTS = np.geomspace(0.05, 3.0, 40)  # candidate power-law exponents for size


def _pairs(grid: Grid, cells) -> np.ndarray:
    """(P, 2) class indices; None = every class's recall (the diagonal)."""
    K = len(grid.classes)
    if cells is None:
        return np.repeat(np.arange(K), 2).reshape(-1, 2)
    index = {c: k for k, c in enumerate(grid.classes)}
    if isinstance(cells, tuple) and len(cells) == 2 and all(isinstance(c, str) for c in cells):
        cells = [cells]
    out = []
    for cell in cells:
        if not (isinstance(cell, (tuple, list)) and len(cell) == 2):
            raise TypeError(f"cells must be (true_class, pred_class) pairs, got {cell!r}")
        unknown = [c for c in cell if c not in index]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown} in cells; classes: {list(grid.classes)}")
        out.append((index[cell[0]], index[cell[1]]))
    if not out:
        raise ValueError("cells is empty; pass None for every class's recall or (true, pred) pairs")
    return np.asarray(out)


def class_curves(df: pd.DataFrame, *, factor: str = "noise", cells=None, confidence: float = 0.95) -> pd.DataFrame:
    """Each class's recall (or any confusion entry) against one factor, with its seed mean and CI.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one experiment).
    factor : {"noise", "size"}, keyword-only
        "noise": noise fractions at the largest train fraction; "size": train fractions at noise 0.
    cells : list of (true_class, pred_class), optional, keyword-only
        Confusion entries to follow, e.g. ``[("bird", "bird"), ("cat", "dog")]``; default every
        class's recall (the diagonal).
    confidence : float, keyword-only
        Level of the t-intervals over seeds.

    Returns
    -------
    pandas.DataFrame
        model, factor, class_name (true class), pred_class (both ordered categoricals; equal for
        recall), noise_fraction, train_fraction, train_size, n_seeds, mean (the rate, mean over
        seeds), se, ci_low, ci_high, drop (mean per-seed baseline - rate; positive = lost),
        drop_ci_low, drop_ci_high (paired t-interval).
        Sorted by model, class_name, pred_class (in the order of ``cells``), then the factor's
        value ascending (noise_fraction or train_fraction).
    """
    check_factor(factor)
    check_options(confidence=confidence)
    grid = to_grid(check_frame(df))
    pairs = _pairs(grid, cells)
    rates = grid.rates()

    def one(m: int) -> pd.DataFrame:
        x, ii, jj, base = grid.axis(m, factor)
        values = rates[m, ii, jj][..., pairs[:, 0], pairs[:, 1]]  # (L, S, P)
        v = seed_mean(values, axis=1, confidence=confidence)
        d = seed_mean(values[base][None] - values, axis=1, confidence=confidence)
        L, P = values.shape[0], values.shape[2]
        return pd.DataFrame({
            "model": grid.models[m], "factor": factor, "order": np.tile(np.arange(P), L),
            "class_name": np.tile(pairs[:, 0], L), "pred_class": np.tile(pairs[:, 1], L),
            "noise_fraction": np.repeat(grid.noise[ii], P), "train_fraction": np.repeat(grid.fracs[jj], P),
            "train_size": np.repeat(grid.train_size[m, ii, jj], P).round().astype(np.int64),
            "n_seeds": v["n"].reshape(-1), "mean": v["mean"].reshape(-1), "se": v["se"].reshape(-1),
            "ci_low": v["ci_low"].reshape(-1), "ci_high": v["ci_high"].reshape(-1),
            "drop": d["mean"].reshape(-1), "drop_ci_low": d["ci_low"].reshape(-1),
            "drop_ci_high": d["ci_high"].reshape(-1),
        }).sort_values(["order", "noise_fraction" if factor == "noise" else "train_fraction"], kind="stable")

    frame = pd.concat(per_model(grid, one, f"class_curves(factor={factor!r})"), ignore_index=True)
    dtype = class_dtype(grid.classes)
    for column in ("class_name", "pred_class"):
        frame[column] = pd.Categorical.from_codes(frame[column].to_numpy(), dtype=dtype)
    return frame.drop(columns="order").reset_index(drop=True)


# The hinge has four parameters (intercept, slope, slope change, breakpoint): with four levels it
# passes through every seed mean, its RSS is 0 and the line-vs-hinge statistic is meaningless.
# Five levels leave one residual degree of freedom.
MIN_LEVELS = 5


def _residual_makers(design: np.ndarray) -> np.ndarray:
    """(C, L, p) designs -> (C, L, L) residual projections I - X pinv(X)."""
    L = design.shape[1]
    return np.eye(L) - design @ np.linalg.pinv(design)


def _rss(resid_maker: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y (..., L) -> RSS for every candidate, (..., C)."""
    r = np.einsum("cml,...l->...cm", resid_maker, y)
    return (r * r).sum(axis=-1)


def _aicc(rss: np.ndarray, n: int, k: int) -> np.ndarray:
    if n - k - 1 <= 0:
        return np.full(rss.shape, np.inf)
    with np.errstate(divide="ignore"):
        return n * np.log(np.maximum(rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _fit(x: np.ndarray, factor: str):
    L = x.size
    c = np.unique(np.concatenate([np.linspace(x[1], x[-2], N_BREAKS), x[1:-1]]))
    ones = np.ones(L)
    line = np.stack([ones, x], axis=1)[None]
    hinge = np.stack([np.broadcast_to(ones, (c.size, L)), np.broadcast_to(x, (c.size, L)),
                      np.maximum(0.0, x[None] - c[:, None])], axis=2)
    power = None
    if factor == "size":
        power = np.stack([np.broadcast_to(ones, (EXPONENTS.size, L)), x[None] ** -EXPONENTS[:, None]], axis=2)
    return c, line, hinge, power


def breakpoints(df: pd.DataFrame, *, factor: str = "noise", cells=None, n_boot: int = 1000,
                confidence: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Does each class's curve bend, where, and is the bend real? (Line vs one-breakpoint hinge.)

    Fits are on the seed-mean curve of each class's recall (or each requested confusion entry)
    against the factor; see the module docstring for the models, the CI and the test. Seeds with a
    trial at every level enter.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one experiment).
    factor : {"noise", "size"}, keyword-only
        "noise": x = noise fraction at the largest train fraction; "size": x = train fraction at noise 0.
    cells : list of (true_class, pred_class), optional, keyword-only
        Entries to fit, e.g. ``[("bird", "bird")]``; default every class's recall.
    n_boot : int, keyword-only
        Bootstrap resamples of the seeds, for the CI and for the test (>= 100).
    confidence : float, keyword-only
        Level of the breakpoint interval.
    random_state : int, keyword-only
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per model and entry: model, factor, class_name, pred_class (ordered categoricals;
        equal for recall), n_levels, n_seeds, slope_linear (rate change per unit of x), breakpoint
        (x where the hinge bends), ci_low, ci_high (percentile bootstrap over seeds), slope_before,
        slope_after (per unit of x, either side of the breakpoint), rss_linear, rss_piecewise,
        p_value (residual-bootstrap test of line vs hinge; small = the bend is real; resolution
        1/(n_boot+1)), power_exponent, rss_power (size only, else NaN), best_fit ("linear",
        "piecewise" or "power", by AICc).
        Sorted by model, p_value ascending, then class order. With one seed ci_low, ci_high and
        p_value are NaN.

    Raises
    ------
    ValueError
        Bad options, unknown classes in ``cells``, or fewer than ``MIN_LEVELS`` (5) levels of the factor.
    """
    check_factor(factor)
    check_options(confidence=confidence, n_boot=n_boot)
    grid = to_grid(check_frame(df))
    pairs = _pairs(grid, cells)
    rng = np.random.default_rng(random_state)
    alpha = 1 - confidence

    def one(m: int) -> pd.DataFrame:
        x, values, _, _ = grid.metric_along(m, factor, pairs)  # (S, L, P)
        S, L, P = values.shape
        if L < MIN_LEVELS:
            raise ValueError(f"breakpoints need at least {MIN_LEVELS} {factor} levels, the grid has {L} "
                             f"({format_levels(x)})")
        c, line, hinge, power = _fit(x, factor)
        y = values.mean(axis=0).T  # (P, L)
        line_r, hinge_r = _residual_makers(line), _residual_makers(hinge)
        rss_line = _rss(line_r, y)[:, 0]
        rss_hinge_all = _rss(hinge_r, y)
        best = rss_hinge_all.argmin(axis=1)
        rss_hinge = rss_hinge_all[np.arange(P), best]
        coef = np.einsum("pkl,pl->pk", np.linalg.pinv(hinge[best]), y)  # a, b, d per entry
        slope_line = np.einsum("kl,pl->pk", np.linalg.pinv(line[0]), y)[:, 1]
        scale = np.maximum(rss_hinge, 1e-12 * np.maximum(rss_line, 1e-30))
        t_obs = (rss_line - rss_hinge) / scale
        ci_low = ci_high = p_value = np.full(P, np.nan)
        if S >= 2:
            idx = rng.integers(0, S, size=(n_boot, S))
            boot_mean = values[idx].mean(axis=1).transpose(0, 2, 1)  # (B, P, L)
            boot_c = c[_rss(hinge_r, boot_mean).argmin(axis=-1)]  # (B, P)
            ci_low = np.percentile(boot_c, 100 * alpha / 2, axis=0)
            ci_high = np.percentile(boot_c, 100 * (1 - alpha / 2), axis=0)
            fitted_line = y - np.einsum("lm,pm->pl", line_r[0], y)
            null = fitted_line[None] + (boot_mean - y[None])  # line + resampled seed deviations
            n_line = _rss(line_r, null)[..., 0]
            n_hinge = _rss(hinge_r, null).min(axis=-1)
            t_null = (n_line - n_hinge) / np.maximum(n_hinge, 1e-12 * np.maximum(n_line, 1e-30))
            p_value = (1 + (t_null >= t_obs[None] * (1 - 1e-9)).sum(axis=0)) / (n_boot + 1)
        exponent = rss_power = np.full(P, np.nan)
        aic = {"linear": _aicc(rss_line, L, 2), "piecewise": _aicc(rss_hinge, L, 4)}
        if power is not None:
            rss_power_all = _rss(_residual_makers(power), y)
            exponent = EXPONENTS[rss_power_all.argmin(axis=1)]
            rss_power = rss_power_all.min(axis=1)
            aic["power"] = _aicc(rss_power, L, 3)
        names = list(aic)
        best_fit = np.asarray(names)[np.argmin(np.stack([aic[n] for n in names]), axis=0)]
        return pd.DataFrame({
            "model": grid.models[m], "factor": factor, "class_name": pairs[:, 0], "pred_class": pairs[:, 1],
            "n_levels": L, "n_seeds": S, "slope_linear": slope_line, "breakpoint": c[best],
            "ci_low": ci_low, "ci_high": ci_high, "slope_before": coef[:, 1], "slope_after": coef[:, 1] + coef[:, 2],
            "rss_linear": rss_line, "rss_piecewise": rss_hinge, "p_value": p_value,
            "power_exponent": exponent, "rss_power": rss_power, "best_fit": best_fit, "order": np.arange(P),
        }).sort_values(["p_value", "order"], kind="stable")

    frame = pd.concat(per_model(grid, one, f"breakpoints(factor={factor!r})"), ignore_index=True)
    dtype = class_dtype(grid.classes)
    for column in ("class_name", "pred_class"):
        frame[column] = pd.Categorical.from_codes(frame[column].to_numpy(), dtype=dtype)
    return frame.drop(columns="order").reset_index(drop=True)


__all__ = ["class_curves", "breakpoints"]
