"""The ``sweep`` command line: ``trial``, ``run``, ``status``, ``compact``, ``report``.

Bad input (ValueError, TypeError, a missing file) becomes one line on stderr and exit code 2,
with no traceback; set SWEEP_DEBUG=1 to see the traceback. A reader that leaves early
(``sweep trial | head -1``) is not an error: the rest of the output is discarded quietly and the
exit code is 0, as the work itself succeeded. Heavy imports (torch, Ray) happen inside the
handlers, so ``sweep --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from analysis.cli import OneLineParser
from sweep.distributed.spec import MAX_SEED_COUNT, PRESETS, ExperimentSpec, load_preset, load_spec
from sweep.distributed.trackers import TRACKERS
from sweep.engine.config import DEVICES, TrialConfig
from sweep.engine.datasets import SPEC_FORMS
from sweep.engine.malloc_tuning import enabled as malloc_tuning_enabled
from sweep.engine.noise import NOISE_MODES
from sweep.engine.recipes import MODEL_NAMES, SCHEDULES
from sweep.engine.subsets import SUBSET_MODES

DATASET_HELP = " | ".join(f"{form} (offline default)" if form == "digits" else form for form in SPEC_FORMS)
HUGE_GRID = 2000  # trials; a bigger grid needs --yes (a typo in an axis can mean days of compute)


def parse_train_size(text: str) -> int | float:
    """'5000' -> a count; '0.1' (has a dot or exponent) -> a fraction of the train split."""
    try:
        if any(ch in text for ch in ".eE"):
            return float(text)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"train size must be a count (e.g. 5000) or a fraction (e.g. 0.1), got {text!r}"
        ) from None


def _arg_type(parse):
    """An argparse type from a parser that raises ValueError naming the text."""

    def wrapped(text: str):
        try:
            return parse(text)
        except (ValueError, OSError) as exc:  # OSError: a parameter file that is missing or unreadable
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help does not state its default already and X is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add_trial_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trial",
        help="run one trial and print its confusion matrix",
        description=(
            "Train one model on a reduced, partly mislabeled copy of the training split and print the "
            "confusion matrix on the untouched test split. Runs on CUDA when available, else CPU. "
            "Nothing is written to disk except the decoded-dataset cache."
        ),
        formatter_class=_DefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="digits", help=DATASET_HELP)
    p.add_argument("--model", default="blog_cnn", choices=MODEL_NAMES, help="model to train")
    p.add_argument("--noise", type=float, default=0.0, metavar="F", help="share of training labels to corrupt, in [0, 1]")
    p.add_argument("--noise-mode", default="shuffle", choices=NOISE_MODES, help="how labels are corrupted")
    for mode, spec in NOISE_MODES.items():  # each mode's parameter, declared with the mode
        if spec.param is not None:
            default = spec.param.default
            shown = f"default: {','.join(':'.join(p) for p in default)}" if default else "required above noise 0"
            p.add_argument(spec.param.flag, type=_arg_type(spec.param.parse_arg), metavar=spec.param.metavar,
                           dest=spec.param.field, help=f"{spec.param.what} for --noise-mode {mode} ({shown})")
    p.add_argument("--train-size", type=parse_train_size, default=None, metavar="S",
                   help="training examples: a count in [1, split size] or a fraction in (0, 1]; default: the whole split")
    p.add_argument("--subset-mode", default="random", choices=SUBSET_MODES, help="how the reduced training set is drawn")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="integer >= 0; drives subset, noise, init and batch order")
    p.add_argument("--epochs", type=int, metavar="E", help="passes over the training subset, >= 1 (default: the model's recipe)")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="examples per step, >= 1; >= 2 for the BatchNorm models fast_cnn and resnet18 "
                        "(default: the model's recipe)")
    p.add_argument("--lr", type=float, metavar="LR", help="peak learning rate, > 0 (default: the model's recipe)")
    p.add_argument("--weight-decay", type=float, metavar="WD", help="L2 coefficient, >= 0 (default: the model's recipe)")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="learning rate after the warm-up: constant, cosine to 0, or triangle (a line to 0) "
                        "(default: the model's recipe)")
    p.add_argument("--warmup", type=float, metavar="W",
                   help="share of the steps spent warming the learning rate up from 0, in [0, 1) "
                        "(default: the model's recipe)")
    p.add_argument("--ema", type=float, metavar="D",
                   help="evaluate a moving average of the weights with this decay per step, in [0, 1); "
                        "0 = off (default: the model's recipe)")
    p.add_argument("--augment", choices=("on", "off"), help="random crop + flip (default: on, off for digits)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where to train")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch CPU threads, >= 1 (default: torch's own, one per physical core unless "
                        "$OMP_NUM_THREADS says otherwise)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where torchvision datasets live (default: $SWEEP_DATA_DIR or "
                        "~/.cache/class-fragility-sweep/torchvision)")
    p.add_argument("--keep-probs", action="store_true",
                   help="also keep each test image's softmax: the summary lists the most confident mistakes; with "
                        "--json the object gains \"test_labels\" and \"probs\" (one list of K probabilities per "
                        "test image, in test-split and class order)")
    p.add_argument("--eval-every", type=_nonneg_int, default=0, metavar="N",
                   help="also score the test set after every N-th epoch (integer >= 0; 0 = only at the end): the "
                        "per-epoch lines show it; the trial's id and result do not change")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout instead of the summary")
    p.add_argument("--quiet", action="store_true",
                   help="no per-epoch progress on stderr (train loss, accuracy on the given labels, share of the "
                        "corrupted labels memorised)")
    p.set_defaults(handler=_trial_command)


def format_trial(result) -> str:
    """A readable summary of a TrialResult: headline numbers, per-class recall, confusion matrix."""
    c = result.config
    classes = list(result.classes)
    width = max(5, *(len(name) for name in classes))
    lines = [
        f"trial {c.trial_id}: {c.model} on {c.dataset}, {c.noise_mode} noise {c.noise_fraction:g} "
        f"(realized {result.realized_noise:.4f}), {result.train_size} training examples "
        f"({result.train_fraction:.1%} of the split), seed {c.seed}",
        f"accuracy {result.accuracy:.4f} on {result.test_size} test images; {result.epochs} epochs, "
        f"train {result.train_seconds:.1f} s, total {result.seconds:.1f} s on {result.device}",
        "",
        "per-class accuracy (recall):",
    ]
    lines += [f"  {name:>{width}}  {acc:.3f}" for name, acc in zip(classes, result.per_class_accuracy)]
    lines += ["", "confusion matrix (rows = true class, columns = predicted class):"]
    cell = max(5, len(str(int(result.confusion.max()))) + 1)
    lines.append(" " * (width + 2) + "".join(f"{name[:cell - 1]:>{cell}}" for name in classes))
    for name, row in zip(classes, result.confusion):
        lines.append(f"  {name:>{width}}" + "".join(f"{int(v):>{cell}}" for v in row))
    return "\n".join(lines)


def _trial_command(args: argparse.Namespace) -> int:
    malloc_tuning_enabled()  # a bad SWEEP_KEEP_FREED_MEMORY stops here, before any work
    params = {m.param.field: getattr(args, m.param.field) for m in NOISE_MODES.values() if m.param is not None}
    config = TrialConfig(
        dataset=args.dataset, model=args.model, noise_mode=args.noise_mode, noise_fraction=args.noise,
        train_size=args.train_size, seed=args.seed, subset_mode=args.subset_mode, **params,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup=args.warmup, ema=args.ema,
        augment=None if args.augment is None else args.augment == "on",
        device=args.device, num_threads=args.threads, data_dir=args.data_dir, keep_probs=args.keep_probs,
        eval_every=args.eval_every,
    )
    from sweep.engine.datasets import load_dataset
    from sweep.engine.fit import check_fits
    from sweep.engine.trial import resolve_device, run_trial

    resolve_device(config.device)  # 'cuda' without CUDA fails here, before any output
    dataset = load_dataset(config.dataset, data_dir=config.data_dir)
    # Bad sizes, pairs or matrices, and a model that cannot take the images, fail here, before any output.
    check_fits(config, dataset)

    def on_epoch(stats) -> None:
        memorised = "" if stats.memorised_share != stats.memorised_share else f"  memorised {stats.memorised_share:.3f}"
        test = "" if stats.test_accuracy is None else f"  test accuracy {stats.test_accuracy:.4f}"
        print(f"  epoch {stats.epoch}/{stats.epochs}  train loss {stats.train_loss:.4f}  "
              f"train accuracy {stats.train_accuracy:.3f}{memorised}{test}  {stats.seconds:.1f} s",
              file=sys.stderr, flush=True)

    if not args.quiet and not args.json:
        print(f"training {config.model} on {config.dataset} (trial {config.trial_id}) ...", file=sys.stderr, flush=True)
    result = run_trial(config, dataset, on_epoch=None if (args.quiet or args.json) else on_epoch)
    if args.json:
        payload = result.to_json()
        if result.probs is not None:
            payload.update(probs_json(result))
        print(json.dumps(payload, allow_nan=False))
    else:
        print(format_trial(result))
        if result.probs is not None:
            print(format_mistakes(result))
    return 0


def probs_json(result) -> dict:
    """``test_labels`` (class indices) and ``probs`` (float32 softmax rows, written in the shortest form that
    reads back as the same float32), both in test-split order: what OUT/probs/ keeps for a sweep trial."""
    import numpy as np

    probs = np.asarray(result.probs, dtype=np.float32)
    return {"test_labels": [int(v) for v in result.test_labels],
            "probs": [[float(np.format_float_positional(v, unique=True, trim="-")) for v in row] for row in probs]}


def format_mistakes(result, *, top: int = 10) -> str:
    """The ``top`` test images misclassified with the highest probability of the wrong class."""
    import numpy as np

    probs = np.asarray(result.probs)
    labels = np.asarray(result.test_labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:top]
    classes = result.classes
    lines = ["", f"most confident mistakes ({len(wrong)} of {int((pred != labels).sum())}; example = index in the "
             "test split):"]
    lines += [f"  example {int(i):>6}  true {classes[labels[i]]:>10}  taken for {classes[pred[i]]:>10}  "
              f"p = {probs[i, pred[i]]:.3f}" for i in wrong]
    return "\n".join(lines)


def _int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= ``low`` (and <= ``high``), else one line naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)
_seed_count = _int_at_least(1, MAX_SEED_COUNT)  # the cap of a spec's `seeds = N`


def _add_sweep_parsers(subparsers: argparse._SubParsersAction) -> None:
    """The ``run`` and ``status`` subcommands (each with ``handler=fn(args) -> int``)."""
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
                     help="replace the spec's dataset: digits | cifar10 | parquet:DIR | imagefolder:DIR; "
                          "default: the spec's")
    run.add_argument("--seeds", type=_seed_count, metavar="N", default=None,
                     help=f"use seeds 0..N-1 (1 <= N <= {MAX_SEED_COUNT}) instead of the spec's; raising N extends a finished sweep; "
                          "default: the spec's seeds")
    run.add_argument("--keep-probs", action="store_true", default=None,
                     help="also write each test image's softmax to OUT/probs/ (for the report's misclassified "
                          "images), whatever the spec's keep_probs says; it applies to the trials this run trains: "
                          "trials already done are not rerun for it; default: the spec's keep_probs")
    run.add_argument("--eval-every", type=_nonneg_int, metavar="N", default=None,
                     help="also score the test set after every N-th epoch of each trial this run trains (>= 0, "
                          "0 = off): OUT/epochs/ gains test counts at those epochs and Tune gets test_accuracy; "
                          "trial ids do not change and done trials are not rerun; default: the spec's eval_every")
    run.add_argument("--retries", type=_nonneg_int, metavar="N", default=None,
                     help="retries per failing trial (>= 0); default: the spec's `retries`")
    run.add_argument("--max-concurrent", type=_nonneg_int, metavar="N", default=None,
                     help="trials at once across the cluster (>= 0, 0 = as many as resources allow); "
                          "default: the spec's")
    run.add_argument("--address", metavar="ADDR", default=None,
                     help="Ray cluster to join (host:port, ray://host:port or auto); default: $RAY_ADDRESS, "
                          "else a local Ray started for this run")
    run.add_argument("--num-cpus", type=_positive_int, metavar="N", default=None,
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

    run.add_argument("--until-settled", type=_arg_type(_parse_target), metavar="TARGET", default=None,
                     help="run in rounds, adding seeds 0..N-1 to the whole grid, until TARGET is met on the "
                          f"committed trials or --max-seeds is spent. TARGET: {target_help()}; FACTOR: noise or "
                          "size, default every factor the grid varies. Each round has at least "
                          f"{GROWTH:g}x the seeds of the last (more when the observed spread says so), and "
                          "every interval is Bonferroni-guarded at 95 %% over all the looks the run can make, "
                          "so stopping on a look does not inflate the error. One line per round, then which stop "
                          "and why. Exit 0 when met, 3 when the budget ran out first; default: off")
    run.add_argument("--max-seeds", type=_seed_count, metavar="N", default=None,
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
    status.add_argument("--seeds", type=_seed_count, metavar="N", default=None,
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
                               eval_every=getattr(args, "eval_every", None))


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
    outcome = run_sweep(spec, out, address=args.address, num_cpus=args.num_cpus, dashboard=args.dashboard,
                        verbose=args.verbose, adopt=args.adopt, trackers=args.log or (), compact=args.compact,
                        log=log)
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

    result = run_until_settled(spec, out, target=args.until_settled, max_seeds=args.max_seeds, address=args.address,
                               num_cpus=args.num_cpus, dashboard=args.dashboard, verbose=args.verbose,
                               adopt=args.adopt, trackers=args.log or (), compact=args.compact, log=log)
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


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="sweep",
        description=(
            "Which classes of a classifier are fragile: train under label noise and data reduction, "
            "record confusion matrices, analyse them with error bars."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from analysis import cli as analysis_cli  # light: matplotlib is imported inside its handler

    _add_sweep_parsers(subparsers)
    analysis_cli.register(subparsers)
    _add_trial_parser(subparsers)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' API
    """Warnings on the terminal as ``sweep: warning: ...``, one line, without the source line."""
    return f"sweep: warning: {' '.join(str(message).split())}\n"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that left shows up here, not at interpreter exit
        return code
    except BrokenPipeError:  # before OSError, its base class. `sweep trial | head -1`: the reader left
        # Python flushes stdout again at exit; point it at devnull so that flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except (ValueError, TypeError, OSError) as exc:  # OSError: missing files, permissions, a full disk
        if os.environ.get("SWEEP_DEBUG") == "1":
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"sweep {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweep {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
