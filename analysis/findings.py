"""The answer in words: findings generated from the statistics, each with its interval and verdict.

Every finding is one sentence built from one test: its estimate and interval are those of the
quantity tested, and its p-value is Holm-adjusted over the family the sentence names (the K classes,
the K(K-1)/2 class pairs, the two ends of a ranking). The ten kinds of question (``KINDS``) share
alpha: a finding is *settled* when its p is below ``alpha / len(KINDS)`` (0.005 at alpha 0.05), so on a grid
with no effect at all the chance that any sentence claims one is at most alpha (Holm within a
family, Bonferroni across the kinds). An unsettled finding says how many seeds would settle it, from
the observed seed-to-seed spread:

    seeds_needed = ceil(((z(1 - a/2) + z(0.8)) * sd / |mean|)^2),   a = alpha / 10 / family size,

the seeds a two-sided paired z-test at the Bonferroni level needs for 80 % power when the true
per-seed effect has the observed mean and sd (docs/analysis.md). Where the grid cannot answer a
question (too few levels, seeds or sizes, one model), the finding says what is missing instead.
The first kind, ``replication``, is the verdict of :mod:`analysis.replication`: whether the class
ranking replicates across halves of the seeds at all; when it does not, the report says so plainly
before any class is named.

A sensitivity kind asks two questions, Bonferroni between them: does each class lose recall at all,
and are the ranking's ends apart from their neighbours; so a loss and a rank are said separately.
Per-class families (each class's loss, noise against reduction, the exchange rate) are summed up in
one *headline* sentence; the per-class rows stay in the table with ``headline`` False. A directed
confusion is said once per unordered pair, in its stronger direction; a negative loss as a gain.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .confusion import directional_confusions
from .curves import breakpoints
from .grid import check_frame, check_options, holm, seed_mean, to_grid
from .replication import reproducibility, verdict_sentence
from .ranking import model_comparison, per_seed_sensitivity, recall_along, sensitivity_ranking
from .tradeoffs import exchange_rate, noise_vs_reduction

KINDS = ("replication", "baseline_recall", "noise_sensitivity", "size_sensitivity", "noise_bend", "size_bend", "confusion",
         "noise_vs_reduction", "exchange_rate", "models")
WORD = {"noise": "label noise", "size": "less training data"}
UNIT = {"noise": "noise", "size": "train fraction"}
POWER = 0.8
MAX_SEEDS_SAID = 1000  # beyond this a sentence says "more than 1,000": the observed effect is about nil
COLUMNS = ["model", "kind", "subject", "sentence", "estimate", "ci_low", "ci_high", "p_value", "family_size",
           "settled", "n_seeds", "seeds_needed", "missing", "headline"]
SENSITIVITY_QUESTIONS = 2  # a sensitivity kind asks two things: which classes lose at all, and the ranking's ends


def seeds_needed(mean, sd, *, level: float, power: float = POWER) -> np.ndarray:
    """Seeds a paired z-test at ``level`` needs for ``power`` against a per-seed effect (mean, sd)."""
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.ceil((z * np.asarray(sd, float) / np.abs(np.asarray(mean, float))) ** 2)
    return np.where(np.isfinite(n), np.maximum(n, 2), np.nan)


def _f(value: float, digits: int = 2) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(p: float) -> str:
    return "not testable" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.3f}")


def _level(value: float) -> str:
    """An axis value as a reader writes it: 0.399703 -> 0.4, 0.15 -> 0.15."""
    return f"{value:.2g}" if 0 < abs(value) < 1 else f"{value:g}"


CHANGE_WORDS = {"loses": "gains", "losing": "gaining", "lost": "gained"}


def _change(value: float, verb: str = "loses", digits: int = 3) -> str:
    """A recall change in words: "loses 0.035 recall", and a negative loss as "gains 0.012 recall"."""
    if np.isfinite(value) and round(float(value), digits) < 0:
        return f"{CHANGE_WORDS[verb]} {_f(-value, digits)} recall"
    return f"{verb} {_f(abs(value) if np.isfinite(value) else value, digits)} recall"


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _ci(low: float, high: float, confidence: float, digits: int = 2) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"no {confidence:.0%} interval"
    return f"{confidence:.0%} CI {_f(low, digits)} to {_f(high, digits)}"


class _Rows:
    """Collects findings; ``add`` writes the verdict at the end of the sentence."""

    def __init__(self, alpha: float):
        self.alpha, self.level, self.rows = alpha, alpha / len(KINDS), []

    def add(self, model, kind, subject, text, *, estimate=np.nan, ci=(np.nan, np.nan), p=np.nan, family=1,
            n_seeds=0, mean=np.nan, sd=np.nan, settled=None, missing="", headline=True, claim="", need_said=True):
        """One finding. ``headline``: printed and listed first (False for the per-class rows a summary
        sentence stands for); ``claim`` names what the verdict is about ("the rank is ")."""
        if settled is None:
            settled = bool(np.isfinite(p) and p < self.level)
        need = np.nan
        if missing:
            verdict = f"not answered: {missing}"
        elif settled:
            verdict = f"{claim}settled at {n_seeds} seeds"
        else:
            need = float(seeds_needed(mean, sd, level=self.level / max(family, 1))) if need_said else np.nan
            need = max(need, n_seeds + 1) if np.isfinite(need) else np.nan
            verdict = f"{claim}not settled at {n_seeds} seeds"
            if np.isfinite(p) and p < self.alpha:
                verdict += f" (settling needs p < {self.level:.4f}: {self.alpha:g} shared by {len(KINDS)} kinds of finding)"
            if np.isfinite(need):
                verdict += (f"; about {int(need)} would settle it" if need <= MAX_SEEDS_SAID else
                            f"; more than {MAX_SEEDS_SAID:,} would be needed (the effect may be nil)")
        self.rows.append({"model": model, "kind": kind, "subject": subject, "sentence": f"{text}: {verdict}.",
                          "estimate": estimate, "ci_low": ci[0], "ci_high": ci[1], "p_value": p,
                          "family_size": family, "settled": bool(settled and not missing), "n_seeds": n_seeds,
                          "seeds_needed": need, "missing": missing, "headline": bool(headline)})


def _answer(rows: _Rows, model: str, kind: str, subject: str, action) -> None:
    """Run one question; a ValueError (the grid cannot answer) becomes a finding saying what is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            action()
    except ValueError as error:
        rows.add(model, kind, subject, f"{subject}", missing=" ".join(str(error).split()))


def _replication(rows: _Rows, df, grid, m: int) -> None:
    """One finding per factor: does the ranking replicate across seed halves (at the verdict's level)?"""
    model = grid.models[m]
    table = reproducibility(df, confidence=1 - rows.level)
    part = table[table["model"] == model]
    if part.empty:
        raise ValueError("the grid has no factor with 2 levels to rank the classes by")
    label = f"{1 - rows.level:.1%} CI"
    for _, r in part.iterrows():
        # The sentence carries its own seed estimate (for an agreement of 0.8): no second one here.
        rows.add(model, "replication", f"{r['factor']} ranking", verdict_sentence(r, label=label),
                 estimate=float(r["agreement"]), ci=(float(r["ci_low"]), float(r["ci_high"])),
                 p=float(r["p_value"]), family=1, n_seeds=int(r["n_seeds"]), settled=bool(r["reproducible"]),
                 claim="the ranking's reproducibility is ", need_said=False)


def _baseline(rows: _Rows, grid, m: int, confidence: float) -> None:
    model = grid.models[m]
    i0, j0 = grid.baseline(m)
    recall = np.diagonal(grid.rates()[m, i0, j0], axis1=-2, axis2=-1)  # (S, K)
    recall = recall[~np.isnan(recall).any(axis=1)]
    keep = np.flatnonzero(np.isfinite(recall).all(axis=0))
    S = recall.shape[0]
    means = recall[:, keep].mean(axis=0)
    order = keep[np.argsort(means, kind="stable")]
    ends = [("lowest", order[0], order[1], -1), ("highest", order[-1], order[-2], 1)]
    gaps = [sign * (recall[:, a] - recall[:, b]) for _, a, b, sign in ends]
    summary = [seed_mean(g, confidence=confidence) for g in gaps]
    p = holm(np.array([float(s["p"]) for s in summary]))
    for (word, a, b, sign), g, s, p_adj in zip(ends, gaps, summary, p):
        r = seed_mean(recall[:, a], confidence=confidence)
        side = "below" if sign < 0 else "above"
        text = (f"{model}: {grid.classes[a]} has the {word} baseline recall, {_f(r['mean'], 3)} "
                f"({_ci(r['ci_low'], r['ci_high'], confidence, 3)}), {side} the next, {grid.classes[b]} "
                f"({_f(recall[:, b].mean(), 3)}), by {_f(s['mean'], 3)} ({_ci(s['ci_low'], s['ci_high'], confidence, 3)}; "
                f"Holm p {_p(p_adj)} over both ends)")
        rows.add(model, "baseline_recall", f"{word}: {grid.classes[a]}", text, estimate=float(s["mean"]),
                 ci=(float(s["ci_low"]), float(s["ci_high"])), p=float(p_adj), family=2, n_seeds=S,
                 mean=float(s["mean"]), sd=float(np.std(g, ddof=1)) if S > 1 else np.nan)


def _sensitivity(rows: _Rows, grid, df, m: int, factor: str, n_boot: int, confidence: float, seed: int) -> None:
    """Two questions, Bonferroni between them (``SENSITIVITY_QUESTIONS``): which classes lose recall at
    all (each class against 0, Holm over the classes: per-class rows and one summary sentence), and
    the ranking's two ends (each end against its neighbour, Holm over both ends)."""
    model, word, unit, q = grid.models[m], WORD[factor], UNIT[factor], SENSITIVITY_QUESTIONS
    kind = f"{factor}_sensitivity"
    x, recall, base, _ = recall_along(grid, m, factor)
    per_seed = per_seed_sensitivity(x, recall, base)  # (S, K)
    ranking = sensitivity_ranking(df, factor=factor, n_boot=n_boot, confidence=confidence, random_state=seed)
    ranking = ranking[ranking["model"] == model].reset_index(drop=True)
    index = {c: k for k, c in enumerate(grid.classes)}
    order = [index[str(c)] for c in ranking["class_name"]]  # most sensitive first
    S, K = per_seed.shape[0], len(order)
    span = f"{_level(x.min())} to {_level(x.max())}"
    loss = seed_mean(per_seed, confidence=confidence)
    p_loss = np.minimum(1.0, holm(np.asarray(loss["p"], float)) * q)
    sd = np.nanstd(per_seed, axis=0, ddof=1) if S > 1 else np.full(per_seed.shape[1], np.nan)
    over = f"Holm over {K} classes, Bonferroni over {q} questions"

    def loss_text(k: int) -> str:
        return (f"{grid.classes[k]} {_change(loss['mean'][k])} with {word} on average over {unit} {span} "
                f"({_ci(loss['ci_low'][k], loss['ci_high'][k], confidence, 3)}; p {_p(p_loss[k])}, {over})")

    settled = [k for k in order if p_loss[k] < rows.level]
    clearest = min(order, key=lambda k: (p_loss[k], -abs(loss["mean"][k])))
    if settled:
        def short(ks: list[int]) -> str:  # each class's change, signs dropped, with its interval
            return ", ".join(f"{grid.classes[k]} ({_f(abs(loss['mean'][k]), 3)}, "
                             f"{_ci(*sorted((abs(loss['ci_low'][k]), abs(loss['ci_high'][k]))), confidence, 3)})"
                             for k in ks)

        losers = [k for k in settled if loss["mean"][k] > 0]
        gainers = [k for k in settled if loss["mean"][k] < 0]
        said = ([f"{short(losers)} {'loses' if len(losers) == 1 else 'lose'} recall"] if losers else []) + \
               ([f"{short(gainers)} {'gains' if len(gainers) == 1 else 'gain'} recall"] if gainers else [])
        rest = K - len(settled)
        text = (f"{model}: with {word}, {' and '.join(said)} on average over {unit} {span} (p "
                f"{_p(max(p_loss[k] for k in settled)).replace('= ', '<= ')}, {over})"
                + (f"; for the other {rest} of the {K} classes no change is settled" if rest else ""))
        worst = max(settled, key=lambda k: p_loss[k])
        rows.add(model, kind, "losses", text, estimate=float(loss["mean"][clearest]),
                 ci=(float(loss["ci_low"][clearest]), float(loss["ci_high"][clearest])), p=float(p_loss[worst]),
                 family=K * q, n_seeds=S)
    else:
        text = f"{model}: no class's change of recall with {word} is settled; the clearest: {loss_text(clearest)}"
        rows.add(model, kind, "losses", text, estimate=float(loss["mean"][clearest]),
                 ci=(float(loss["ci_low"][clearest]), float(loss["ci_high"][clearest])), p=float(p_loss[clearest]),
                 family=K * q, n_seeds=S, mean=float(loss["mean"][clearest]), sd=float(sd[clearest]))

    ends = [("most", 0, 1), ("least", K - 1, K - 2)]
    gaps = [per_seed[:, order[a]] - per_seed[:, order[b]] for _, a, b in ends]
    summary = [seed_mean(g, confidence=confidence) for g in gaps]
    p = np.minimum(1.0, holm(np.array([float(s["p"]) for s in summary])) * q)
    for (word_end, a, b), g, s, p_adj in zip(ends, gaps, summary, p):
        row, k = ranking.iloc[a], order[a]
        rank_ci = (f"rank {int(row['rank'])}, rank {confidence:.0%} CI {int(row['rank_ci_low'])} to "
                   f"{int(row['rank_ci_high'])}" if np.isfinite(row["rank_ci_low"])
                   else f"rank {int(row['rank'])}; a rank interval needs 5 seeds")
        other = grid.classes[order[b]]
        text = (f"{model}: {row['class_name']} is the {word_end} sensitive to {word}, "
                f"{_change(row['sensitivity'], 'losing')} on average over {unit} {span} "
                f"({_ci(row['ci_low'], row['ci_high'], confidence, 3)}); {rank_ci}; it differs from the "
                f"{'next' if word_end == 'most' else 'one above'}, {other}, by {_f(abs(s['mean']), 3)} "
                f"(p {_p(p_adj)}, Holm over both ends, Bonferroni over {q} questions)")
        rows.add(model, kind, f"{word_end}: {row['class_name']}", text,
                 estimate=float(s["mean"]), ci=(float(s["ci_low"]), float(s["ci_high"])), p=float(p_adj),
                 family=2 * q, n_seeds=S, mean=float(s["mean"]), sd=float(np.std(g, ddof=1)) if S > 1 else np.nan,
                 claim="its rank is ")
    for k in order:
        rows.add(model, kind, f"loss: {grid.classes[k]}", f"{model}: {loss_text(k)}", estimate=float(loss["mean"][k]),
                 ci=(float(loss["ci_low"][k]), float(loss["ci_high"][k])), p=float(p_loss[k]), family=K * q,
                 n_seeds=S, mean=float(loss["mean"][k]), sd=float(sd[k]), headline=False)


def _bends(rows: _Rows, fits: pd.DataFrame, model: str, factor: str, confidence: float) -> None:
    fits = fits[fits["model"] == model]
    K, S = len(fits), int(fits["n_seeds"].iloc[0])
    kind, unit = f"{factor}_bend", UNIT[factor]
    bent = fits[fits["p_holm"] < rows.level]
    for _, b in bent.iterrows():
        shape = "; a power law fits best" if b["best_fit"] == "power" else ""
        text = (f"{model}: {b['class_name']}'s recall bends against {WORD[factor]} at {unit} {b['breakpoint']:.2f} "
                f"({_ci(b['ci_low'], b['ci_high'], confidence)}): slope {b['slope_before']:+.2f} before, "
                f"{b['slope_after']:+.2f} after, per unit of {unit}{shape} (Holm p {_p(b['p_holm'])} over {K} classes)")
        rows.add(model, kind, str(b["class_name"]), text, estimate=float(b["breakpoint"]),
                 ci=(float(b["ci_low"]), float(b["ci_high"])), p=float(b["p_holm"]), family=K, n_seeds=S)
    rest = fits[~(fits["p_holm"] < rows.level)]
    if len(rest):
        top = rest.iloc[0]  # sorted by p_value
        others = "no other class's" if len(bent) else "no class's"
        text = (f"{model}: {others} recall bends detectably against {WORD[factor]}; the strongest candidate, "
                f"{top['class_name']} at {unit} {top['breakpoint']:.2f}, has Holm p {_p(top['p_holm'])} over {K} "
                "classes")
        rows.add(model, kind, f"no bend (candidate {top['class_name']})", text, estimate=float(top["breakpoint"]),
                 ci=(float(top["ci_low"]), float(top["ci_high"])), p=float(top["p_holm"]), family=K, n_seeds=S,
                 mean=float(top["bend_effect"]), sd=float(top["bend_effect_sd"]), settled=False)


def _confusions(rows: _Rows, df, grid, m: int, top: int, confidence: float) -> None:
    model = grid.models[m]
    K = len(grid.classes)
    family = K * (K - 1) // 2
    base = directional_confusions(df, confidence=confidence)
    base = base[base["model"] == model]
    cells = [("at baseline", base)]
    noisy = grid.noise[grid.present[m].any(axis=(1, 2))].max()
    if noisy > 0:
        table = directional_confusions(df, noise_fraction=float(noisy), confidence=confidence)
        cells.append((f"at noise {noisy:g}", table[table["model"] == model]))
    for where, table in cells:
        pairs = family * len(cells)
        # Each unordered pair once, in its stronger direction: A -> B and B -> A are one test.
        ranked = table.sort_values("rate_ab", ascending=False, kind="stable")
        pair = ranked.apply(lambda r: frozenset((r["class_a"], r["class_b"])), axis=1)
        for n_said, (_, r) in enumerate(ranked[~pair.duplicated()].head(top).iterrows()):
            a, b = r["class_a"], r["class_b"]
            was = base[(base["class_a"] == a) & (base["class_b"] == b)]["rate_ab"]
            grew = f", {100 * was.iloc[0]:.1f} % at baseline" if where != "at baseline" and len(was) else ""
            p = min(1.0, float(r["p_holm"]) * len(cells))  # Holm over the pairs of a cell, Bonferroni over the cells
            reverse = (f"is weaker by {100 * r['asymmetry']:.1f} points" if round(100 * r["asymmetry"], 1) > 0
                       else "is as frequent")
            text = (f"{model} {where}: {a} is taken for {b} in {100 * r['rate_ab']:.1f} % of its test examples"
                    f"{grew}; the reverse ({b} taken for {a}, {100 * r['rate_ba']:.1f} %) {reverse} "
                    f"({_ci(100 * r['ci_low'], 100 * r['ci_high'], confidence, 1)}; "
                    f"p {_p(p)}, Holm over {family} pairs and Bonferroni over {len(cells)} cells)")
            n = int(r["n_seeds"])
            rows.add(model, "confusion", f"{where}: {a} -> {b}", text, estimate=float(r["asymmetry"]),
                     ci=(float(r["ci_low"]), float(r["ci_high"])), p=p, family=pairs, n_seeds=n,
                     mean=float(r["asymmetry"]), sd=float(r["se"] * np.sqrt(n)), headline=n_said == 0)


def _noise_vs_reduction(rows: _Rows, df, model: str, confidence: float) -> None:
    """One sentence per class (not headlines) and one summary: which classes stand out, if any."""
    table = noise_vs_reduction(df, confidence=confidence)
    table = table[table["model"] == model]
    x = table["fraction"].max()
    table = table[table["fraction"] == x].copy()
    table["p_holm"] = holm(table["p_value"].to_numpy(float))
    K = len(table)
    n = int(table["n_seeds"].max())

    def clause(r) -> str:
        more = "more" if r["difference"] > 0 else "less"
        return (f"{r['class_name']}: {_f(abs(r['difference']), 3)} {more} recall lost to noise than to reduction "
                f"(with noise it {_change(r['drop_noise'])}, with fewer examples it {_change(r['drop_reduction'])}; "
                f"{_ci(r['ci_low'], r['ci_high'], confidence, 3)}; Holm p {_p(r['p_holm'])} over {K} classes)")

    said = f"{x:.0%} corrupted labels against {x:.0%} fewer examples"
    settled = table[table["p_holm"] < rows.level]
    if len(settled):
        def short(part) -> str:  # the size of each difference, with its interval, signs dropped
            sign = np.sign(part["difference"].to_numpy())
            lows, highs = np.minimum(sign * part["ci_low"], sign * part["ci_high"]), np.maximum(
                sign * part["ci_low"], sign * part["ci_high"])
            return ", ".join(f"{c} ({_f(abs(d), 3)}, {_ci(lo, hi, confidence, 3)})" for c, d, lo, hi in
                             zip(part["class_name"], part["difference"], lows, highs))

        worse, better = settled[settled["difference"] > 0], settled[settled["difference"] < 0]
        parts = ([f"the wrong labels cost more recall than the lost examples for {short(worse)}"] if len(worse) else []) + \
                ([f"the lost examples cost more for {short(better)}"] if len(better) else [])
        text = (f"{model}, {said}: {'; '.join(parts)} (Holm p {_p(settled['p_holm'].max()).replace('= ', '<= ')} "
                f"over {K} classes)" + (f"; no other of the {K} classes differs measurably" if len(settled) < K else ""))
        top = settled.iloc[0]
        rows.add(model, "noise_vs_reduction", f"summary at {x:g}", text, estimate=float(top["difference"]),
                 ci=(float(top["ci_low"]), float(top["ci_high"])), p=float(settled["p_holm"].max()), family=K,
                 n_seeds=n)
    else:
        top = table.assign(size=-table["difference"].abs()).sort_values(["p_holm", "size"], kind="stable").iloc[0]
        text = f"{model}, {said}: none of the {K} classes differs measurably; the clearest, {clause(top)}"
        rows.add(model, "noise_vs_reduction", f"summary at {x:g}", text, estimate=float(top["difference"]),
                 ci=(float(top["ci_low"]), float(top["ci_high"])), p=float(top["p_holm"]), family=K, n_seeds=n,
                 mean=float(top["difference"]), sd=float(top["se"] * np.sqrt(top["n_seeds"])))
    for _, r in table.iterrows():
        more = "more" if r["difference"] > 0 else "less"
        n = int(r["n_seeds"])
        text = (f"{model}: for {r['class_name']}, {x:.0%} corrupted labels cost {_f(abs(r['difference']), 3)} {more} "
                f"recall than {x:.0%} fewer examples (with noise it {_change(r['drop_noise'])}, with fewer examples "
                f"it {_change(r['drop_reduction'])}; {_ci(r['ci_low'], r['ci_high'], confidence, 3)}; "
                f"Holm p {_p(r['p_holm'])} over {K} classes)")
        rows.add(model, "noise_vs_reduction", f"{r['class_name']} at {x:g}", text, estimate=float(r["difference"]),
                 ci=(float(r["ci_low"]), float(r["ci_high"])), p=float(r["p_holm"]), family=K, n_seeds=n,
                 mean=float(r["difference"]), sd=float(r["se"] * np.sqrt(n)), headline=False)


def _exchange(rows: _Rows, df, grid, m: int, n_boot: int, confidence: float, seed: int) -> None:
    """One sentence per class (not headlines) and one summary: which classes have a cost to price."""
    model = grid.models[m]
    rates = exchange_rate(df, n_boot=n_boot, confidence=confidence, random_state=seed)
    i0, j0 = grid.baseline(m)
    full = grid.fracs[j0]
    rates = rates[(rates["model"] == model) & np.isclose(rates["train_fraction"], full)]
    if rates.empty:
        raise ValueError(f"no cell with noise > 0 at the full train fraction {full:g}")
    x = rates["noise_fraction"].min()
    i = int(np.flatnonzero(np.isclose(grid.noise, x))[0])
    recall = np.diagonal(grid.rates()[m], axis1=-2, axis2=-1)  # (X, F, S, K)
    drop = recall[i0, j0] - recall[i, j0]  # (S, K), per seed
    d = seed_mean(drop, confidence=confidence)
    p = holm(np.asarray(d["p"], float))
    K = len(grid.classes)
    priced, unpriced, unsettled = [], [], []
    for _, r in rates[np.isclose(rates["noise_fraction"], x)].iterrows():
        k = grid.classes.index(str(r["class_name"]))
        n = int(d["n"][k])
        sd = float(np.nanstd(drop[:, k], ddof=1)) if n > 1 else np.nan
        lost = f"{_change(d['mean'][k])} at noise {x:g} (Holm p {_p(p[k])} over {K} classes)"
        missing = ""
        if not p[k] < rows.level:
            text = f"{model}: {r['class_name']} {lost}, no measurable cost to price in clean data"
            unsettled.append((p[k], -d["mean"][k], k, lost))
        elif r["note"] == "ok":
            worth = (f"costs as much as shrinking the clean training set to {r['clean_equivalent_fraction']:.2f} of "
                     f"full ({_ci(r['ci_low'], r['ci_high'], confidence)}): each noisy example is worth "
                     f"{1 / r['exchange_rate']:.2f} clean ones")
            text = f"{model}: {r['class_name']} {lost}; that {worth}"
            priced.append(f"{r['class_name']} {lost}, which {worth}")
        else:
            smallest = grid.fracs[grid.present[m, i0].any(axis=-1)].min()
            text = f"{model}: {r['class_name']} {lost}"
            missing = (f"its recall at noise {x:g} is below every clean training size in the grid (down to "
                       f"{smallest:g} of full); smaller clean sizes would price it")
            unpriced.append(f"{r['class_name']} {lost}, more than the grid's smallest clean size ({smallest:g}) costs")
        rows.add(model, "exchange_rate", f"{r['class_name']} at noise {x:g}", text,
                 estimate=float(r["clean_equivalent_fraction"]), ci=(float(r["ci_low"]), float(r["ci_high"])),
                 p=float(p[k]), family=K, n_seeds=n, mean=float(d["mean"][k]), sd=sd, missing=missing,
                 headline=False)
    n = int(np.max(d["n"]))
    if priced or unpriced:
        rest = len(unsettled)
        text = (f"{model}, noise {x:g} priced in clean data: {'; '.join(priced + unpriced)}"
                + (f"; the other {rest} of the {K} classes lose no measurable recall" if rest else ""))
        rows.add(model, "exchange_rate", f"summary at noise {x:g}", text, n_seeds=n,
                 p=float(np.nanmax([p[grid.classes.index(c)] for c in grid.classes
                                    if p[grid.classes.index(c)] < rows.level])), family=K)
    else:
        p_min, _, k, lost = min(unsettled)  # the smallest p; among equal ones, the largest loss
        sd = float(np.nanstd(drop[:, k], ddof=1)) if d["n"][k] > 1 else np.nan
        text = (f"{model}, noise {x:g} priced in clean data: none of the {K} classes loses measurable recall, "
                f"so there is no cost to price; the clearest, {grid.classes[k]}, {lost}")
        rows.add(model, "exchange_rate", f"summary at noise {x:g}", text, estimate=float(d["mean"][k]),
                 ci=(float(d["ci_low"][k]), float(d["ci_high"][k])), p=float(p_min), family=K, n_seeds=n,
                 mean=float(d["mean"][k]), sd=sd)


def _models(rows: _Rows, df, grid, n_boot: int, confidence: float, seed: int) -> None:
    if len(grid.models) < 2:
        rows.add("all", "models", "same fragile classes", "Whether the fragile classes are the same across models",
                 missing=f"only one model ({grid.models[0]}) was swept; a second would tell")
        return
    for factor in ("noise", "size"):
        def compare(factor=factor):
            table = model_comparison(df, factor=factor, n_boot=n_boot, confidence=confidence, random_state=seed)
            strict = model_comparison(df, factor=factor, n_boot=n_boot, confidence=1 - rows.level,
                                      random_state=seed)["ci_low"].to_numpy()
            for (_, r), strict_low in zip(table.iterrows(), strict):
                if r["note"] != "ok":  # models on other data or levels: said, not computed
                    rows.add("all", "models", f"{factor}: {r['model_a']} vs {r['model_b']}",
                             f"{r['model_a']} and {r['model_b']} against {WORD[factor]}",
                             missing=r["note"].removeprefix("not compared: "))
                    continue
                tops = (f"both rank {r['top_class_a']} most sensitive" if r["same_top"] else
                        f"{r['model_a']} ranks {r['top_class_a']} most sensitive, {r['model_b']} {r['top_class_b']}")
                low, high = r["ci_low"], r["ci_high"]
                settled = bool(np.isfinite(strict_low) and strict_low > 0)  # the 1 - alpha/9 interval clears 0
                missing = "" if np.isfinite(low) else "the tau interval needs 5 seeds"
                text = (f"{r['model_a']} and {r['model_b']} rank classes by sensitivity to {WORD[factor]} with "
                        f"Kendall tau {_f(r['kendall_tau'])} ({_ci(low, high, confidence)}); {tops}")
                if settled:
                    text += "; the rankings agree beyond chance"
                rows.add("all", "models", f"{factor}: {r['model_a']} vs {r['model_b']}", text,
                         estimate=float(r["kendall_tau"]), ci=(float(low), float(high)), n_seeds=int(r["n_seeds"]),
                         settled=settled, missing=missing)
        _answer(rows, "all", "models", f"Model comparison against {WORD[factor]}", compare)


def findings(df: pd.DataFrame, *, alpha: float = 0.05, top_confusions: int = 3, n_boot: int = 1000,
             confidence: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """The report's answers in sentences: which classes are fragile, to what, where, and how sure.

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one folder, or several).
    alpha : float, keyword-only
        Family-wise level at which a finding is settled, in (0, 1).
    top_confusions : int, keyword-only
        Strongest directed confusions reported at the baseline and at the highest noise (>= 1).
    n_boot, confidence, random_state : keyword-only
        Bootstrap resamples, interval level and seed of the analyses behind the findings.

    Returns
    -------
    pandas.DataFrame
        One row per finding: model ("all" for cross-model findings), kind (one of ``KINDS``),
        subject (short label), sentence (the finding in words, ending in its verdict), estimate,
        ci_low, ci_high (the tested quantity and its interval: a recall or sensitivity gap, a
        breakpoint, an asymmetry, a noise-minus-reduction difference, a clean-equivalent fraction
        or Kendall's tau), p_value (Holm-adjusted over family_size tests), family_size, settled
        (bool: p_value < alpha / 10, the ten kinds sharing alpha; for Kendall's tau, its
        1 - alpha / 10 bootstrap interval clear of 0; for replication, the split-half agreement's
        1 - alpha / 10 interval above 0), n_seeds, seeds_needed (seeds
        that would settle it, from the observed spread, see the module docstring; NaN when settled
        or not estimable), missing (what the grid lacks to answer; "" when answered), headline
        (bool: False for the per-class rows of a family that a summary sentence stands for, e.g.
        each class's noise-against-reduction difference; `sweep report` prints the headlines).
        Sorted by model (grid order, "all" last), kind in the order of ``KINDS``, headlines
        before the rows they summarize, then the order the findings were made (strongest first
        within a kind where there is an order).

    Raises
    ------
    ValueError
        Bad option values, or no model with a baseline cell.
    """
    check_options(confidence=confidence, n_boot=n_boot)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not isinstance(top_confusions, (int, np.integer)) or isinstance(top_confusions, bool) or top_confusions < 1:
        raise ValueError(f"top_confusions must be a positive integer, got {top_confusions!r}")
    grid = to_grid(check_frame(df))
    rows = _Rows(alpha)
    usable = []
    for m, model in enumerate(grid.models):
        try:
            grid.baseline(m)
            usable.append(m)
        except ValueError as error:
            rows.add(model, "baseline_recall", "baseline", f"{model}", missing=" ".join(str(error).split()))
    if not usable:
        raise ValueError(rows.rows[0]["missing"])
    fits = {}
    for factor in ("noise", "size"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits[factor] = breakpoints(df, factor=factor, n_boot=n_boot, confidence=confidence,
                                           random_state=random_state)
        except ValueError as error:
            fits[factor] = error
    for m in usable:
        model = grid.models[m]
        _answer(rows, model, "replication", f"{model}: reproducibility of the ranking",
                lambda: _replication(rows, df, grid, m))
        _answer(rows, model, "baseline_recall", f"{model}: baseline recall", lambda: _baseline(rows, grid, m, confidence))
        for factor in ("noise", "size"):
            _answer(rows, model, f"{factor}_sensitivity", f"{model}: sensitivity to {WORD[factor]}",
                    lambda: _sensitivity(rows, grid, df, m, factor, n_boot, confidence, random_state))
        for factor in ("noise", "size"):
            def bend(factor=factor):
                if isinstance(fits[factor], ValueError):
                    raise fits[factor]
                if not (fits[factor]["model"] == model).any():
                    raise ValueError(f"no breakpoint fit against {WORD[factor]} for this model")
                _bends(rows, fits[factor], model, factor, confidence)
            _answer(rows, model, f"{factor}_bend", f"{model}: where recall bends against {WORD[factor]}", bend)
        _answer(rows, model, "confusion", f"{model}: directed confusions",
                lambda: _confusions(rows, df, grid, m, top_confusions, confidence))
        _answer(rows, model, "noise_vs_reduction", f"{model}: corrupted labels against fewer examples",
                lambda: _noise_vs_reduction(rows, df, model, confidence))
        _answer(rows, model, "exchange_rate", f"{model}: the exchange rate of noise for clean data",
                lambda: _exchange(rows, df, grid, m, n_boot, confidence, random_state))
    _models(rows, df, grid, n_boot, confidence, random_state)
    frame = pd.DataFrame(rows.rows, columns=COLUMNS)
    frame["order"] = np.arange(len(frame))
    frame["model_order"] = frame["model"].map({m: i for i, m in enumerate(grid.models)}).fillna(len(grid.models))
    frame["kind_order"] = frame["kind"].map({k: i for i, k in enumerate(KINDS)})
    frame["detail"] = ~frame["headline"].astype(bool)
    frame = frame.sort_values(["model_order", "kind_order", "detail", "order"], kind="stable")
    return frame[COLUMNS].reset_index(drop=True)


__all__ = ["findings", "seeds_needed", "KINDS"]
