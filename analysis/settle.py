"""Is the answer settled yet? Targets that say when a sweep has enough seeds, guarded against optional stopping.

`sweep run --until-settled TARGET --max-seeds N` adds seeds to the whole grid in rounds and, after each
round, asks :func:`settle_check` whether TARGET is met on the committed trials. Two targets
(``TARGETS``, name -> measure function):

``sensitivity:HALF_WIDTH``
    every class's sensitivity (mean recall lost over the tested range, as in ``sensitivity_ranking``)
    has an interval of half-width <= HALF_WIDTH;
``ranking:MARGIN``
    every adjacent pair of the sensitivity ranking is *separated* (the interval of the per-seed
    difference excludes 0) or *tied* (that interval lies inside +-MARGIN: an equivalence test).

Either takes an optional factor, ``sensitivity:0.02:noise``; without one, every factor the grid
varies. Stopping when a look at the data says "settled" would make each look another chance to be
wrong, so the intervals are Bonferroni-guarded over the whole family and every look the run can
make: each is a t-interval at two-sided level ``(1 - confidence) / (looks * family)``, where
``looks`` is :func:`max_looks` (bounded because every round grows the seeds by ``GROWTH`` at least).
Then the chance that any claim of any look is wrong, and so the chance that a run stops on a wrong
claim, is at most ``1 - confidence`` whatever the stopping rule does (docs/sequential.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from .findings import seeds_needed
from .grid import FACTORS, check_frame, check_options, to_grid
from .ranking import per_seed_sensitivity, recall_along

GROWTH = 1.5  # each round has at least 1.5x the seeds of the last, which bounds the looks (max_looks)
POWER = 0.8  # power assumed by the ranking's seeds-needed estimate, as in findings.seeds_needed
MAX_ITER = 60  # bisection steps of the t-based seed count


@dataclass(frozen=True)
class Group:
    """Per-seed sensitivities of one model along one factor: ``per_seed`` is (S, K) over ``classes``."""

    model: str
    factor: str
    classes: tuple[str, ...]
    per_seed: np.ndarray


@dataclass(frozen=True)
class Measured:
    """What a target's measure returns: the per-quantity frame, the family size, the worst figure."""

    frame: pd.DataFrame
    family: int  # intervals in the Bonferroni family of one look
    met: bool
    figure: float
    subject: str
    seeds_needed: float  # NaN when the spread is unknown (one seed)


@dataclass(frozen=True)
class TargetKind:
    measure: Callable[[list[Group], float, float], Measured]  # (groups, value, level) -> Measured
    family: Callable[[list[Group]], int]  # intervals in one look (every class, or every pair of classes)
    value_name: str
    what: str  # "every ..." in words, for help texts and verdicts


@dataclass(frozen=True)
class Target:
    """A parsed target: ``kind`` in TARGETS, its value, and the factor (None: every factor varied)."""

    kind: str
    value: float
    factor: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}" + (f":{self.factor}" if self.factor else "")


def _t_seeds(sd: np.ndarray, width: np.ndarray, level: float, z_extra: float = 0.0) -> np.ndarray:
    """Fewest seeds n >= 2 with (t(1 - level/2, n - 1) + z_extra) * sd / sqrt(n) <= width (NaN: unknown).

    The left side falls with n, so a bisection finds it: ``low`` from z (t > z, so no fewer will
    do) and ``high`` from t at ``low`` (t only shrinks as n grows past ``low``, so that many do).
    """
    sd, width = np.broadcast_arrays(np.asarray(sd, float), np.asarray(width, float))
    known = np.isfinite(sd) & np.isfinite(width) & (width > 0)
    sd, width = np.where(known, sd, 0.0), np.where(known, width, 1.0)

    def enough(n: np.ndarray) -> np.ndarray:
        q = stats.t.ppf(1 - level / 2, np.maximum(n - 1, 1)) + z_extra
        return q * sd / np.sqrt(n) <= width

    low = np.maximum(2, np.ceil(((stats.norm.ppf(1 - level / 2) + z_extra) * sd / width) ** 2))
    high = np.maximum(low, np.ceil(((stats.t.ppf(1 - level / 2, low - 1) + z_extra) * sd / width) ** 2))
    for _ in range(MAX_ITER):  # 60 halvings: far more than any count of seeds needs
        if np.array_equal(low, high):
            break
        mid = np.floor((low + high) / 2)
        ok = enough(mid)
        high, low = np.where(ok, mid, high), np.where(ok, low, mid + 1)
    return np.where(known, high, np.nan)


def _spread(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sd and t-interval half-width at two-sided ``level`` over axis 0 (S seeds; NaN below 2)."""
    S = values.shape[0]
    mean = values.mean(axis=0)
    if S < 2:
        return mean, np.full(mean.shape, np.nan), np.full(mean.shape, np.nan)
    sd = values.std(axis=0, ddof=1)
    return mean, sd, stats.t.ppf(1 - level / 2, S - 1) * sd / np.sqrt(S)


def _measure_sensitivity(groups: list[Group], half_width: float, level: float) -> Measured:
    rows = []
    for g in groups:
        mean, sd, hw = _spread(g.per_seed, level)
        need = _t_seeds(sd, half_width, level)
        rows.append(pd.DataFrame({
            "model": g.model, "factor": g.factor, "class_name": list(g.classes), "n_seeds": g.per_seed.shape[0],
            "sensitivity": mean, "sd": sd, "half_width": hw, "ci_low": mean - hw, "ci_high": mean + hw,
            "settled": hw <= half_width, "seeds_needed": need}))
    frame = pd.concat(rows, ignore_index=True)
    worst = frame["half_width"].fillna(np.inf).idxmax()
    row = frame.loc[worst]
    subject = f"class {row['class_name']} ({row['model']}, {row['factor']})"
    return Measured(frame, family=len(frame), met=bool(frame["settled"].all()), figure=float(row["half_width"]),
                    subject=subject, seeds_needed=float(frame["seeds_needed"].max(skipna=False)))


def _measure_ranking(groups: list[Group], margin: float, level: float) -> Measured:
    rows, family = [], 0
    z_power = stats.norm.ppf(POWER)
    for g in groups:
        S, K = g.per_seed.shape
        family += K * (K - 1) // 2  # every pair could turn out adjacent: the family is all of them
        mean = g.per_seed.mean(axis=0)
        order = np.argsort(-mean, kind="stable")
        gap = g.per_seed[:, order[:-1]] - g.per_seed[:, order[1:]]  # (S, K-1): each class minus the next
        d, sd, hw = _spread(gap, level)
        low, high = d - hw, d + hw
        verdict = np.where(low > 0, "separated", np.where((low > -margin) & (high < margin), "tied", "open"))
        separate = seeds_needed(d, sd, level=level, power=POWER)
        tie = _t_seeds(sd, np.where(np.abs(d) < margin, margin - np.abs(d), np.nan), level, z_power)
        need = np.maximum(np.fmin(separate, tie), S + 1)  # open now: a power estimate below S still means more
        rows.append(pd.DataFrame({
            "model": g.model, "factor": g.factor, "rank": np.arange(1, K), "class_name": np.asarray(g.classes)[order[:-1]],
            "next_class": np.asarray(g.classes)[order[1:]], "n_seeds": S, "gap": d, "sd": sd, "ci_low": low,
            "ci_high": high, "verdict": verdict, "settled": verdict != "open",
            "seeds_needed": np.where(verdict != "open", np.nan, need)}))
    frame = pd.concat(rows, ignore_index=True)
    open_ = frame[~frame["settled"]]
    if open_.empty:
        subject, need = "every adjacent pair separated or tied", float(frame["n_seeds"].min())
    else:
        row = open_.loc[open_["seeds_needed"].fillna(np.inf).idxmax()]
        subject = (f"worst {row['class_name']} vs {row['next_class']} ({row['model']}, {row['factor']}): gap "
                   f"{row['gap']:.3f}, interval {row['ci_low']:.3f} to {row['ci_high']:.3f}")
        need = float(open_["seeds_needed"].max(skipna=False))
    return Measured(frame, family=family, met=open_.empty, figure=float(len(open_)), subject=subject,
                    seeds_needed=need)


TARGETS: dict[str, TargetKind] = {
    "sensitivity": TargetKind(_measure_sensitivity, lambda groups: sum(len(g.classes) for g in groups), "HALF_WIDTH",
                              "every class's sensitivity has an interval of half-width <= HALF_WIDTH (recall units)"),
    "ranking": TargetKind(_measure_ranking, lambda groups: sum(len(g.classes) * (len(g.classes) - 1) // 2
                                                               for g in groups), "MARGIN",
                          "every adjacent pair of the sensitivity ranking is separated (its difference's interval "
                          "excludes 0) or tied (that interval lies inside +-MARGIN)"),
}
TARGET_SYNTAX = " or ".join(f"{name}:{kind.value_name}[:FACTOR]" for name, kind in TARGETS.items())


def parse_target(text: str) -> Target:
    """``sensitivity:0.02``, ``ranking:0.01:noise`` -> :class:`Target`; ValueError naming the text otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"target must be a string like 'sensitivity:0.02', got {type(text).__name__}")
    parts = text.strip().split(":")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(parts) not in (2, 3) or parts[0] not in TARGETS:
        raise ValueError(f"target must be {TARGET_SYNTAX} (FACTOR: {' or '.join(FACTORS)}), got {shown!r}")
    try:
        value = float(parts[1])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"the {TARGETS[parts[0]].value_name} of target {parts[0]!r} must be a number in (0, 1) "
                         f"(recall units), got {parts[1][:40]!r}")
    factor = parts[2] if len(parts) == 3 else None
    if factor is not None and factor not in FACTORS:
        raise ValueError(f"the FACTOR of a target must be {' or '.join(FACTORS)}, got {factor[:40]!r}")
    return Target(parts[0], value, factor)


def max_looks(start: int, max_seeds: int, *, growth: float = GROWTH) -> int:
    """Most looks a run from ``start`` seeds to ``max_seeds`` can make when each round has at least
    ``growth`` times the seeds of the last (and at least one more): one per round."""
    if not 1 <= start <= max_seeds:
        raise ValueError(f"need 1 <= start <= max_seeds, got start {start} and max_seeds {max_seeds}")
    looks, n = 1, start
    while n < max_seeds:
        n = next_seed_count(n, need=math.nan, max_seeds=max_seeds, growth=growth)
        looks += 1
    return looks


def next_seed_count(n: int, *, need: float, max_seeds: int, growth: float = GROWTH) -> int:
    """Seeds of the next round: at least ``growth`` x n (and n + 1), at least the estimated ``need``
    (NaN: unknown), at most ``max_seeds``."""
    step = max(math.ceil(growth * n - 1e-9), n + 1)
    if need is not None and math.isfinite(need):
        step = max(step, int(need))
    return int(min(max_seeds, step))


@dataclass(frozen=True)
class SettleCheck:
    """The verdict of one look: is ``target`` met, the worst figure, and the seeds it estimates are needed."""

    target: Target
    met: bool
    figure: float  # sensitivity: the worst half-width; ranking: the number of open pairs
    subject: str  # what the figure is about
    n_seeds: int  # seeds every quantity was measured on (the fewest over models and factors)
    seeds_needed: float  # estimated seeds for the target from the observed spread (NaN: unknown)
    looks: int
    family: int
    interval_level: float  # two-sided error level of each interval: (1 - confidence) / (looks * family)
    frame: pd.DataFrame = field(repr=False)

    def summary(self) -> str:
        """One line: the figure against the target, and what would settle it."""
        if self.target.kind == "sensitivity":
            figure = "no interval (one seed)" if not np.isfinite(self.figure) else f"{self.figure:.4f}"
            head = (f"worst half-width {figure} {'<=' if self.met else '>'} {self.target.value:g}, {self.subject}")
        else:
            total = len(self.frame)
            head = (f"{total - int(self.figure)} of {total} adjacent pairs separated or tied within "
                    f"+-{self.target.value:g}" + ("" if self.met else f"; {self.subject}"))
        if not self.met:
            head += (f"; about {int(self.seeds_needed)} seeds would settle it" if np.isfinite(self.seeds_needed)
                     else "; seeds needed unknown (no spread at one seed)")
        return head + f" ({self.family} intervals x {self.looks} looks, each at {1 - self.interval_level:.5f})"


def settle_groups(df: pd.DataFrame, *, factor: str | None = None) -> list[Group]:
    """Per-seed sensitivities of every model along ``factor`` (None: each factor the grid varies).

    A class without test examples (no recall) is left out, as in the ranking.
    """
    grid = to_grid(check_frame(df))
    factors = FACTORS if factor is None else (factor,)
    groups, reasons = [], []
    for m, model in enumerate(grid.models):
        for f in factors:
            try:
                x, recall, base, _ = recall_along(grid, m, f)
            except ValueError as error:
                reasons.append(f"{model}: {' '.join(str(error).split())}")
                continue
            per_seed = per_seed_sensitivity(x, recall, base)
            keep = np.flatnonzero(np.isfinite(per_seed).all(axis=0))
            groups.append(Group(model, f, tuple(grid.classes[k] for k in keep), per_seed[:, keep]))
    if not groups or (factor is not None and reasons):
        raise ValueError("cannot measure a settle target: " + "; ".join(reasons))
    return groups


def check_groups(groups: list[Group], *, target: Target | str, looks: int = 1,
                 confidence: float = 0.95) -> SettleCheck:
    """:func:`settle_check` on per-seed sensitivities already computed (what the simulations drive)."""
    target = parse_target(target) if isinstance(target, str) else target
    check_options(confidence=confidence)
    if isinstance(looks, bool) or not isinstance(looks, (int, np.integer)) or looks < 1:
        raise ValueError(f"looks must be an integer >= 1, got {looks!r}")
    kind = TARGETS[target.kind]
    family = kind.family(groups)
    level = (1 - confidence) / (looks * family)
    measured = kind.measure(groups, target.value, level)
    assert measured.family == family, (measured.family, family)
    n_seeds = min(g.per_seed.shape[0] for g in groups)
    need = float(n_seeds) if measured.met else measured.seeds_needed
    return SettleCheck(target=target, met=measured.met, figure=measured.figure, subject=measured.subject,
                       n_seeds=n_seeds, seeds_needed=need, looks=int(looks), family=family, interval_level=level,
                       frame=measured.frame)


def settle_check(df: pd.DataFrame, *, target: Target | str, looks: int = 1, confidence: float = 0.95) -> SettleCheck:
    """Measure a settle target on a results table: is every class's sensitivity known well enough, or
    every adjacent pair of the ranking separated or tied?

    Parameters
    ----------
    df : pandas.DataFrame
        The confusion table from :func:`load_results` (one experiment).
    target : str or Target, keyword-only
        ``sensitivity:HALF_WIDTH[:FACTOR]`` or ``ranking:MARGIN[:FACTOR]`` (see the module docstring).
    looks : int, keyword-only
        The most looks at the data the caller can make before it stops (:func:`max_looks`); the
        intervals are Bonferroni-guarded over them. 1: this is the only look.
    confidence : float, keyword-only
        The chance that every claim of every look holds is at least this, in (0, 1).

    Returns
    -------
    SettleCheck
        ``met``, ``figure``, ``subject``, ``n_seeds``, ``seeds_needed``, ``looks``, ``family``,
        ``interval_level``, ``summary()``, and ``frame``, one row per quantity. For ``sensitivity``:
        model, factor, class_name, n_seeds, sensitivity (mean over seeds), sd (over seeds),
        half_width, ci_low, ci_high (t-interval at two-sided level ``interval_level``), settled
        (half_width <= HALF_WIDTH), seeds_needed (fewest seeds that bring this half-width to the
        target at the observed sd); sorted by model, factor, then class order. For ``ranking``: one
        row per adjacent pair, model, factor, rank (of the upper class; 1 = most sensitive),
        class_name, next_class, n_seeds, gap (mean per-seed difference, >= 0), sd, ci_low, ci_high,
        verdict ("separated", "tied" or "open"), settled, seeds_needed (an open pair: the fewer of
        the seeds a paired test needs for 80 % power to separate it and those that would tie it,
        NaN when settled); sorted by model, factor, rank.

    Raises
    ------
    ValueError
        A bad target or option, or a grid with no factor to measure (or not the named one).
    """
    target = parse_target(target) if isinstance(target, str) else target
    return check_groups(settle_groups(df, factor=target.factor), target=target, looks=looks, confidence=confidence)


GUARDS = ("looks", "family", "none")  # the rule; Bonferroni over one look's family only; no correction


def simulate_stops(mean, sd, *, target: Target | str, start: int, max_seeds: int, reps: int = 1000,
                   guard: str = "looks", confidence: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Run the stopping rule on simulated seeds with a known truth, to measure its false-settled rate.

    Each replicate draws ``max_seeds`` seeds of K per-seed sensitivities, normal around ``mean`` (K,)
    with ``sd`` (scalar or (K,)), reveals them round by round as ``sweep run --until-settled`` would
    (:func:`next_seed_count` from ``start``), and stops when the target is met or the budget is
    spent. ``guard`` "looks" is the rule itself; "family" divides alpha over one look's intervals
    only (optional stopping unguarded); "none" puts every interval at ``confidence`` (it needs
    fewer than 1 / (1 - confidence) intervals in a look).

    Returns
    -------
    pandas.DataFrame
        One row per replicate, in order: stop ("met" or "budget"), seeds (at the stop), looks (made),
        wrong (bool: a claim of the last look is false: an interval that misses its true value, a
        pair called separated whose true gap is <= 0, or tied whose true gap is >= the margin).
    """
    target = parse_target(target) if isinstance(target, str) else target
    if guard not in GUARDS:
        raise ValueError(f"guard must be one of {GUARDS}, got {guard!r}")
    rng = np.random.default_rng(random_state)
    mean = np.asarray(mean, float)
    classes = tuple(str(k) for k in range(mean.size))
    looks_max = max_looks(start, max_seeds)
    rows = []
    for _ in range(reps):
        draws = rng.normal(mean, sd, size=(max_seeds, mean.size))
        n, looks = start, 0
        while True:
            groups = [Group("simulated", "noise", classes, draws[:n])]
            looks += 1
            if guard == "looks":
                check = check_groups(groups, target=target, looks=looks_max, confidence=confidence)
            else:
                family = 1 if guard == "family" else TARGETS[target.kind].family(groups)
                check = check_groups(groups, target=target, looks=1, confidence=1 - (1 - confidence) * family)
            if check.met or n >= max_seeds:
                break
            n = next_seed_count(n, need=check.seeds_needed, max_seeds=max_seeds)
        rows.append({"stop": "met" if check.met else "budget", "seeds": n, "looks": looks,
                     "wrong": _wrong(check, mean)})
    return pd.DataFrame(rows)


def _wrong(check: SettleCheck, truth: np.ndarray) -> bool:
    f = check.frame
    if check.target.kind == "sensitivity":
        true = truth[f["class_name"].astype(int).to_numpy()]
        return bool(((f["ci_low"] > true) | (f["ci_high"] < true)).any())
    gap = truth[f["class_name"].astype(int).to_numpy()] - truth[f["next_class"].astype(int).to_numpy()]
    return bool((((f["verdict"] == "separated") & (gap <= 0)) |
                 ((f["verdict"] == "tied") & (np.abs(gap) >= check.target.value))).any())


def target_help() -> str:
    """The targets in words, for ``--help`` (derived from ``TARGETS``)."""
    return "; ".join(f"{name}:{kind.value_name}[:FACTOR]: {kind.what}" for name, kind in TARGETS.items())


__all__ = ["settle_check", "check_groups", "settle_groups", "parse_target", "max_looks", "next_seed_count",
           "simulate_stops", "SettleCheck", "Target", "Group", "TARGETS", "GROWTH"]
