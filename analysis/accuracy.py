"""Overall test accuracy per grid cell, with the interval every rate gets (``analysis.intervals``).

The first table of the report: before asking which class is fragile, a reader checks that the models
learned something and how much each cell costs overall. Accuracy is the share of all test images
predicted as their true class, per seed, then summarised over seeds with the seed spread and the
finite test set (all N test images) as its two sources of variation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .grid import check_frame, check_options, to_grid
from .intervals import rate_interval


def accuracy_table(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Test accuracy of every grid cell over its seeds.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    confidence : float, keyword-only
        Level of the intervals, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per model and cell: model, noise_fraction, train_fraction, train_size (examples,
        median over seeds), n_seeds, n_test (test images), accuracy (mean over seeds), sd (over
        seeds; NaN with one seed), ci_low, ci_high (seed spread plus the test set's sampling error,
        inside [0, 1]; NaN with one seed). Sorted by model, noise_fraction, train_fraction
        descending.
    """
    check_options(confidence=confidence)
    grid = to_grid(check_frame(df))
    rows = []
    for m, model in enumerate(grid.models):
        counts = grid.counts[m]  # (X, F, S, K, K)
        correct = np.trace(counts, axis1=-2, axis2=-1)
        total = counts.sum(axis=(-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = correct / total  # (X, F, S), NaN where no trial
        n_test = float(grid.test_sizes(m).sum())
        r = rate_interval(acc, n_test, axis=-1, confidence=confidence)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # cells without trials: NaN says it
            sd = np.where(r["n"] >= 2, np.nanstd(acc, axis=-1, ddof=1), np.nan)
        for i, j in zip(*np.nonzero(grid.present[m].any(axis=-1))):
            rows.append({"model": model, "noise_fraction": grid.noise[i], "train_fraction": grid.fracs[j],
                         "train_size": int(round(grid.train_size[m, i, j])), "n_seeds": int(r["n"][i, j]),
                         "n_test": int(n_test), "accuracy": r["mean"][i, j], "sd": sd[i, j],
                         "ci_low": r["ci_low"][i, j], "ci_high": r["ci_high"][i, j]})
    frame = pd.DataFrame(rows)
    frame["model_order"] = frame["model"].map({m: i for i, m in enumerate(grid.models)})
    frame = frame.sort_values(["model_order", "noise_fraction", "train_fraction"], ascending=[True, True, False],
                              kind="stable")
    return frame.drop(columns="model_order").reset_index(drop=True)


__all__ = ["accuracy_table"]
