"""Nonlinearity: each class's curve against noise or size, and whether it bends at a breakpoint.

Three models are fitted to the seed-mean curve by least squares: a line; a continuous
one-breakpoint ("hinge") line ``a + b*x + d*max(0, x - c)`` with c searched on a fine grid between
the second and the second-to-last level (so each side has two levels); and, for size, a power law
``a + b * x**-e`` (the usual learning-curve shape). The breakpoint's CI is an expanded percentile
bootstrap over seeds (refit on every resample; 5 seeds or more, see ``grid.MIN_BOOT_SEEDS``).

The break is tested with ``D = RSS_line - RSS_hinge``, the squared residual the bend explains beyond
a line. D depends on the curve only through its residual from the best line, ``R y`` (both fits
contain every line), and the seed-mean curve's residual is the mean of the seeds' own residuals
``r_s = R y_s``. The seeds at each level are replicates, so their scatter around that mean is pure
error: ``s2 = sum_s |r_s - mean r|^2 / ((S - 1)(L - 2))`` estimates the seed-to-seed variance per
level (the projection also removes each seed's own offset and tilt, which common random numbers
make large and which cannot look like a bend). The test is a lack-of-fit test of the line against
the hinge, ``T = S * D / s2``, calibrated by simulating straight lines: under a line with Gaussian
noise of equal variance at every level, ``T`` is distributed as ``max_c D(z) / (V / nu)`` with z
standard normal over the L levels, V chi-square with ``nu = (S - 1)(L - 2)`` degrees of freedom and
independent of z, whatever the variance (it cancels). The p-value ``P(T >= t)`` is computed as the
mean over ``4 * n_boot`` draws of z of ``chi2.cdf(nu * D(z) / t, nu)`` (V integrated exactly), so it
is smooth and has no floor. Searching c inside D(z) is what makes the null right: an F table would
be wrong, because c is estimated (Davies' problem). Within a model the K classes' p-values are
Holm-adjusted (``p_holm``): the family-wise chance of calling any straight class bent is <= 5 %.
Measured by ``bench/bend_test_power.py`` (docs/analysis.md): the false-bend rate and the power.

The exact sign-flip test used before is kept as ``p_signflip``: flipping the sign of any seed's
residual leaves a straight curve's distribution unchanged given symmetric noise, whatever its
correlation across levels, so it needs no normality; but its smallest value is 1 / 2^(S-1)
(0.25 at 3 seeds, 0.0625 at 5), so below 6 seeds it can never call a bend.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from scipy import stats

from .grid import (MIN_BOOT_SEEDS, Grid, bootstrap_indices, check_factor, check_frame, check_options, class_dtype,
                   expanded_percentile, format_levels, holm, per_model, seed_mean, to_grid)
from .intervals import binomial_var, contrast_interval, rate_interval

N_BREAKS = 41  # candidate breakpoints between the 2nd and 2nd-to-last level (plus the levels)
EXPONENTS = np.geomspace(0.05, 3.0, 40)  # candidate power-law exponents for size
NULL_DRAWS_PER_BOOT = 4  # straight-line draws of the lack-of-fit test per n_boot


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
        The confusion table from :func:`load_results` (one folder, or several).
    factor : {"noise", "size"}, keyword-only
        "noise": noise fractions at the largest train fraction; "size": train fractions at noise 0.
    cells : list of (true_class, pred_class), optional, keyword-only
        Confusion entries to follow, e.g. ``[("bird", "bird"), ("cat", "dog")]``; default every
        class's recall (the diagonal).
    confidence : float, keyword-only
        Level of the intervals (seed spread plus the finite test set, ``analysis.intervals``).

    Returns
    -------
    pandas.DataFrame
        model, factor, class_name (true class), pred_class (both ordered categoricals; equal for
        recall), noise_fraction, train_fraction, train_size, n_seeds, mean (the rate, mean over
        seeds), se, ci_low, ci_high (inside [0, 1]), drop (mean per-seed baseline - rate; positive
        = lost), drop_ci_low, drop_ci_high (paired over seeds, binomial floor).
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
        n_test = grid.test_sizes(m)[pairs[:, 0]]  # (P,): the true class's test images
        v = rate_interval(values, n_test, axis=1, confidence=confidence)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            var = binomial_var(np.nanmean(values, axis=1), n_test)  # (L, P)
        # The same images at both levels: a same-image contrast, binomial floor only.
        d = contrast_interval(values[base][None] - values, floor_var=var + var[base][None], axis=1,
                              confidence=confidence)
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


def _sign_patterns(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(B, S) signs +-1 for the sign-flip test; row 0 is the observed pattern (all +1).

    All 2^(S-1) patterns with the first seed's sign fixed (T is even in the curve) when that is at
    most ``n_boot``, else the observed pattern and ``n_boot - 1`` random ones.
    """
    if n_seeds - 1 <= np.log2(n_boot):
        bits = (np.arange(2 ** (n_seeds - 1))[:, None] >> np.arange(n_seeds - 1)[None]) & 1
        return np.concatenate([np.ones((bits.shape[0], 1)), 1.0 - 2.0 * bits], axis=1)
    random = rng.choice([-1.0, 1.0], size=(n_boot - 1, n_seeds))
    return np.concatenate([np.ones((1, n_seeds)), random])


def _explained_by_bend(line_r: np.ndarray, hinge_r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """D = RSS_line - min_c RSS_hinge for curves y (..., L)."""
    return _rss(line_r, y)[..., 0] - _rss(hinge_r, y).min(axis=-1)


def lack_of_fit_p(resid: np.ndarray, line_r: np.ndarray, hinge_r: np.ndarray, n_draws: int,
                  rng: np.random.Generator) -> np.ndarray:
    """P-value of line against hinge from the seeds' residuals from a line, resid (S, P, L).

    See the module docstring: T = S * D(mean residual) / s2 against simulated straight lines.
    NaN below 2 seeds; 0 when the seeds agree exactly and the mean bends; 1 for an exactly straight mean.
    """
    S, P, L = resid.shape
    if S < 2:
        return np.full(P, np.nan)
    nu = (S - 1) * (L - 2)
    mean = resid.mean(axis=0)  # (P, L)
    d_obs = _explained_by_bend(line_r, hinge_r, mean)  # (P,)
    s2 = ((resid - mean) ** 2).sum(axis=(0, 2)) / nu  # pure error per level and seed
    d_null = _explained_by_bend(line_r, hinge_r, rng.standard_normal((n_draws, L)))  # (B,), unit variance
    with np.errstate(invalid="ignore", divide="ignore"):
        t_obs = S * np.maximum(d_obs, 0.0) / s2  # inf when the seeds agree exactly
        p = stats.chi2.cdf(nu * d_null[None, :] / t_obs[:, None], nu).mean(axis=1)
    # Rounding: a perfectly straight mean has D ~ 1e-17, not 0; call it straight.
    straight = d_obs <= 1e-12 * np.maximum((mean ** 2).sum(axis=1), 1e-30)
    return np.where(straight, 1.0, p)


def breakpoints(df: pd.DataFrame, *, factor: str = "noise", cells=None, n_boot: int = 1000,
                confidence: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Does each class's curve bend, where, and is the bend real? (Line vs one-breakpoint hinge.)

    Fits are on the seed-mean curve of each class's recall (or each requested confusion entry)
    against the factor; see the module docstring for the models, the CI and the test. Seeds with a
    trial at every level enter.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    factor : {"noise", "size"}, keyword-only
        "noise": x = noise fraction at the largest train fraction; "size": x = train fraction at noise 0.
    cells : list of (true_class, pred_class), optional, keyword-only
        Entries to fit, e.g. ``[("bird", "bird")]``; default every class's recall.
    n_boot : int, keyword-only
        Bootstrap resamples of the seeds for the CI (>= 100); the lack-of-fit test draws 4 * n_boot
        straight lines, and the sign-flip test enumerates at most n_boot sign patterns (with more
        than log2(n_boot) + 1 seeds it draws n_boot at random).
    confidence : float, keyword-only
        Level of the breakpoint interval.
    random_state : int, keyword-only
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per model and entry: model, factor, class_name, pred_class (ordered categoricals;
        equal for recall), n_levels, n_seeds, slope_linear (rate change per unit of x), breakpoint
        (x where the hinge bends), ci_low, ci_high (expanded percentile bootstrap over seeds; NaN
        below 5 seeds), slope_before, slope_after (per unit of x, either side of the breakpoint),
        rss_linear, rss_piecewise, p_value (lack-of-fit test of line vs hinge calibrated on simulated
        straight lines with the seeds' own scatter, see the module docstring; small = the bend is
        real), p_holm (p_value Holm-adjusted over the model's entries), p_signflip (the exact
        sign-flip test; assumption-light but never below 1 / 2^(S-1)), bend_effect (size of the
        bend: the seed-mean residual from the line projected on the fitted hinge term, a unit
        vector over the levels; recall units), bend_effect_sd (sd over seeds of each seed's
        projection; ``bend_effect / bend_effect_sd`` is the effect size a power estimate uses),
        power_exponent, rss_power (size only, else NaN), best_fit ("linear", "piecewise" or
        "power", by AICc).
        Sorted by model, p_value ascending, then class order. With one seed every p is NaN. Entries
        of a class with no test examples (no recall) are left out, with a warning.

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

    def one(m: int) -> pd.DataFrame:
        x, values, _, _ = grid.metric_along(m, factor, pairs)  # (S, L, P)
        finite = np.isfinite(values).all(axis=(0, 1))
        if not finite.any():
            raise ValueError("no requested entry has a rate (their classes have no test examples)")
        if not finite.all():  # a class with no test examples has no rate (0/0)
            names = [grid.classes[a] if a == b else f"{grid.classes[a]}->{grid.classes[b]}" for a, b in pairs[~finite]]
            warnings.warn(f"{grid.models[m]}: {names} have no rate (no test examples of the true class), so they "
                          "are left out of the breakpoint fits", stacklevel=3)
        kept, values = pairs[finite], values[..., finite]
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
        d_obs = rss_line - rss_hinge  # how much of the curve the bend explains beyond a line
        ci_low = ci_high = p_signflip = np.full(P, np.nan)
        if S >= MIN_BOOT_SEEDS:
            idx = bootstrap_indices(S, n_boot, rng)
            boot_mean = values[idx].mean(axis=1).transpose(0, 2, 1)  # (B, P, L)
            boot_c = c[_rss(hinge_r, boot_mean).argmin(axis=-1)]  # (B, P)
            ci_low, ci_high = expanded_percentile(boot_c, S, confidence)
        resid = np.einsum("lm,smp->spl", line_r[0], values)  # (S, P, L): each seed's residual from a line
        p_value = lack_of_fit_p(resid, line_r, hinge_r, NULL_DRAWS_PER_BOOT * n_boot, rng)
        # Each seed's residual along the fitted bend (the hinge term off the line, as a unit vector over
        # the levels): its mean is the bend's size, its spread over seeds the noise a power estimate needs.
        direction = np.einsum("lm,pm->pl", line_r[0], hinge[best][..., 2])  # (P, L): the hinge term off the line
        with np.errstate(invalid="ignore", divide="ignore"):
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        along = np.einsum("spl,pl->sp", resid, direction)  # (S, P)
        bend_effect = np.abs(along.mean(axis=0))
        bend_effect_sd = along.std(axis=0, ddof=1) if S >= 2 else np.full(P, np.nan)
        if S >= 2:
            signs = _sign_patterns(S, n_boot, rng)  # (B, S), the observed pattern (all +1) first
            null = np.einsum("bs,spl->bpl", signs, resid) / S  # (B, P, L)
            d_null = _explained_by_bend(line_r, hinge_r, null)
            # The observed pattern is in the set, so p >= 1 / patterns. The tolerance keeps the observed
            # pattern counted despite rounding (and a perfectly straight curve at p = 1).
            tolerance = 1e-9 * np.maximum(np.abs(d_obs), 1e-30)
            p_signflip = (d_null >= (d_obs - tolerance)[None]).mean(axis=0)
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
            "model": grid.models[m], "factor": factor, "class_name": kept[:, 0], "pred_class": kept[:, 1],
            "n_levels": L, "n_seeds": S, "slope_linear": slope_line, "breakpoint": c[best],
            "ci_low": ci_low, "ci_high": ci_high, "slope_before": coef[:, 1], "slope_after": coef[:, 1] + coef[:, 2],
            "rss_linear": rss_line, "rss_piecewise": rss_hinge, "p_value": p_value,
            "p_holm": holm(p_value), "p_signflip": p_signflip, "bend_effect": bend_effect,
            "bend_effect_sd": bend_effect_sd,
            "power_exponent": exponent, "rss_power": rss_power, "best_fit": best_fit, "order": np.arange(P),
        }).sort_values(["p_value", "order"], kind="stable")

    frame = pd.concat(per_model(grid, one, f"breakpoints(factor={factor!r})"), ignore_index=True)
    dtype = class_dtype(grid.classes)
    for column in ("class_name", "pred_class"):
        frame[column] = pd.Categorical.from_codes(frame[column].to_numpy(), dtype=dtype)
    return frame.drop(columns="order").reset_index(drop=True)


__all__ = ["class_curves", "breakpoints"]
