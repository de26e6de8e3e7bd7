"""Which training budget a results folder used: a number of epochs, or of optimizer steps.

With a fixed number of epochs a smaller training set also gets fewer optimizer steps, so the size
axis mixes "less data" with "less training"; a step budget (``[training] steps``) trains every size
equally long. The report says which one a folder used, from ``OUT/trials`` (``steps_requested`` is
null under an epoch budget; folders written before budgets were recorded lack the column and read
as an epoch budget).
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.dataset as ds

from .load import _filesystem

COLUMNS = {"epochs": pa.int64(), "steps_requested": pa.int64()}


def training_budget(path: str | os.PathLike) -> str:
    """The budget of the trials in ``path``'s ``trials/`` in words: "15 epochs", "2,000 steps",
    "mixed: ..." when trials differ, or "unknown" when the folder has no trials table."""
    fs, root = _filesystem(path)
    where = f"{root.rstrip('/')}/trials"
    if fs.get_file_info(where).type != pa.fs.FileType.Directory:
        return "unknown"
    files = [i.path for i in fs.get_file_info(pa.fs.FileSelector(where)) if i.path.endswith(".parquet")
             and not os.path.basename(i.path).startswith((".", "_"))]
    if not files:
        return "unknown"
    # An explicit schema reads a column that older files lack as nulls.
    table = ds.dataset(files, filesystem=fs, format="parquet", schema=pa.schema(COLUMNS)).to_table()
    budgets = set()
    for epochs, steps in zip(table["epochs"].to_pylist(), table["steps_requested"].to_pylist()):
        budgets.add(f"{steps:,} steps" if steps is not None else f"{epochs:,} epochs" if epochs is not None
                    else "unknown")
    return budgets.pop() if len(budgets) == 1 else "mixed: " + ", ".join(sorted(budgets))


__all__ = ["training_budget"]
