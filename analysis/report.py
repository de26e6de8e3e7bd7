"""One results folder (or several) -> PNG figures, CSV tables and one self-contained HTML page (``index.html``).

Sections in reading order: the grid and a contents list; the findings in sentences, the first of
them whether the class ranking replicates across seed halves; accuracy per cell (also written to
``findings.json``); sensitivity rankings; confusion heatmaps and change against baseline; per-class
curves with breakpoint tables; the model comparison; directional confusions; noise against less
data; exchange rate; classes by recall per cell; the most confidently misclassified test images (from
``OUT/probs``, when the sweep kept them); memorisation of the corrupted labels against epoch (from
``OUT/epochs``, ``analysis.report_learning``). Wide and long tables scroll inside their own box, so
the page never scrolls sideways. A section that the
grid cannot support (only noise, only size, one seed, ...) is replaced by a visible note saying why.
Images are embedded as base64, so the page opens offline and can be mailed as one file. Several
folders sharing their classes make one report over the combined table (see :mod:`analysis.several`):
the header names each folder and its experiments, and the misclassified images are shown per folder.
"""

from __future__ import annotations

import base64
import html
import json
import re
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sweep.contract import results_folder_around

from . import figures
from .confusion import directional_confusions, directional_trends, mean_confusion, relative_confusion
from .accuracy import accuracy_table
from .budget import training_budget
from .curves import breakpoints, class_curves
from .findings import KINDS, findings
from .grid import MIN_BOOT_SEEDS, check_options, to_grid
from .several import load_several, results_paths
from .ranking import class_table, model_comparison, sensitivity_ranking
from .report_learning import learning_section
from .tradeoffs import exchange_rate, noise_vs_reduction

TABLE_ROWS = 30  # rows shown in the page; the CSV holds them all


def _anchor(title: str) -> str:
    """The id of a section's heading, for the contents list."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class _Page:
    def __init__(self, out: Path, progress: Callable[[str], None]):
        self.out, self.progress, self.parts, self.t0 = out, progress, [], time.perf_counter()
        self.sections: list[tuple[str, str]] = []  # (id, title) of every h2, for the contents list

    def step(self, text: str) -> None:
        self.progress(f"report: {text} ({time.perf_counter() - self.t0:.1f} s)")

    def h(self, level: int, text: str) -> None:
        if level == 2:
            anchor = _anchor(text)
            self.sections.append((anchor, text))
            self.parts.append(f"<h2 id='{anchor}'>{html.escape(text)}</h2>")
        else:
            self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def folder_section(self, title: str, step: str, results_path, *, several: bool) -> None:
        """Open a section drawn per results folder: its heading once, then (several folders) one
        subheading naming each folder."""
        self.step(f"{step}{f' of {os.fspath(results_path)}' if several else ''}")
        if not several or _anchor(title) not in dict(self.sections):
            self.h(2, title)
        if several:
            self.h(3, f"Results folder {os.fspath(results_path)}")

    def contents(self) -> None:
        """Where the contents list goes; filled in by ``html`` once every section is known."""
        self.parts.append("<!--contents-->")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def p(self, text: str, cls: str = "") -> None:
        self.parts.append(f"<p class='{cls}'>{html.escape(text)}</p>")

    def note(self, text: str) -> None:
        """A section, or part of one, that the grid cannot support."""
        self.p(f"Not shown: {text}", "note")

    def remark(self, text: str) -> None:
        """Something the reader should know about a section that is shown."""
        self.p(f"Note: {text}", "note")

    def figure(self, fig, name: str, caption: str) -> None:
        path = self.out / f"{file_name(name)}.png"
        fig.savefig(path, dpi=110)
        figures.plt.close(fig)
        data = base64.b64encode(path.read_bytes()).decode()
        self.parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                          f"<figcaption>{html.escape(caption)} <span class='file'>({path.name})</span>"
                          "</figcaption></figure>")

    def table(self, frame: pd.DataFrame, name: str, caption: str, *, rows: int = TABLE_ROWS,
              shown: pd.DataFrame | None = None) -> None:
        """Write the whole frame as CSV; show ``rows`` rows of it (or of ``shown``); rows=0: link only."""
        name = file_name(name)
        frame.to_csv(self.out / f"{name}.csv", index=False)
        shown = frame if shown is None else shown
        more = f" First {rows} of {len(shown)} rows." if len(shown) > rows > 0 else ""
        self.parts.append(f"<p class='caption'>{html.escape(caption)}{more} "
                          f"<span class='file'>({name}.csv{', all rows' if rows == 0 else ''})</span></p>")
        if rows > 0:
            table = shown.head(rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–",
                                             classes="data", border=0)
            self.parts.append(f"<div class='scroll'>{table}</div>")  # a wide table scrolls in its own box

    def html(self, title: str) -> str:
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 ".scroll{overflow:auto;max-width:100%;max-height:480px;margin-bottom:1.5em}"
                 "table.data{border-collapse:collapse;font-size:12px}"
                 "nav.contents{background:#f4f6f8;padding:6px 14px;font-size:14px}nav.contents li{margin:2px 0}"
                 "ul.findings li{margin:4px 0}.verdict{font-size:11px;padding:1px 5px;border-radius:3px;"
                 "margin-right:6px;white-space:nowrap}.settled .verdict{background:#d7f0dc}"
                 ".open .verdict{background:#eee}.missing .verdict{background:#fff4d6}"
                 "table.data td,table.data th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}"
                 "img{max-width:100%}.note{background:#fff4d6;padding:6px 10px;border-left:4px solid #e0a800}"
                 ".file{color:#888;font-size:11px}figcaption,.caption{font-size:13px;color:#444}")
        links = "".join(f"<li><a href='#{anchor}'>{html.escape(text)}</a></li>" for anchor, text in self.sections)
        body = "\n".join(self.parts).replace("<!--contents-->", f"<nav class='contents'><b>Contents</b><ol>{links}</ol></nav>")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{html.escape(title)}</title><style>{style}</style></head><body>{body}</body></html>\n")


def file_name(name: str) -> str:
    """A figure or table name as a file name: a model label such as ``quick/blog_cnn`` names no folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _try(page: _Page, what: str, action: Callable[[], None]) -> None:
    """Run one section; a ValueError (the grid cannot support it) becomes a visible note, and the
    analysis functions' own warnings (a model or class left out, and why) become remarks."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's NaN arithmetic: the NaN already says it
            action()
        for w in caught:
            if issubclass(w.category, UserWarning):
                page.remark(f"{what}: {w.message}")
    except ValueError as error:
        page.note(f"{what}: {error}")


def write_report(results_path, *, to: str | os.PathLike | None = None, n_boot: int = 1000,
                 progress: Callable[[str], None] | None = print) -> Path:
    """Write the report of a results folder, or of several side by side, and return its ``index.html``.

    Parameters
    ----------
    results_path : str or os.PathLike, or a list or tuple of them
        The sweep's OUT folder (local path or pyarrow filesystem URI), or several, combined as
        :func:`analysis.load_results` combines them (they must share their classes).
    to : str or os.PathLike, optional, keyword-only
        Output folder (created); default ``OUT/report`` (required when OUT is not a local path, and
        with several folders).
    n_boot : int, keyword-only
        Bootstrap resamples for every interval and test.
    progress : callable or None, keyword-only
        Receives one progress line per step; None for silence.

    Besides ``index.html``, the folder gets ``findings.json`` (the findings of
    :func:`analysis.findings.findings`, one object per finding with its columns) and
    ``findings.csv``.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        Bad results (see :func:`load_results`), folders that cannot be combined, one folder holding
        several experiments, no model with a baseline cell, several folders without ``to``, or
        ``n_boot`` not an integer >= 100. Nothing is written in that case.
    """
    check_options(confidence=0.95, n_boot=n_boot)  # before any work, so a bad value is one clear error
    say = progress or (lambda text: None)
    paths = results_paths(results_path)
    results_path = paths[0]
    if to is None and len(paths) > 1:
        raise ValueError(f"{len(paths)} results folders make one report, which has no OUT/report to go in: pass "
                         "to=DIR (--to DIR)")
    if to is None:
        if "://" in os.fspath(results_path):
            raise ValueError(f"results at {os.fspath(results_path)} are not local; pass to=DIR for the report")
        to = Path(results_path) / "report"
    around = None if "://" in os.fspath(to) else results_folder_around(os.fspath(to))
    if around is not None:
        raise ValueError(f"the report folder {os.fspath(to)} is inside the {around[1]}/ folder of the results folder "
                         f"{around[0]}; its files would break that folder's readers: write the report elsewhere")
    if Path(to).exists() and not Path(to).is_dir():
        raise ValueError(f"the report folder {os.fspath(to)} exists and is not a folder; pass a folder (created if "
                         "missing)")
    say(f"report: loading {', '.join(os.fspath(p) for p in paths)}")
    with warnings.catch_warnings(record=True) as load_warnings:
        warnings.simplefilter("always", UserWarning)
        df, folders = load_several(paths)
    grid = to_grid(df)
    baselines = {}
    for m, model in enumerate(grid.models):
        try:
            baselines[model] = grid.baseline(m)
        except ValueError as error:
            baselines[model] = error
    if all(isinstance(b, ValueError) for b in baselines.values()):
        raise ValueError(str(next(iter(baselines.values()))))
    out = Path(to)
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out, say)
    page.step(f"{len(df):,} confusion rows, {int(grid.present.sum()):,} trials loaded")
    _overview(page, grid, baselines, folders)
    for w in load_warnings:  # what the loader left out or could not check
        if issubclass(w.category, UserWarning):
            page.remark(f"loading: {w.message}")
    page.contents()
    _findings(page, df, n_boot)
    _accuracy(page, df)
    _rankings(page, df, grid, n_boot)
    _matrices(page, df, grid, baselines)
    _curves(page, df, grid, n_boot)
    _directions_and_tradeoffs(page, df, grid, n_boot)
    labelled = len({source[0] for source in grid.sources}) > 1  # models read "<experiment>/<model>"
    for k, (path, _) in enumerate(folders):
        _misclassified(page, path, labelled=labelled, tag=f"_{k + 1}" if len(folders) > 1 else "")
    for k, (path, _) in enumerate(folders):
        learning_section(page, path, _try, tag=f"_{k + 1}" if len(folders) > 1 else "")
    index = out / "index.html"
    index.write_text(page.html(f"Class fragility report: {grid.experiment}"), encoding="utf-8")
    page.step(f"wrote {index}")
    return index


def _overview(page: _Page, grid, baselines, folders) -> None:
    page.h(1, f"Class fragility: {grid.experiment}")
    seeds = grid.present.any(axis=(1, 2)).sum(axis=-1)
    if len(folders) > 1:
        source = {s[0]: s for s in grid.sources}
        parts = []
        for path, experiments in folders:
            said = [f"experiment {e} (dataset {source[e][1]}, noise mode {source[e][2]}, models "
                    f"{', '.join(m for m, s in zip(grid.models, grid.sources) if s[0] == e)})" for e in experiments]
            parts.append(f"{path}: {', '.join(said)}")
        page.p(f"{len(folders)} results folders in one report: {'; '.join(parts)}. They share their "
               f"{len(grid.classes)} classes; " + ("each model is labelled experiment/model; models are "
                                                   "compared only on the same dataset, noise mode and levels."
                                                   if len(source) > 1 else "they hold parts of one experiment."))
    page.p(f"Dataset {grid.dataset}, noise mode {grid.noise_mode}, {len(grid.classes)} classes, models "
           f"{', '.join(grid.models)}; noise fractions {', '.join(f'{v:g}' for v in grid.noise)}; train fractions "
           f"{', '.join(f'{v:g}' for v in grid.fracs[::-1])}; {int(grid.present.sum())} trials over up to "
           f"{int(seeds.max())} seeds per model. Intervals are 95 %; comparisons are paired by seed.")
    budgets = "; ".join(f"{os.fspath(path)}: {training_budget(path)}" if len(folders) > 1 else training_budget(path)
                        for path, _ in folders)
    page.p(f"Training budget: {budgets}. With a budget in epochs a smaller training set also gets fewer optimizer "
           "steps, so the size axis mixes less data with less training; a budget in steps ([training] steps) "
           "trains every size equally long.")
    for model, base in baselines.items():
        if isinstance(base, ValueError):
            page.note(f"model {model}: {base}")


def _accuracy(page: _Page, df) -> None:
    """Overall accuracy per cell, first: did the models learn, and what does each cell cost overall."""
    page.step("accuracy")
    page.h(2, "Accuracy per cell")

    def section():
        table = accuracy_table(df)
        page.p("Share of all test images predicted as their true class, mean over seeds; the 95 % interval covers "
               "the seed-to-seed spread and the finite test set (docs/analysis.md, 'One variance model').")
        page.table(table, "accuracy", "Test accuracy per cell.", rows=len(table))

    _try(page, "accuracy", section)


def _matrices(page: _Page, df, grid, baselines) -> None:
    page.step("confusion matrices")
    page.h(2, "Confusion matrices")
    mean = mean_confusion(df)
    rel = None
    try:
        rel = relative_confusion(df)
    except ValueError as error:
        page.note(f"change against baseline: {error}")
    K = len(grid.classes)
    for m, model in enumerate(grid.models):
        if isinstance(baselines[model], ValueError):
            continue
        i0, j0 = baselines[model]
        cells = grid.present[m].any(axis=-1)
        chosen = [("baseline", i0, j0)]
        noisy = np.flatnonzero(cells[:, j0])
        if noisy.max() != i0:
            chosen.append(("highest noise", noisy.max(), j0))
        small = np.flatnonzero(cells[i0])
        if small.min() != j0:
            chosen.append(("smallest training set", i0, small.min()))
        for label, i, j in chosen:
            part = mean[(mean["model"] == model) & np.isclose(mean["noise_fraction"], grid.noise[i])
                        & np.isclose(mean["train_fraction"], grid.fracs[j])]
            n = int(part["n_seeds"].iloc[0])
            size = int(part["train_size"].iloc[0])
            fig = figures.heatmap(part["count"].to_numpy().reshape(K, K), grid.classes,
                                  f"{model}, {label}: noise {grid.noise[i]:g}, {size:,} training examples "
                                  f"(fraction {grid.fracs[j]:g}); mean test counts over {n} seeds")
            page.figure(fig, f"confusion_{model}_{label.replace(' ', '_')}",
                        f"Mean confusion counts, {model}, {label}; true class across, predicted class down.")
            if rel is not None and label != "baseline":
                part = rel[(rel["model"] == model) & np.isclose(rel["noise_fraction"], grid.noise[i])
                           & np.isclose(rel["train_fraction"], grid.fracs[j])]
                fig = figures.heatmap(100 * part["difference"].to_numpy().reshape(K, K), grid.classes,
                                      f"{model}, {label} minus baseline: change in rate, percentage points "
                                      f"(paired over {int(part['n_seeds'].min())} seeds)",
                                      diverging=True, unit="percentage points of the true class", fmt="{:+.1f}")
                page.figure(fig, f"change_{model}_{label.replace(' ', '_')}",
                            f"Change against baseline, {model}, {label}: red = fewer, blue = more than baseline.")
    page.table(mean, "mean_confusion", "Mean confusion per cell (counts and rates, seed standard errors).", rows=0)
    if rel is not None:
        page.table(rel, "relative_confusion", "Change against baseline per cell, paired by seed.", rows=0)


BADGE = {"settled": "settled", "open": "not settled", "missing": "not answered"}
KIND_TITLE = {
    "replication": "Is the class ranking reproducible at these seeds?", "baseline_recall": "Baseline recall", "noise_sensitivity": "Sensitivity to label noise",
    "size_sensitivity": "Sensitivity to less training data", "noise_bend": "Where recall bends against label noise",
    "size_bend": "Where recall bends against less training data", "confusion": "Directed confusions",
    "noise_vs_reduction": "Corrupted labels against fewer examples",
    "exchange_rate": "Exchange rate of noise for clean data", "models": "Across models",
}


def _findings(page: _Page, df, n_boot: int) -> None:
    page.step("findings")
    page.h(2, "Findings")

    def section():
        table = findings(df, n_boot=n_boot)
        records = json.loads(table.to_json(orient="records"))  # NaN -> null
        (page.out / "findings.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        table.to_csv(page.out / "findings.csv", index=False)
        page.p(f"Generated from the statistics below. The first question is whether the class ranking replicates "
               "across halves of the seeds at all: where it does not, no class can be called more fragile than "
               "another from these results, whatever the sentences after it say of single classes. "
               f"Each sentence gives its interval and p-value (Holm within "
               f"the family it names); it is settled when p < 0.05 / {len(KINDS)}, the {len(KINDS)} kinds of "
               "finding sharing 0.05, so a grid with no effect settles nothing with probability at least 95 %. "
               "Otherwise it says how many seeds would settle it (80 % power at the observed seed-to-seed spread), "
               "or what the grid lacks. (findings.json, findings.csv)")
        def item(row) -> str:
            state = "missing" if row["missing"] else "settled" if row["settled"] else "open"
            return (f"<li class='{state}'><span class='verdict'>{BADGE[state]}</span>"
                    f"{html.escape(row['sentence'])}</li>")

        for kind in KINDS:
            part = table[table["kind"] == kind]
            if part.empty:
                continue
            heads, details = part[part["headline"]], part[~part["headline"]]
            more = ""
            if len(details):  # the per-class rows a summary sentence stands for, folded
                more = (f"<details><summary>each class ({len(details)} sentences)</summary><ul class='findings'>"
                        f"{''.join(item(r) for _, r in details.iterrows())}</ul></details>")
            page.raw(f"<h3>{html.escape(KIND_TITLE[kind])}</h3><ul class='findings'>"
                     f"{''.join(item(r) for _, r in heads.iterrows())}</ul>{more}")

    _try(page, "findings", section)


def _rankings(page: _Page, df, grid, n_boot: int) -> None:
    for factor, word in (("noise", "label noise"), ("size", "less training data")):
        page.step(f"ranking against {word}")
        page.h(2, f"Which classes are most sensitive to {word}")

        def ranking_section(factor=factor, word=word):
            ranking = sensitivity_ranking(df, factor=factor, n_boot=n_boot)
            page.p("Sensitivity = mean recall lost from baseline over the tested range (area under the drop "
                   "curve divided by its width), per seed, then averaged; CI = t-interval over seeds; rank CI = "
                   f"expanded percentile bootstrap over seeds (from {MIN_BOOT_SEEDS} seeds); rank_tau_halves = "
                   "Kendall tau between rankings from two halves of the seeds.")
            for model in ranking["model"].unique():
                part = ranking[ranking["model"] == model]
                fig = figures.forest_figure(part, label="class_name", value="sensitivity", low="ci_low",
                                            high="ci_high", xlabel="mean recall lost over the range (recall units)",
                                            title=f"{model}: sensitivity to {word}, most sensitive on top "
                                                  f"({int(part['n_seeds'].iloc[0])} seeds, 95 % t-interval)")
                page.figure(fig, f"ranking_{factor}_{model}", f"Sensitivity ranking, {word}, {model}.")
            page.table(ranking, f"ranking_{factor}", f"Sensitivity ranking against {word}.")

        _try(page, f"ranking against {word}", ranking_section)
    if len(grid.models) > 1:
        page.h(2, "Does the ranking depend on the model?")
        for factor in ("noise", "size"):
            def comparison(factor=factor):
                table = model_comparison(df, factor=factor, n_boot=n_boot)
                page.table(table, f"model_comparison_{factor}", f"Kendall tau between models' {factor} sensitivities.")
                for note in table.loc[table["note"] != "ok", "note"]:  # pairs on other data: said, not computed
                    page.remark(f"model comparison ({factor}): {note}")

            _try(page, f"model comparison ({factor})", comparison)


def _curves(page: _Page, df, grid, n_boot: int) -> None:
    for factor, word in (("noise", "label noise"), ("size", "less training data")):
        page.step(f"curves and breakpoints against {word}")
        page.h(2, f"Per-class recall against {word}")
        state = {}

        def curves_section(factor=factor, word=word, state=state):
            state["curves"] = curves = class_curves(df, factor=factor)
            try:
                state["breaks"] = breakpoints(df, factor=factor, n_boot=n_boot)
            except ValueError as error:
                page.note(f"breakpoints against {word}: {error}")
            for model in curves["model"].unique():
                part = curves[curves["model"] == model]
                breaks = state.get("breaks")
                breaks = None if breaks is None else breaks[breaks["model"] == model]
                n = int(part["n_seeds"].max())  # a class without test examples counts 0 seeds
                fig = figures.class_curves_figure(part, breaks, factor,
                                                  f"{model}: recall against {word}, mean and 95 % CI over {n} seeds; "
                                                  "dashed = significant breakpoint (Holm p < 0.05) with its CI")
                page.figure(fig, f"curves_{factor}_{model}", f"Recall against {word}, {model}.")
            page.table(curves, f"curves_{factor}", f"Per-class recall against {word}.", rows=0)

        _try(page, f"curves against {word}", curves_section)
        if "breaks" in state:
            page.h(3, f"Breakpoints against {word}")
            page.table(state["breaks"], f"breakpoints_{factor}",
                       "Line vs one-breakpoint fit per class; p_value: lack-of-fit test of the line against the "
                       "bend, calibrated on simulated straight lines with the seeds' own scatter; p_holm: Holm over "
                       "the classes; p_signflip: the exact sign-flip test (never below 1/2^(seeds-1)); breakpoint "
                       f"CI by expanded percentile bootstrap over seeds (from {MIN_BOOT_SEEDS} seeds).")


def _directions_and_tradeoffs(page: _Page, df, grid, n_boot: int) -> None:
    page.step("directional confusions")
    page.h(2, "Directional confusions: A taken for B more than B for A")

    def directions():
        pairs = directional_confusions(df)
        page.table(pairs, "directional_baseline", "Ordered pairs at the baseline, strongest asymmetry first.",
                   rows=15)
        top = grid.noise.max()
        if top > 0:
            try:
                page.table(directional_confusions(df, noise_fraction=float(top)), "directional_highest_noise",
                           f"Ordered pairs at noise {top:g}, strongest first.", rows=15)
            except ValueError as error:
                page.note(f"pairs at noise {top:g}: {error}")
        trends = directional_trends(df, top=5)
        for model in trends["model"].unique():
            fig = figures.trends_figure(trends[trends["model"] == model],
                                        f"{model}: asymmetry of the 5 strongest baseline pairs against noise and "
                                        "size (mean and 95 % CI over seeds)")
            page.figure(fig, f"directional_trends_{model}", f"How the strongest directed confusions change, {model}.")
        page.table(trends, "directional_trends", "Strongest pairs across the grid.", rows=0)

    _try(page, "directional confusions", directions)
    page.step("noise against less data, exchange rate, class tables")
    page.h(2, "Misleading labels or less data?")

    def tradeoff():
        nvr = noise_vs_reduction(df)
        page.p("x % noisy labels against x % fewer clean examples (the same number of correct labels left); "
               "difference = drop to noise - drop to reduction, > 0 means the wrong labels hurt more.")
        for model in nvr["model"].unique():
            part = nvr[nvr["model"] == model]
            fig = figures.forest_figure(part, label="class_name", value="difference", low="ci_low", high="ci_high",
                                        hue="fraction", xlabel="recall lost to noise - recall lost to reduction",
                                        title=f"{model}: noise vs reduction by the same fraction "
                                              f"({int(part['n_seeds'].min())} seeds, paired 95 % CI)")
            page.figure(fig, f"noise_vs_reduction_{model}", f"Noise against less data, {model}.")
        page.table(nvr, "noise_vs_reduction", "Per class and fraction, sorted by difference.")

    _try(page, "noise against less data", tradeoff)
    page.h(2, "Exchange rate: how much clean data a noisy training set is worth")

    def exchange():
        rates = exchange_rate(df, n_boot=n_boot)
        page.table(rates, "exchange_rate", "Clean-equivalent train fraction of each noisy cell, rows inside the "
                   "grid (note = ok); exchange_rate = noisy examples per clean example.", rows=40,
                   shown=rates[rates["note"] == "ok"])

    _try(page, "exchange rate", exchange)
    page.h(2, "Classes by recall in each cell")

    def side_by_side():
        table = class_table(df)
        page.table(table, "class_table_long", "Long form.", rows=0)
        for model in table["model"].unique():
            part = table[table["model"] == model].copy()
            part["cell"] = [f"noise {x:g} / {s:,}" for x, s in zip(part["noise_fraction"], part["train_size"])]
            part["entry"] = [f"{c} {r:.3f}" for c, r in zip(part["class_name"].astype(str), part["recall"])]
            wide = part.pivot(index="position", columns="cell", values="entry")
            wide = wide[list(dict.fromkeys(part["cell"]))].reset_index()
            page.table(wide, f"class_table_{model}", f"{model}: classes sorted by recall (mean over seeds) in "
                       "the baseline, each noise level and each training-set size.", rows=len(wide))

    _try(page, "class tables", side_by_side)


def _misclassified(page: _Page, results_path, *, labelled: bool = False, tag: str = "") -> None:
    """The images behind the strongest confusions of each model's baseline, from OUT/probs. With several
    folders: one subsection per folder, its files named with ``tag`` (``_1``, ``_2``: the folder's
    place on the command line), its models ``labelled`` ``<experiment>/<model>`` as in the table."""
    several = bool(tag)
    from .images import ImagesUnavailable, read_test_images
    from .misclassified import NoProbsError, load_probs, misclassified_examples

    page.folder_section("Misclassified test images", "misclassified test images", results_path, several=several)
    try:
        probs = load_probs(results_path)
        if labelled:
            probs["model"] = probs["experiment"].astype(str) + "/" + probs["model"].astype(str)
    except NoProbsError:
        page.remark("misclassified images: this results folder has no per-example probabilities (OUT/probs); "
                  "`sweep run SPEC --out OUT --keep-probs` keeps them for the trials it runs (or set "
                  "keep_probs = true in the spec)")
        return
    except ValueError as error:
        page.note(f"misclassified images: {error}")
        return

    def section():
        table = misclassified_examples(probs)
        trials = probs.drop_duplicates("trial_id")
        page.p(f"Per-example probabilities are kept for {len(trials)} trial(s). For each model's baseline, the three "
               "most frequent confusions A → B and the test images of A with the highest probability of B (mean "
               "over seeds) that some seed took for B; 'seeds' says in how many seeds the mistake happens: an image "
               "confused in every seed is a grey area of the dataset, not bad luck of one run.")
        if table.empty:
            page.remark("misclassified images: the baseline cells have no misclassified test image")
            return
        page.table(table, f"misclassified{tag}", "Most confidently misclassified test images (example = index in the "
                   "test split).", rows=40)
        dataset = str(probs["dataset"].iloc[0])
        try:
            images = read_test_images(dataset, table["example"].to_numpy(), true_classes=table["true_class"].astype(str))
        except (ImagesUnavailable, OSError) as error:
            page.remark(f"the images are not shown: {' '.join(str(error).split())}")
            return
        for model in table["model"].unique():
            rows = np.flatnonzero((table["model"] == model).to_numpy())
            part = table.iloc[rows]
            fig = figures.misclassified_figure(part, images[rows], f"{model}: noise {part['noise_fraction'].iloc[0]:g}, "
                                               f"train fraction {part['train_fraction'].iloc[0]:g}")
            page.figure(fig, f"misclassified{tag}_{model}", f"Misclassified test images of {dataset}, {model}: one row per "
                        "confusion A → B; #example, p = mean probability of B over seeds, seeds that took it for B.")

    _try(page, "misclassified images", section)
