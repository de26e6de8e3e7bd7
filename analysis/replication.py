"""Is the class ranking reproducible at the seeds a sweep has? The first question of every report.

A ranking of classes by sensitivity can be read only if the classes differ more than seeds do. With
the per-seed sensitivities y[s, k] (seeds as blocks, classes as treatments: a two-way layout without
replication), the classes' mean square over the residual mean square is F with (K - 1, (K - 1)(S - 1))
degrees of freedom. From it, the *split-half agreement*: the expected correlation between the class
sensitivities of two independent halves of the seeds,

    r_half = (F - 1) / (F + 1),

(the reliability of a mean over S/2 seeds, Spearman-Brown applied to ICC(C, k) = 1 - 1/F), with an
exact interval from the F distribution (McGraw & Wong 1996, case 3 consistency). It is 0 when
classes differ no more than seeds do, whatever K. ``reproducible`` is the interval's lower end above 0. The seeds that would give a split-half agreement
of ``TARGET_AGREEMENT`` follow from Spearman-Brown at the observed (or, when not reproducible, the
interval's upper, most hopeful) reliability. The observed mean Kendall tau between random half-splits
(``rank_tau_halves`` of ``sensitivity_ranking``) is reported beside it as a direct check. The
p-value is two-sided (twice the F tail), so that ``reproducible`` (p < 1 - confidence) holds exactly
when the interval's lower end is above 0: one verdict, one test. This is the
reproducibility of the ranking on this test set: the test images are the same in every half.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .grid import FACTORS, check_frame, check_options, per_model, to_grid
from .ranking import per_seed_sensitivity, recall_along

TARGET_AGREEMENT = 0.8  # split-half agreement at which a ranking counts as reproducible enough to act on
MAX_SEEDS = 100_000  # beyond this the estimate says "more than": the classes barely differ


def agreement_from_f(f, df1, df2, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """(r_half, low, high) from the F ratio of classes over residual (module docstring)."""
    if not np.isfinite(f) or df1 < 1 or df2 < 1:
        return np.nan, np.nan, np.nan
    q = stats.f.ppf(0.5 + confidence / 2, df1, df2)
    f_low, f_high = f / q, f * stats.f.ppf(0.5 + confidence / 2, df2, df1)

    def half(x: float) -> float:
        return (x - 1) / (x + 1)

    return half(f), half(f_low), half(f_high)


def seeds_for_agreement(r_half: float, n_seeds: int, target: float = TARGET_AGREEMENT) -> float:
    """Seeds at which the split-half agreement would reach ``target`` (Spearman-Brown); NaN if r <= 0.

    ``r_half`` is the agreement of halves of ``n_seeds``; halves k times larger agree
    k r / (1 + (k - 1) r), solved for k at ``target``."""
    if not np.isfinite(r_half) or r_half <= 0:
        return np.nan
    if r_half >= target:
        return float(n_seeds)
    k = target * (1 - r_half) / (r_half * (1 - target))
    return float(min(MAX_SEEDS, np.ceil(n_seeds * k)))


def reproducibility(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Whether the class ranking by sensitivity replicates across seed halves, per model and factor.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    confidence : float, keyword-only
        Level of the agreement's interval; ``reproducible`` is its lower end above 0.

    Returns
    -------
    pandas.DataFrame
        One row per model and factor the grid varies: model, factor, n_seeds, n_classes, f_ratio
        (classes' over residual mean square), p_value (F-test that the classes differ),
        agreement (expected split-half correlation of the class sensitivities; <= 0: none),
        ci_low, ci_high, reproducible (bool: ci_low > 0, i.e. p_value < 1 - confidence), seeds_needed (seeds for an
        agreement of 0.8; NaN when no class difference was seen and even the interval's upper end
        is <= 0), rank_tau_halves (observed mean Kendall tau between random half-splits, as in
        ``sensitivity_ranking``; NaN below 4 seeds). Sorted by model (grid order), factor.
        Models or factors the grid cannot rank are left out; fewer than 2 seeds gives NaN.
    """
    from .ranking import _half_split_tau  # one definition of the observed check

    check_options(confidence=confidence)
    grid = to_grid(check_frame(df))
    rng = np.random.default_rng(0)
    rows = []
    for factor in FACTORS:
        def one(m: int, factor=factor) -> dict:
            x, recall, base, _ = recall_along(grid, m, factor)
            y = per_seed_sensitivity(x, recall, base)
            y = y[:, np.isfinite(y).all(axis=0)]  # classes with test examples
            return {"model": grid.models[m], "factor": factor, **agreement(y, confidence=confidence),
                    "rank_tau_halves": _half_split_tau(y, rng)}
        try:
            rows += per_model(grid, one, f"reproducibility(factor={factor!r})")
        except ValueError:
            continue
    if not rows:
        raise ValueError("no model has a baseline and two levels of a factor: nothing to rank")
    frame = pd.DataFrame(rows)
    frame["model_order"] = frame["model"].map({m: i for i, m in enumerate(grid.models)})
    return frame.sort_values(["model_order", "factor"], kind="stable").drop(columns="model_order").reset_index(drop=True)


def agreement(y: np.ndarray, *, confidence: float = 0.95) -> dict:
    """The statistics of :func:`reproducibility` for per-seed values ``y`` (S, K)."""
    S, K = y.shape
    out = {"n_seeds": S, "n_classes": K, "f_ratio": np.nan, "p_value": np.nan, "agreement": np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "reproducible": False, "seeds_needed": np.nan}
    if S < 2 or K < 2:
        return out
    grand = y.mean()
    class_means, seed_means = y.mean(axis=0), y.mean(axis=1)
    ms_class = S * ((class_means - grand) ** 2).sum() / (K - 1)
    resid = y - class_means[None] - seed_means[:, None] + grand
    df1, df2 = K - 1, (K - 1) * (S - 1)
    ms_error = (resid ** 2).sum() / df2
    if not ms_error > 0:  # seeds agree exactly: nothing to compare the classes against
        return out
    f = ms_class / ms_error
    r, low, high = agreement_from_f(f, df1, df2, confidence=confidence)
    p = float(min(1.0, 2 * stats.f.sf(f, df1, df2)))  # two-sided: p < 1 - confidence <=> low > 0
    reproducible = bool(low > 0)
    # Spearman-Brown from the agreement of halves (S/2 seeds) to the seeds that reach the target.
    hopeful = r if reproducible else high
    need = seeds_for_agreement(hopeful, S)
    out.update(f_ratio=float(f), p_value=p, agreement=float(r), ci_low=float(low), ci_high=float(high),
               reproducible=bool(reproducible), seeds_needed=float(max(need, S)) if np.isfinite(need) else np.nan)
    return out


def verdict_sentence(row, *, label: str = "95% CI") -> str:
    """The verdict in plain words, from one row of :func:`reproducibility` (``label`` names its interval)."""
    word = {"noise": "label noise", "size": "less training data"}[row["factor"]]
    S = int(row["n_seeds"])
    if not np.isfinite(row["agreement"]):
        return (f"{row['model']}: whether the ranking by sensitivity to {word} replicates cannot be told at {S} "
                "seed(s): it needs at least 2 seeds that differ")
    said = (f"split-half agreement {row['agreement']:.2f}, {label} {row['ci_low']:.2f} to {row['ci_high']:.2f}, "
            f"F-test p {_p(row['p_value'])}"
            + (f"; observed Kendall tau between seed halves {row['rank_tau_halves']:.2f}"
               if np.isfinite(row["rank_tau_halves"]) else ""))
    need = row["seeds_needed"]
    if row["reproducible"]:
        text = (f"{row['model']}: the ranking of classes by sensitivity to {word} replicates across halves of the "
                f"{S} seeds: the classes differ more than seeds do ({said})")
        if row["agreement"] < TARGET_AGREEMENT and np.isfinite(need):
            text += (f"; a rerun would still reorder nearby classes: about {int(need):,} seeds would give an "
                     f"agreement of {TARGET_AGREEMENT}")
        return text
    text = (f"{row['model']}: at {S} seeds the classes differ less than seeds do in their sensitivity to {word}: "
            f"no ranking can be read from these results ({said})")
    if np.isfinite(need):
        more = "more than " if need >= MAX_SEEDS else "at least "
        return text + (f"; an agreement of {TARGET_AGREEMENT} would take {more}{int(need):,} seeds, even at the "
                       "interval's most hopeful end")
    return text + "; no seed count can be estimated: not even the interval's upper end shows a class difference"


def _p(p: float) -> str:
    return "–" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.3f}")


__all__ = ["reproducibility", "agreement", "agreement_from_f", "seeds_for_agreement", "verdict_sentence",
           "TARGET_AGREEMENT"]
