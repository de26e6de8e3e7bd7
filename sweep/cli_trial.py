"""``sweep trial``: one trial from the command line, its confusion matrix printed (or one JSON object).

The parser declares every trial option with its range and default; the handler builds a
``TrialConfig`` (validated once, there), checks that it fits the dataset before any output, runs
``sweep.engine.trial.run_trial`` and prints the summary (``format_trial``, and with --keep-probs the
most confident mistakes) or, with --json, exactly one JSON object. Per-epoch progress goes to
stderr. Nothing is written to disk but the decoded-dataset cache; torch is imported in the handler.
"""

from __future__ import annotations

import argparse
import json
import sys

from sweep.cli_args import DefaultsHelpFormatter, arg_type, nonneg_int, parse_train_size, steps_count
from sweep.engine.config import DEVICES, MAX_STEPS, TrialConfig
from sweep.engine.datasets import SPEC_FORMS
from sweep.engine.malloc_tuning import enabled as malloc_tuning_enabled
from sweep.engine.noise import NOISE_MODES
from sweep.engine.recipes import MODEL_NAMES, SCHEDULES, batchnorm_help
from sweep.engine.subsets import SUBSET_MODES

DATASET_HELP = " | ".join(f"{form} (offline default)" if form == "digits" else form for form in SPEC_FORMS)


def add_trial_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``trial`` subcommand (``handler=_trial_command``): every trial option with its range and default."""
    p = subparsers.add_parser(
        "trial",
        help="run one trial and print its confusion matrix",
        description=(
            "Train one model on a reduced, partly mislabeled copy of the training split and print the "
            "confusion matrix on the untouched test split. Runs on CUDA when available, else CPU. "
            "Nothing is written to disk except the decoded-dataset cache."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="digits", help=DATASET_HELP)
    p.add_argument("--model", default="blog_cnn", choices=MODEL_NAMES, help="model to train")
    p.add_argument("--noise", type=float, default=0.0, metavar="F", help="share of training labels to corrupt, in [0, 1]")
    p.add_argument("--noise-mode", default="shuffle", choices=NOISE_MODES, help="how labels are corrupted")
    for mode, spec in NOISE_MODES.items():  # each mode's parameter, declared with the mode
        if spec.param is not None:
            p.add_argument(spec.param.flag, type=arg_type(spec.param.parse_arg), metavar=spec.param.metavar,
                           dest=spec.param.field,
                           help=f"{spec.param.what} for --noise-mode {mode} ({spec.param.default_help()})")
    p.add_argument("--train-size", type=parse_train_size, default=None, metavar="S",
                   help="training examples: a count in [1, split size] or a fraction in (0, 1]; default: the whole split")
    p.add_argument("--subset-mode", default="random", choices=SUBSET_MODES, help="how the reduced training set is drawn")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="integer >= 0; drives subset, noise, init and batch order")
    p.add_argument("--epochs", type=int, metavar="E", help="passes over the training subset, >= 1 (default: the model's recipe)")
    p.add_argument("--steps", type=steps_count, metavar="N",
                   help=f"train exactly N optimizer steps (1 <= N <= {MAX_STEPS:,}) instead of --epochs, whatever the "
                        "train size; the last pass over the subset is cut short (default: the recipe's epochs)")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help=f"examples per step, >= 1; >= 2 for {batchnorm_help()} (default: the model's recipe)")
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
    p.add_argument("--eval-every", type=nonneg_int, default=0, metavar="N",
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
        f"accuracy {result.accuracy:.4f} on {result.test_size} test images; {_budget(result)}, "
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


def _budget(result) -> str:
    """How long the trial trained: "15 epochs (165 steps)", or "2,000 steps (181.8 epochs)" under a steps budget."""
    if result.config.steps is None:
        return f"{result.epochs} epochs ({result.steps:,} steps)"
    return f"{result.steps:,} steps ({result.epochs_trained:.4g} epochs)"


def _trial_command(args: argparse.Namespace) -> int:
    malloc_tuning_enabled()  # a bad SWEEP_KEEP_FREED_MEMORY stops here, before any work
    params = {m.param.field: getattr(args, m.param.field) for m in NOISE_MODES.values() if m.param is not None}
    config = TrialConfig(
        dataset=args.dataset, model=args.model, noise_mode=args.noise_mode, noise_fraction=args.noise,
        train_size=args.train_size, seed=args.seed, subset_mode=args.subset_mode, **params,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup=args.warmup, ema=args.ema, steps=args.steps,
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

