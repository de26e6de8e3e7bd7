"""``sweep run`` (with --until-settled), ``sweep status`` and ``sweep compact``: the commands on an OUT.

Each parses its arguments, calls one function of the distributed layer (``run_sweep``,
``run_until_settled``, ``sweep_status``, ``compact_folder``) that a notebook can call the same way,
and prints the outcome: messages on stderr prefixed ``sweep run:`` / ``sweep compact:``, tables and
summaries on stdout. Exit codes: 0 done, 1 trials failed, 130 interrupted, 3 when --until-settled
spent its budget before the target was met. Ray is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import os
import sys

from sweep.cli_args import arg_type, nonneg_int, positive_int, seed_count, steps_count
from sweep.distributed.spec import MAX_SEED_COUNT, PRESETS, ExperimentSpec, load_preset, load_spec
from sweep.distributed.trackers import TRACKERS
from sweep.engine.config import MAX_STEPS
from sweep.engine.datasets import SPEC_FORMS

HUGE_GRID = 2000  # trials; a bigger grid needs --yes (a typo in an axis can mean days of compute)


def add_sweep_parsers(subparsers: argparse._SubParsersAction) -> None:
    """The ``run``, ``status`` and ``compact`` subcommands (each with ``handler=fn(args) -> int``)."""
    run = subparsers.add_parser(
        "run", help="run a sweep (the quick preset when given nothing)",
        description="Run every missing trial of an experiment grid on Ray Tune and write Parquet under OUT. "
                    "Trials already in OUT are skipped, so the same command resumes, and --seeds extends.",
    )
    run.add_argument("spec", nargs="?", metavar="SPEC",
                     help="experiment spec file (.toml, .yaml, .yml); default: the quick preset")
    run.add_argument("--preset", choices=PRESETS, default=None,
                     help="run a preset shipped with the package instead of a SPEC file; default when "
                          "neither is given: quick")
    run.add_argument("--out", metavar="PATH", default=None,
                     help="output folder or URI (local, NFS, s3://bucket/prefix); default: results/<experiment>")
    run.add_argument("--dataset", metavar="SPEC", default=None,
                     help=f"replace the spec's dataset: {' | '.join(SPEC_FORMS)}; default: the spec's")
    run.add_argument("--seeds", type=seed_count, metavar="N", default=None,
                     help=f"use seeds 0..N-1 (1 <= N <= {MAX_SEED_COUNT}) instead of the spec's; raising N extends a finished sweep; "
                          "default: the spec's seeds")
    run.add_argument("--keep-probs", action="store_true", default=None,
                     help="also write each test image's softmax to OUT/probs/ (for the report's misclassified "
                          "images), whatever the spec's keep_probs says; it applies to the trials this run trains: "
                          "trials already done are not rerun for it; default: the spec's keep_probs")
    run.add_argument("--eval-every", type=nonneg_int, metavar="N", default=None,
                     help="also score the test set after every N-th epoch of each trial this run trains (>= 0, "
                          "0 = off): OUT/epochs/ gains test counts at those epochs and Tune gets test_accuracy; "
                          "trial ids do not change and done trials are not rerun; default: the spec's eval_every")
    run.add_argument("--steps", type=steps_count, metavar="N", default=None,
                     help=f"train every trial for exactly N optimizer steps (1 <= N <= {MAX_STEPS:,}) instead of the "
                          "spec's epochs, which are then not used: each train size trains equally long. Part of the "
                          "trial id, so another experiment: give it its own --out; default: the spec's budget")
    run.add_argument("--retries", type=nonneg_int, metavar="N", default=None,
                     help="retries per failing trial (>= 0); default: the spec's `retries`")
    run.add_argument("--max-concurrent", type=nonneg_int, metavar="N", default=None,
                     help="trials at once across the cluster (>= 0, 0 = as many as resources allow); "
                          "default: the spec's")
    run.add_argument("--address", metavar="ADDR", default=None,
                     help="Ray cluster to join (host:port, ray://host:port or auto); default: $RAY_ADDRESS, "
                          "else a local Ray started for this run")
    run.add_argument("--num-cpus", type=positive_int, metavar="N", default=None,
                     help="CPUs of the local Ray (>= 1; ignored with --address); default: all cores")
    run.add_argument("--dashboard", action="store_true",
                     help="start Ray's dashboard with the local Ray, bound to 127.0.0.1:8265; default: off")
    run.add_argument("--verbose", action="store_true", help="show Ray's and Tune's own logs and tables; default: off, one progress line")
    run.add_argument("--adopt", action="store_true",
                     help="take over an OUT whose experiment.json is gone, when every trial in it belongs to SPEC's "
                          "experiment (it is written anew); default: refuse results without a record")
    run.add_argument("--log", action="append", metavar="TRACKER", default=None,
                     help="also log every trial's reported metrics to a tracker, through Ray Tune's logger "
                          "callbacks; a comma list or the flag repeated: "
                          + "; ".join(f"{name}: {t.what}" for name, t in TRACKERS.items())
                          + ". Each needs its package: pip install 'class-fragility-sweep[NAME]' (tensorboardX comes with "
                          "ray[tune]); "
                          "default: no tracker")
    run.add_argument("--no-compact", dest="compact", action="store_false",
                     help="do not merge the per-trial result files at the end (by default a run that leaves at least "
                          "1,000 trials in per-trial files compacts them, as `sweep compact` does)")
    run.add_argument("--yes", action="store_true",
                     help=f"run grids of more than {HUGE_GRID:,} trials; default: refuse them with the trial count")
    from analysis.settle import GROWTH, target_help  # light: pandas and scipy, no torch or Ray

    run.add_argument("--until-settled", type=arg_type(_parse_target), metavar="TARGET", default=None,
                     help="run in rounds, adding seeds 0..N-1 to the whole grid, until TARGET is met on the "
                          f"committed trials or --max-seeds is spent. TARGET: {target_help()}; FACTOR: noise or "
                          "size, default every factor the grid varies. Each round has at least "
                          f"{GROWTH:g}x the seeds of the last (more when the observed spread says so), and "
                          "every interval is Bonferroni-guarded at 95 %% over all the looks the run can make, "
                          "so stopping on a look does not inflate the error. One line per round, then which stop "
                          "and why. Exit 0 when met, 3 when the budget ran out first; default: off")
    run.add_argument("--max-seeds", type=seed_count, metavar="N", default=None,
                     help="the budget of --until-settled: at most seeds 0..N-1 per cell (at least the seeds it "
                          "starts from); required with --until-settled")
    run.set_defaults(handler=_run_command)

    status = subparsers.add_parser(
        "status", help="done / missing / failed trials of OUT, per grid cell",
        description="Show, per grid cell (model, noise fraction, train size), how many seeds are done, "
                    "missing and failed. Read-only.",
    )
    status.add_argument("out", metavar="OUT", help="output folder or URI of a sweep")
    status.add_argument("spec", nargs="?", metavar="SPEC",
                        help="spec file whose grid to check against; default: the spec of OUT's latest run")
    status.add_argument("--preset", choices=PRESETS, default=None,
                        help="check against a preset's grid; default: the spec of OUT's latest run")
    status.add_argument("--seeds", type=seed_count, metavar="N", default=None,
                        help=f"check seeds 0..N-1 (1 <= N <= {MAX_SEED_COUNT}); default: the spec's seeds")
    status.set_defaults(handler=_status_command)

    compact = subparsers.add_parser(
        "compact", help="merge OUT's per-trial result files into a few large ones",
        description="Merge the files of OUT's finished trials (one per trial in confusion/, trials/, probs/) into one "
                    "file per model and noise fraction in each folder, so that reading 100,000 trials takes seconds, "
                    "not minutes. Crash-safe and idempotent; refused while a sweep runs on OUT. "
                    "`pd.read_parquet(\"OUT/confusion\")` still returns the whole table, and "
                    "`filters=[(\"model\", \"==\", m), (\"noise_fraction\", \"==\", x)]` reads only that file.",
    )
    compact.add_argument("out", metavar="OUT", help="results folder of a sweep (local or NFS path)")
    compact.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    compact.set_defaults(handler=_compact_command)


def resolve_spec(args: argparse.Namespace) -> ExperimentSpec:
    """The spec a `sweep run` / `sweep status` command line asks for (a file or a preset, with overrides)."""
    if args.spec and args.preset:
        raise ValueError(f"give a SPEC file or --preset, not both (got {args.spec!r} and --preset {args.preset})")
    spec = load_spec(args.spec) if args.spec else load_preset(args.preset or "quick")
    if not getattr(args, "yes", True):  # `sweep run` without --yes: count first, build the trials after
        seeds = max(args.seeds or len(spec.seeds), getattr(args, "max_seeds", None) or 0)  # --until-settled may reach
        trials = spec.num_trials // len(spec.seeds) * seeds
        if trials > HUGE_GRID:
            raise ValueError(f"this grid has {trials:,} trials (more than {HUGE_GRID:,}); check the spec's "
                             "axes, then pass --yes to run it")
    return spec.with_overrides(dataset=getattr(args, "dataset", None), seeds=args.seeds,
                               max_concurrent=getattr(args, "max_concurrent", None),
                               retries=getattr(args, "retries", None), keep_probs=getattr(args, "keep_probs", None),
                               eval_every=getattr(args, "eval_every", None), steps=getattr(args, "steps", None))


def run_options(args: argparse.Namespace):
    """The RunOptions a `sweep run` command line asks for (the progress line is always drawn)."""
    from sweep.distributed.driver import RunOptions

    return RunOptions(address=args.address, num_cpus=args.num_cpus, dashboard=args.dashboard, verbose=args.verbose,
                      adopt=args.adopt, trackers=tuple(args.log or ()), compact=args.compact)


def _run_command(args: argparse.Namespace) -> int:
    from sweep.distributed.driver import run_sweep
    from sweep.distributed.progress import format_seconds

    def log(message: str) -> None:
        print(f"sweep run: {message}", file=sys.stderr, flush=True)

    if args.max_seeds is not None and args.until_settled is None:
        raise ValueError(f"--max-seeds is the budget of --until-settled; give --until-settled TARGET too, or "
                         f"--seeds {args.max_seeds} for a fixed count")
    if args.until_settled is not None and args.max_seeds is None:
        raise ValueError(f"--until-settled {args.until_settled} needs --max-seeds N, the most seeds per cell it may run")
    spec = resolve_spec(args)  # a grid over HUGE_GRID without --yes stops here, before it is built
    # `--out ""` is a mistake to report (open_output does), not a request for the default
    out = os.path.join("results", spec.name) if args.out is None else args.out
    if args.until_settled is not None:
        return _settle_command(args, spec, out, log)
    outcome = run_sweep(spec, out, run_options(args), log=log)
    if outcome.ran == 0:
        return 0
    done = outcome.skipped + outcome.succeeded
    log(f"{done}/{outcome.total} trials done ({outcome.succeeded} now, {outcome.skipped} before) "
        f"in {format_seconds(outcome.wall_seconds)} -> {outcome.out}")
    if outcome.failed:
        log(f"{len(outcome.failed)} trial(s) failed after {spec.retries} retries:")
        for trial_id, info in sorted(outcome.failed.items(), key=lambda kv: kv[1]["key"]):
            print(f"  {trial_id}  {info['key']}: {info['error']}", file=sys.stderr)
        log("the other results are written; run the same command again to retry only these")
    if outcome.unfinished:
        log(f"stopped with {len(outcome.unfinished)} trial(s) not run (interrupted); "
            "run the same command again to resume")
    if outcome.failed:
        return 1
    return 130 if outcome.unfinished else 0


def _parse_target(text: str):
    from analysis.settle import parse_target

    return parse_target(text)


SETTLE_EXIT = {"met": 0, "budget": 3}  # "incomplete": 1 when trials failed, 130 when interrupted


def _settle_command(args: argparse.Namespace, spec: ExperimentSpec, out: str, log) -> int:
    """`sweep run --until-settled`: rounds of run_sweep until the target is met (the loop logs each round)."""
    from sweep.distributed.settle_loop import run_until_settled

    result = run_until_settled(spec, out, run_options(args), target=args.until_settled, max_seeds=args.max_seeds,
                               log=log)
    if result.stop in SETTLE_EXIT:
        return SETTLE_EXIT[result.stop]
    outcome = result.outcome
    for trial_id, info in sorted(outcome.failed.items(), key=lambda kv: kv[1]["key"]):
        print(f"  {trial_id}  {info['key']}: {info['error']}", file=sys.stderr)
    return 1 if outcome.failed else 130


def _status_command(args: argparse.Namespace) -> int:
    from sweep.distributed.driver import sweep_status

    spec = None
    if args.spec or args.preset:
        args.dataset = args.max_concurrent = None
        spec = resolve_spec(args)
    print(format_status(sweep_status(args.out, spec, seeds=args.seeds)))
    return 0


def _compact_command(args: argparse.Namespace) -> int:
    from sweep.distributed.compact import compact_folder

    def say(message: str) -> None:
        print(f"sweep compact: {message}", file=sys.stderr, flush=True)

    result = compact_folder(args.out, progress=None if args.quiet else say, log=say)
    if result.trials:
        print(f"compacted {result.trials:,} trials into {result.units} file(s) per result folder "
              f"(generation {result.generation}), removed {result.files_removed:,} per-trial files, "
              f"{result.seconds:.1f} s")
    else:
        print(f"nothing to compact in {args.out}: every finished trial is in a compacted file already")
    return 0


def format_status(status) -> str:
    """The status table: one row per grid cell, counts of seeds done / missing / failed."""
    rows = [(c.model, f"{c.noise_fraction:.2f}", str(c.train_size), f"{c.done}/{c.seeds}", str(c.missing),
             str(c.failed)) for c in status.cells]
    header = ("model", "noise", "train_size", "done", "missing", "failed")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    done, missing, failed = status.totals
    lines = [f"{status.spec.name} at {status.uri}: {status.spec.num_trials} trials in the grid: {done} done, "
             f"{missing} missing, {failed} failed", "", fmt.format(*header)]
    lines += [fmt.format(*r) for r in rows]
    if status.outside:
        lines.append(f"\n{status.outside} finished trial(s) in OUT are outside this grid (other seeds or axis values)")
    if status.failed:
        lines.append("\nfailed trials (a new `sweep run` retries them):")
        for trial_id, record in sorted(status.failed.items()):
            key = "/".join(f"{k}={v}" for k, v in (record.get("key") or {}).items())
            lines.append(f"  {trial_id}  {key}: {record.get('error', '?')} (attempt {record.get('attempt', '?')})")
    if status.corrupt:
        lines.append("\nfiles that do not read as Parquet (their trials count as missing):")
        lines += [f"  {path}" for path in status.corrupt]
    if status.stray:
        lines.append("\nfiles that no sweep writes, which break `pd.read_parquet` of their folder "
                     "(`sweep run` moves them to _corrupt/):")
        lines += [f"  {path}" for path in status.stray]
    return "\n".join(lines)

