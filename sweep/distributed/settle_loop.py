"""Seeds until settled: run a sweep in rounds of more seeds until an analysis target is met or the budget is spent.

:func:`run_until_settled` is what ``sweep run --until-settled TARGET --max-seeds N`` does. Each round
is an ordinary :func:`~sweep.distributed.driver.run_sweep` of the spec with seeds 0..n-1 over the
whole grid (comparisons pair by seed, so a cell never gets a seed its neighbours lack); after it,
the committed trials of that grid are loaded and ``analysis.settle.settle_check`` measures the
target, with its intervals guarded over every look the run can make. Not met: the next round has
``next_seed_count`` seeds (at least 1.5x, more when the observed spread says so, at most the
budget). A killed run resumes like any sweep: the first round of the same command finishes the
round OUT was in (its highest seed), so no look is added to the planned ones, and done trials
are never redone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from analysis.settle import GROWTH, SettleCheck, Target, max_looks, next_seed_count, parse_target, settle_check
from sweep.distributed.driver import Log, RunOptions, _log_to_stderr, resolve_address, run_sweep
from sweep.distributed.experiment_record import check_experiment, read_experiment
from sweep.distributed.spec import MAX_SEED_COUNT, ExperimentSpec
from sweep.distributed.scan import scan_done
from sweep.distributed.store import open_output, read_failed
from sweep.distributed.tune_layer import SweepOutcome

STOPS = ("met", "budget", "incomplete")  # why a run stopped: target met, seeds spent, trials failed or interrupted


@dataclass(frozen=True)
class SettleRound:
    """One round: its seed count, what became of its trials, and the look at the data after it."""

    number: int
    seeds: int
    outcome: SweepOutcome
    check: SettleCheck | None  # None when the round did not finish (no look was made)


@dataclass(frozen=True)
class SettleOutcome:
    """How a run until settled ended: ``stop`` in STOPS, ``reason`` in one sentence, every round."""

    target: Target
    stop: str
    reason: str
    seeds: int  # seeds 0..seeds-1 of the last round
    max_seeds: int
    looks: int  # the most looks the run could make (the guard divides alpha by it)
    rounds: tuple[SettleRound, ...]

    @property
    def check(self) -> SettleCheck | None:
        """The last look."""
        looked = [r.check for r in self.rounds if r.check is not None]
        return looked[-1] if looked else None

    @property
    def outcome(self) -> SweepOutcome:
        """The last round's sweep outcome."""
        return self.rounds[-1].outcome


def check_settle_request(spec: ExperimentSpec, target: Target, max_seeds: int) -> None:
    """One-line ValueErrors for a request that cannot run: seeds that are not 0..n-1, a budget below
    them, a grid without the factor the target measures."""
    if not isinstance(max_seeds, int) or isinstance(max_seeds, bool) or not 1 <= max_seeds <= MAX_SEED_COUNT:
        raise ValueError(f"--max-seeds must be an integer in [1, {MAX_SEED_COUNT:,}], got {max_seeds!r}")
    n = len(spec.seeds)
    if tuple(spec.seeds) != tuple(range(n)):
        shown = ", ".join(str(s) for s in spec.seeds[:6]) + (", ..." if n > 6 else "")
        raise ValueError(f"--until-settled adds seeds 0..N-1 to the whole grid, but the spec's seeds are [{shown}]; "
                         f"write `seeds = {n}` (or pass --seeds N)")
    if max_seeds < n:
        raise ValueError(f"--max-seeds {max_seeds} is below the {n} seeds the run starts from; allowed: {n} or more")
    noise_axis = 0.0 in spec.noise_fractions and len(spec.noise_fractions) >= 2
    size_axis = 0.0 in spec.noise_fractions and len(spec.train_sizes) >= 2
    varied = {"noise": noise_axis, "size": size_axis}
    wanted = [target.factor] if target.factor else list(varied)
    if not any(varied[f] for f in wanted) or (target.factor and not varied[target.factor]):
        levels = " or ".join({"noise": "2 noise fractions", "size": "2 train sizes"}[f] for f in wanted)
        raise ValueError(f"--until-settled {target} measures sensitivity along {' or '.join(wanted)}, which needs noise "
                         f"fraction 0 and at least {levels} in the grid; this spec has noise_fractions "
                         f"{list(spec.noise_fractions)} and train_sizes {list(spec.train_sizes)}")


def first_round_seeds(out: str, spec: ExperimentSpec, max_seeds: int) -> int:
    """Seeds of the first round: the spec's, or as many as OUT's grid already reaches (the round a
    killed run was in: its highest seed done or failed, plus one), at most ``max_seeds``."""
    output = open_output(out)
    n = len(spec.seeds)
    try:
        if read_experiment(output) is None:
            return n
    except ValueError:
        return n  # a broken record: run_sweep refuses it with its own message
    present = set(scan_done(output, validate=False).done) | set(read_failed(output))
    wide = spec.with_overrides(seeds=max_seeds)
    for config in wide.trials():
        if config.seed >= n and config.trial_id in present:
            n = config.seed + 1
    return min(n, max_seeds)


def _grid_results(out: str, spec: ExperimentSpec):
    """The committed confusion rows of exactly ``spec``'s grid (OUT may hold other seeds or levels)."""
    import analysis

    df = analysis.load_results(out)
    ids = {c.trial_id for c in spec.trials()}
    return df[df["trial_id"].isin(ids)].reset_index(drop=True)


def run_until_settled(spec: ExperimentSpec, out: str, options: RunOptions = RunOptions(), *, target: Target | str,
                      max_seeds: int, confidence: float = 0.95, growth: float = GROWTH,
                      log: Log | None = None) -> SettleOutcome:
    """Run ``spec`` into ``out`` in rounds of seeds 0..n-1 until ``target`` is met or n is ``max_seeds``.

    The first round has the spec's seeds, or the round OUT already reached; each later one has
    ``next_seed_count`` seeds. After each finished round, one line goes to ``log``: the round, its
    seeds and the target's figure; at the end one more says which stop and why. A round whose
    trials failed or were interrupted stops the run ("incomplete"): the same call resumes it.
    ``options`` are :func:`run_sweep`'s, for every round (``adopt`` for the first only). OUT's
    ``experiment.json`` records the last round's seeds.
    """
    log = log or _log_to_stderr
    target = parse_target(target) if isinstance(target, str) else target
    check_settle_request(spec, target, max_seeds)
    check_experiment(open_output(out), spec, adopt=options.adopt)  # another experiment's OUT: refused before any count
    looks = max_looks(len(spec.seeds), max_seeds, growth=growth)
    n = first_round_seeds(out, spec, max_seeds)
    rounds: list[SettleRound] = []
    started_ray = False
    log(f"until settled ({target}): rounds of seeds 0..n-1 over the whole grid from n = {n}, each at least "
        f"{growth:g}x the last, to at most {max_seeds} seeds: at most {looks} looks, so the {1 - confidence:.0%} "
        "error is split over the looks and each look's intervals")
    try:
        while True:
            number = len(rounds) + 1
            round_spec = spec.with_overrides(seeds=n)
            outcome = run_sweep(round_spec, out, replace(options, adopt=options.adopt and number == 1), log=log)
            if outcome.failed or outcome.unfinished:
                rounds.append(SettleRound(number, n, outcome, None))
                what = (f"{len(outcome.failed)} trial(s) failed" if outcome.failed else
                        f"{len(outcome.unfinished)} trial(s) were not run (interrupted)")
                return _stop(log, target, "incomplete", f"{what} in round {number} ({n} seeds), and the target is "
                             "measured on complete seeds only; run the same command again to resume",
                             n, max_seeds, looks, rounds)
            check = settle_check(_grid_results(out, round_spec), target=target, looks=looks, confidence=confidence)
            rounds.append(SettleRound(number, n, outcome, check))
            log(f"round {number}: {n} seeds: {check.summary()}")
            if check.met:
                return _stop(log, target, "met", f"{TARGET_WORDS[target.kind]} at {n} seeds after {number} round(s): "
                             f"{_figure(check)}", n, max_seeds, looks, rounds)
            if n >= max_seeds:
                need = (f"about {int(check.seeds_needed)} seeds would settle it" if math.isfinite(check.seeds_needed)
                        else "the seeds needed are unknown")
                return _stop(log, target, "budget", f"the budget of {max_seeds} seeds is spent and not "
                             f"{TARGET_WORDS[target.kind]}: {_figure(check)}; {need}", n, max_seeds, looks, rounds)
            n = next_seed_count(n, need=check.seeds_needed, max_seeds=max_seeds, growth=growth)
            if not started_ray:  # keep one Ray for the later rounds instead of starting one per round
                started_ray = _connect(options)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


TARGET_WORDS = {"sensitivity": "every class's sensitivity is known to the half-width asked",
                "ranking": "every adjacent pair of the ranking is separated or tied"}


def _figure(check: SettleCheck) -> str:
    if check.target.kind == "sensitivity":
        return (f"worst half-width {check.figure:.4f} (target {check.target.value:g}), {check.subject}"
                if math.isfinite(check.figure) else "no interval at one seed")
    total = len(check.frame)
    return f"{total - int(check.figure)} of {total} adjacent pairs settled" + ("" if check.met else f", {check.subject}")


def _stop(log: Log, target: Target, stop: str, reason: str, n: int, max_seeds: int, looks: int,
          rounds: list[SettleRound]) -> SettleOutcome:
    words = {"met": "settled", "budget": "not settled", "incomplete": "stopped"}[stop]
    log(f"{words} ({target}; stop: {stop}): {reason}")
    return SettleOutcome(target, stop, reason, n, max_seeds, looks, tuple(rounds))


def _connect(options: RunOptions) -> bool:
    from sweep.distributed.ray_connect import connect_ray

    return connect_ray(resolve_address(options.address), verbose=options.verbose, dashboard=options.dashboard,
                       num_cpus=options.num_cpus)


__all__ = ["run_until_settled", "SettleOutcome", "SettleRound", "STOPS", "check_settle_request", "first_round_seeds"]
