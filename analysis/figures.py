"""Matplotlib figures for the report (Agg backend; nothing is shown on screen).

Heatmaps follow the reference study's convention: true class on the horizontal axis at the bottom,
predicted class on the vertical axis at the left, numbers in the cells. Change matrices use a
diverging colormap centered at 0 so red (lost) and blue (gained) read the same in every figure.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

AXIS_LABEL = {
    "noise": "noise fraction (share of training labels corrupted)",
    "size": "train fraction (share of the full training split)",
}
ANNOTATE_MAX_K = 20  # above this many classes the cell numbers would be unreadable


def heatmap(matrix: np.ndarray, classes, title: str, *, diverging: bool = False, unit: str = "test examples",
            fmt: str = "{:.0f}") -> plt.Figure:
    """matrix[t, p] (true, pred) drawn with true on x (bottom) and pred on y (left)."""
    K = len(classes)
    size = max(5.0, 0.55 * K + 2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = matrix.T  # rows of the image = predicted class
    if diverging:
        limit = float(np.nanmax(np.abs(image))) or 1.0
        im = ax.imshow(image, cmap="RdBu", norm=TwoSlopeNorm(0.0, -limit, limit))
    else:
        im = ax.imshow(image, cmap="viridis")
    ax.set_xticks(range(K), classes, rotation=45, ha="right")
    ax.set_yticks(range(K), classes)
    ax.set_xlabel("true class")
    ax.set_ylabel("predicted class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=unit)
    if K <= ANNOTATE_MAX_K:
        finite = image[np.isfinite(image)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0
        for p in range(K):
            for t in range(K):
                value = image[p, t]
                if np.isfinite(value):
                    light = abs(value) > abs(middle) if diverging else value < middle
                    ax.text(t, p, fmt.format(value), ha="center", va="center", fontsize=7,
                            color=("white" if light else "black") if not diverging else
                            ("white" if abs(value) > 0.6 * np.nanmax(np.abs(image)) else "black"))
    fig.tight_layout()
    return fig


def class_curves_figure(curves: pd.DataFrame, breaks: pd.DataFrame | None, factor: str, title: str, *,
                        alpha: float = 0.05) -> plt.Figure:
    """Small multiples: one panel per class, seed mean with its CI band, breakpoints with Holm p < alpha marked."""
    x_col = "noise_fraction" if factor == "noise" else "train_fraction"
    names = list(curves["class_name"].astype(str).unique())
    cols = min(5, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows + 0.6), sharex=True, sharey=True,
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        part = curves[curves["class_name"].astype(str) == name]
        # Rates live in [0, 1]; a t-interval over few seeds can overshoot, which only misleads on a plot.
        ax.fill_between(part[x_col], part["ci_low"].clip(0, 1), part["ci_high"].clip(0, 1), alpha=0.25,
                        color="C0", linewidth=0)
        ax.plot(part[x_col], part["mean"], marker="o", markersize=3, color="C0")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        if breaks is not None:
            row = breaks[breaks["class_name"].astype(str) == name]
            if len(row) and np.isfinite(row["p_holm"].iloc[0]) and row["p_holm"].iloc[0] < alpha:
                bp = row["breakpoint"].iloc[0]
                ax.axvline(bp, color="C3", linestyle="--", linewidth=1)
                lo, hi = row["ci_low"].iloc[0], row["ci_high"].iloc[0]
                if np.isfinite(lo):
                    ax.axvspan(lo, hi, color="C3", alpha=0.1)
                ax.text(bp, 0.02, f" break {bp:.2f}", transform=ax.get_xaxis_transform(), color="C3", fontsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.supxlabel(AXIS_LABEL[factor], fontsize=9)
    fig.supylabel("recall (share of the class's test examples correct)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def forest_figure(frame: pd.DataFrame, *, label: str, value: str, low: str, high: str, title: str,
                  xlabel: str, hue: str | None = None) -> plt.Figure:
    """Point estimates with intervals, one row per label (top = first row of ``frame``)."""
    labels = list(dict.fromkeys(frame[label].astype(str)))
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(labels) + 1.6))
    groups = [(None, frame)] if hue is None else list(frame.groupby(hue, sort=True))
    offsets = np.linspace(-0.25, 0.25, len(groups)) if len(groups) > 1 else [0.0]
    for (key, part), offset, color in zip(groups, offsets, [f"C{i}" for i in range(10)] * 10):
        y = np.array([labels.index(v) for v in part[label].astype(str)]) + offset
        err = np.vstack([part[value] - part[low], part[high] - part[value]])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        ax.errorbar(part[value], y, xerr=err, fmt="o", color=color, markersize=4, capsize=2,
                    label=None if key is None else f"{hue} {key:g}" if isinstance(key, float) else f"{hue} {key}")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if hue is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def trends_figure(trends: pd.DataFrame, title: str) -> plt.Figure:
    """Asymmetry of the strongest directed pairs against noise (left) and train fraction (right)."""
    factors = [f for f in ("noise", "size") if (trends["factor"] == f).any()]
    fig, axes = plt.subplots(1, len(factors), figsize=(5.5 * len(factors), 3.8), squeeze=False)
    for ax, factor in zip(axes.flat, factors):
        part = trends[trends["factor"] == factor]
        x_col = "noise_fraction" if factor == "noise" else "train_fraction"
        for rank, pair in part.groupby("pair_rank", sort=True):
            name = f"{pair['class_a'].iloc[0]} -> {pair['class_b'].iloc[0]}"
            ax.plot(pair[x_col], pair["asymmetry"], marker="o", markersize=3, label=name)
            ax.fill_between(pair[x_col], pair["ci_low"], pair["ci_high"], alpha=0.15, linewidth=0)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(AXIS_LABEL[factor], fontsize=9)
        ax.set_ylabel("rate(A -> B) - rate(B -> A)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def misclassified_figure(table: pd.DataFrame, images: np.ndarray, title: str) -> plt.Figure:
    """Thumbnails of misclassified test images: one row per confusion A -> B, strongest first.

    ``images[i]`` (uint8, C x H x W) belongs to ``table.iloc[i]`` (from ``misclassified_examples``);
    each is labelled with its test index, its mean probability of B and the seeds that took it for B.
    """
    pairs = list(dict.fromkeys(zip(table["true_class"].astype(str), table["pred_class"].astype(str))))
    cols = int(table.groupby(["true_class", "pred_class"], observed=True).size().max())
    fig, axes = plt.subplots(len(pairs), cols, figsize=(max(4.5, 1.7 * cols + 1.4), 2.0 * len(pairs) + 0.6),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    position = {pair: 0 for pair in pairs}
    for (_, row), image in zip(table.iterrows(), images):
        pair = (str(row["true_class"]), str(row["pred_class"]))
        r, c = pairs.index(pair), position[pair]
        position[pair] += 1
        ax = axes[r, c]
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        ax.imshow(pixels, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"#{row['example']}  p {row['mean_prob']:.2f}\n{row['seeds_wrong']}/{row['n_seeds']} seeds",
                     fontsize=8)
        if c == 0:
            ax.text(-0.15, 0.5, f"{pair[0]} → {pair[1]}", transform=ax.transAxes, ha="right", va="center",
                    fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def memorisation_figure(curves: pd.DataFrame, title: str, *, chance: float | None = None) -> plt.Figure:
    """One panel per train fraction: the memorised share of corrupted labels against epoch, one line
    per noise level (seed mean, t-interval band), from :func:`analysis.learning.memorisation_curves`;
    ``chance`` (e.g. 1/K) is drawn dashed: what a guess would "memorise"."""
    fracs = sorted(curves["train_fraction"].unique(), reverse=True)
    fig, axes = plt.subplots(1, len(fracs), figsize=(4.2 * len(fracs) + 0.8, 3.6), squeeze=False, sharey=True)
    levels = sorted(curves["noise_fraction"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(2, len(levels))))
    for ax, frac in zip(axes[0], fracs):
        for color, level in zip(colors, levels):
            line = curves[(curves["train_fraction"] == frac) & (curves["noise_fraction"] == level)]
            if line.empty:
                continue
            ax.plot(line["epoch"], line["mean"], marker="o", ms=3, color=color, label=f"noise {level:g}")
            ax.fill_between(line["epoch"], line["ci_low"], line["ci_high"], color=color, alpha=0.2, lw=0)
        if chance is not None:
            ax.axhline(chance, color="grey", ls="--", lw=1, label="chance (1/K)")
        ax.set_title(f"train fraction {frac:.3g}", fontsize=9)
        ax.set_xlabel("epoch")
        top = np.nanmax([*curves["ci_high"].to_numpy(dtype=float), *curves["mean"].to_numpy(dtype=float),
                         chance or 0.0])
        ax.set_ylim(0, min(1.0, 1.1 * top) if np.isfinite(top) and top > 0 else 1.0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("corrupted labels memorised (share)")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
