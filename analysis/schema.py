"""The columns `analysis` reads, derived from the sweep's results contract (``sweep.contract``).

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

import pyarrow as pa

from sweep.contract import CONFUSION_SCHEMA, KEY_FIELDS, TRIALS_SCHEMA


def _kind(arrow_type: pa.DataType) -> str:
    """The loader's kinds: it accepts any string, float or integer encoding of a column."""
    if pa.types.is_string(arrow_type):
        return "str"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_integer(arrow_type):
        return "int"
    raise TypeError(f"the contract has a column of type {arrow_type}, which analysis does not read")


# OUT/confusion: one row per (trial, true_class, pred_class), zeros included. Name -> kind.
CONFUSION_COLUMNS: dict[str, str] = {f.name: _kind(f.type) for f in CONFUSION_SCHEMA}

# Columns that are constant within one trial (they name it).
TRIAL_KEY_COLUMNS = tuple(f.name for f in KEY_FIELDS if f.name != "trial_id")

# Columns of OUT/trials that the loader uses (the rest are provenance, kept on disk).
TRIALS_COLUMNS: dict[str, str] = {name: _kind(TRIALS_SCHEMA.field(name).type) for name in ("trial_id", "test_size")}

# Axis values are rounded to this many decimals, so 0.1 written as 0.1000000001 is the same level.
AXIS_DECIMALS = 6

STRING_KEYS = tuple(f.name for f in KEY_FIELDS if f.name != "trial_id" and pa.types.is_string(f.type))
