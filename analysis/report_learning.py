"""The report's learning-curve section: memorisation against epoch per noise level, from OUT/epochs.

Kept apart from ``analysis.report`` (one concern per module): it reads its own folder, and a results
folder without it (trials run before learning curves were recorded) gets one line and the report
goes on. The statistics are :mod:`analysis.learning`'s; the figure is
:func:`analysis.figures.memorisation_figure`.
"""

from __future__ import annotations

import html
import os
from typing import Any, Callable

from . import figures
from .learning import (NoEpochsError, learned_first, learned_first_sentences, load_epochs, memorisation_curves,
                       memorisation_order)


def learning_section(page: Any, results_path: str | os.PathLike, attempt: Callable[[Any, str, Callable[[], None]], None],
                     *, tag: str = "") -> None:
    """Append the section to ``page`` (analysis.report's page); ``attempt`` is the report's way of
    running a section (a ValueError becomes a visible note). With several folders, one subsection
    per folder, its files named with ``tag`` (``_1``, ``_2``: the folder's place on the command line)."""
    page.folder_section("Learning curves: memorisation", "learning curves", results_path, several=bool(tag))
    try:
        epochs = load_epochs(results_path)
    except NoEpochsError:
        page.remark("learning curves: this results folder has no OUT/epochs (its trials ran before learning curves "
                    "were recorded); rerun them into a new OUT to get them")
        return
    except ValueError as error:
        page.note(f"learning curves: {error}")
        return

    def section():
        curves = memorisation_curves(epochs)
        order = memorisation_order(epochs)
        first = learned_first(order)
        chance = 1 / epochs["true_class"].cat.categories.size  # the share a guess would match: 1/K
        page.p("From the training passes (no extra pass over the data): the share of corrupted training examples "
               "that the model predicts as their wrong label, per epoch, mean over seeds with a t-interval band. "
               "The prediction is the one of the training step itself (augmented image, model changing during "
               "the epoch): the usual cheap proxy. A class's wrong labels count as memorised first when its mean "
               "memorised share over the epochs exceeds the average class of the same trial, paired over seeds.")
        page.raw("<ul class='findings'>" + "".join(f"<li>{html.escape(s)}</li>"
                                                   for s in learned_first_sentences(first, chance=chance)) + "</ul>")
        for model in curves["model"].unique():
            part = curves[curves["model"] == model]
            fig = figures.memorisation_figure(part, f"{model}: corrupted training labels memorised, per epoch",
                                              chance=chance)
            page.figure(fig, f"memorisation_{model}{tag}", f"{model}: share of the corrupted training labels predicted as "
                        "their wrong label, against epoch, one line per noise level (mean over seeds, t-interval); "
                        "dashed: 1/K, what a guess would match.")
        page.table(curves, f"memorisation_curves{tag}", "Memorised share of the corrupted labels per cell and epoch.", rows=0)
        page.table(order, f"memorisation_order{tag}", "Classes by how soon their wrong labels are memorised (auc = "
                   "memorised share averaged over the epochs; excess = auc minus the trial's class average, "
                   "paired over seeds).", shown=order[order["rank"] <= 3])

    attempt(page, "learning curves", section)
