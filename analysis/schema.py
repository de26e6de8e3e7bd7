"""The one place that declares the columns `analysis` reads (the sweep's Parquet contract).

Glossary used across the package:
    K               number of classes
    cell            a grid point (experiment, model, noise_mode, noise_fraction, train_fraction); one trial per seed
    baseline        the cell with noise_fraction 0 and the largest train_fraction (normally 1.0), same model
    noise_fraction  requested share of corrupted training labels, in [0, 1]
    train_fraction  share of the full training split used, in (0, 1]; train_size is the same as a count
    true_class      the label of a test example (horizontal axis of our heatmaps)
    pred_class      the model's prediction for it (vertical axis)
    recall          count(true -> true) / count(true -> anything), one class's accuracy
    rate            count(true -> pred) / count(true -> anything), a row-normalized confusion entry
"""

from __future__ import annotations

# OUT/confusion: one row per (trial, true_class, pred_class), zeros included. Name -> kind.
CONFUSION_COLUMNS: dict[str, str] = {
    "experiment": "str",
    "trial_id": "str",
    "dataset": "str",
    "model": "str",
    "noise_mode": "str",
    "noise_fraction": "float",  # requested
    "realized_noise": "float",  # what the noise maker actually did
    "train_size": "int",  # training examples actually used
    "train_fraction": "float",  # of the full training split
    "seed": "int",
    "true_class": "str",
    "pred_class": "str",
    "count": "int",
}

# Columns that are constant within one trial (they name it).
TRIAL_KEY_COLUMNS = (
    "experiment", "dataset", "model", "noise_mode", "noise_fraction", "realized_noise",
    "train_size", "train_fraction", "seed",
)

# Columns of OUT/trials that the loader uses (the rest are provenance, kept on disk).
TRIALS_COLUMNS: dict[str, str] = {"trial_id": "str", "test_size": "int"}

# Axis values are rounded to this many decimals, so 0.1 written as 0.1000000001 is the same level.
AXIS_DECIMALS = 6

STRING_KEYS = ("experiment", "dataset", "model", "noise_mode")
