"""One variance model for every interval: the training seed and the finite test set.

A class's recall in a cell varies for two reasons. Training differs between seeds (seed-to-seed
spread, estimated by the seeds' sample variance s^2), and the test set is one finite sample of the
class (n images, the same for every seed, so its error does not shrink with more seeds). For a rate
p measured on n test images the variance of its mean over S seeds is taken as

    V = s^2 / S + p~(1 - p~) / n,

where p~ is the rate pulled towards 1/2 as in the Wilson interval (never exactly 0 or 1). The test
term bounds the between-image variance from above (it is exact when the seeds shift the whole class
together, the case measured on real data; docs/analysis.md derives it and the coverage benchmark,
``bench/coverage.py``, calibrates it). Intervals of a rate are Wilson intervals at the effective
sample size p~(1 - p~) / V with a t critical value (Welch-Satterthwaite degrees of freedom), so they
stay inside [0, 1] and never have zero width while n is finite.

A *contrast* (a difference of rates: a loss of recall, an asymmetry A->B minus B->A, a gap between
classes) adds the test term of each independent group of test images it compares (two classes'
images are independent samples); the same images under two conditions share their sampling error,
which the confusion counts cannot separate, so a same-image contrast carries only the seed term.
Either way the seed variance is never taken below the variance binomial counts of that size would
show (``floor_var``), so a contrast whose every seed agrees exactly still has a standard error, and
a test whose standard error is zero (no test images) is *not testable*: its p-value is NaN, never 0.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _moments(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, sample variance) over ``axis``, NaN-aware; variance NaN below 2 values."""
    n = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty slices: the NaN already says it
        mean = np.nanmean(values, axis=axis)
        var = np.where(n >= 2, np.nanvar(values, axis=axis, ddof=1), np.nan)
    return n, mean, var


def pulled_rate(rate, n_test, *, confidence: float = 0.95) -> np.ndarray:
    """The rate pulled towards 1/2 by z^2/2 pseudo-counts each way (the Wilson centre): never 0 or 1."""
    z2 = stats.norm.ppf(0.5 + confidence / 2) ** 2
    n_test = np.asarray(n_test, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(rate, float) * n_test + z2 / 2) / (n_test + z2)


def binomial_var(rate, n_test, *, confidence: float = 0.95) -> np.ndarray:
    """Variance of a rate measured on ``n_test`` images, p~(1 - p~) / n; NaN without images."""
    p = pulled_rate(rate, n_test, confidence=confidence)
    n_test = np.asarray(n_test, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_test > 0, p * (1 - p) / n_test, np.nan)


def _df(seed_var: np.ndarray, total: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of seed term (n - 1 df) plus a known test term."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seed_var > 0, total ** 2 / (seed_var ** 2 / np.maximum(n - 1, 1)), np.inf)


def rate_interval(rates: np.ndarray, n_test, *, confidence: float = 0.95, axis: int = 0) -> dict[str, np.ndarray]:
    """Mean of a rate over seeds with its interval under the two-source model (module docstring).

    ``rates`` holds one value per seed along ``axis`` (NaN = no trial); ``n_test`` the test images
    the rate is measured on (broadcast against the other axes). Returns n (seeds), mean, se, df,
    ci_low, ci_high (Wilson at the effective sample size, inside [0, 1]); NaN below 2 seeds, when
    one draw says nothing about the seed spread, and where there are no test images.
    """
    n, mean, var = _moments(np.asarray(rates, float), axis)
    n_test = np.broadcast_to(np.asarray(n_test, float), mean.shape)
    p = pulled_rate(mean, n_test, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_term = var / n
        total = seed_term + binomial_var(mean, n_test, confidence=confidence)
        df = _df(seed_term, total, n)
        tq = stats.t.ppf(0.5 + confidence / 2, df)
        n_eff = p * (1 - p) / total
        denom = 1 + tq ** 2 / n_eff
        centre = (mean + tq ** 2 / (2 * n_eff)) / denom
        half = tq * np.sqrt(mean * (1 - mean) / n_eff + tq ** 2 / (4 * n_eff ** 2)) / denom
    ok = (n >= 2) & (n_test > 0) & np.isfinite(total)
    nan = np.full(mean.shape, np.nan)
    return {"n": n, "mean": mean, "se": np.where(ok, np.sqrt(total), nan), "df": np.where(ok, df, nan),
            "ci_low": np.where(ok, np.clip(centre - half, 0, 1), nan),
            "ci_high": np.where(ok, np.clip(centre + half, 0, 1), nan)}


def contrast_interval(values: np.ndarray, *, floor_var, test_var=0.0, confidence: float = 0.95, axis: int = 0,
                      bounds: tuple[float, float] = (-1.0, 1.0)) -> dict[str, np.ndarray]:
    """Mean of a per-seed contrast with its interval and two-sided t-test of 0.

    ``floor_var``: the per-seed variance binomial counts alone would give the contrast (the seed
    variance is never taken below it); ``test_var``: the test-set term of the independent image
    groups it compares (0 for a same-image contrast). Returns n, mean, se, df, ci_low, ci_high
    (clipped to ``bounds``, the values the contrast can take), p (NaN below 2 seeds and where the
    standard error is 0 or unknown: not testable), testable (bool).
    """
    n, mean, var = _moments(np.asarray(values, float), axis)
    floor = np.broadcast_to(np.asarray(floor_var, float), mean.shape)
    test = np.broadcast_to(np.asarray(test_var, float), mean.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_term = np.fmax(var, floor) / n
        total = seed_term + np.nan_to_num(test)
        se = np.sqrt(total)
        df = _df(seed_term, total, n)
        tq = stats.t.ppf(0.5 + confidence / 2, df)
        testable = (n >= 2) & np.isfinite(se) & (se > 0)
        p = np.where(testable, 2 * stats.t.sf(np.abs(mean) / se, df), np.nan)
    nan = np.full(mean.shape, np.nan)
    low = np.where(n >= 2, np.clip(mean - tq * se, *bounds), nan)
    high = np.where(n >= 2, np.clip(mean + tq * se, *bounds), nan)
    return {"n": n, "mean": mean, "se": np.where(n >= 2, se, nan), "df": np.where(n >= 2, df, nan),
            "ci_low": low, "ci_high": high, "p": p, "testable": testable}


def class_test_sizes(counts: np.ndarray) -> np.ndarray:
    """Test images per true class from confusion counts (..., S, K, K): the most over seeds and cells
    (every trial scores the same test set), shape (K,) after reducing all leading axes."""
    support = counts.sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmax(support.reshape(-1, support.shape[-1]), axis=0))


__all__ = ["rate_interval", "contrast_interval", "binomial_var", "pulled_rate", "class_test_sizes"]
