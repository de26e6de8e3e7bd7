"""The ``sweep`` command line: ``trial``, ``run``, ``status``, ``report``.

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

from sweep.engine.malloc_tuning import enabled as allocator_enabled
from sweep.engine.config import MODEL_NAMES, NOISE_MODES, SUBSET_MODES, TrialConfig

DATASET_HELP = "digits (offline default) | cifar10 | parquet:DIR | imagefolder:DIR"


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


def parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """'cat:dog,dog:cat' -> (('cat', 'dog'), ('dog', 'cat'))."""
    pairs = []
    for item in text.split(","):
        source, sep, target = item.strip().partition(":")
        if not sep or not source or not target:
            raise argparse.ArgumentTypeError(f"noise pairs must look like 'cat:dog,truck:automobile', got {item!r}")
        pairs.append((source, target))
    return tuple(pairs)


def read_matrix(path: str) -> tuple[tuple[float, ...], ...]:
    """A K x K matrix from a .json (list of rows), .npy, or .csv/.txt (comma or space separated) file."""
    import numpy as np

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"noise matrix file {path!r} does not exist")
    allowed = "it must hold a K x K row-stochastic matrix (2-D numbers, one row per true class)"
    try:
        if file.suffix == ".json":
            matrix = np.asarray(json.loads(file.read_text()), dtype=float)
        elif file.suffix == ".npy":
            matrix = np.asarray(np.load(file, allow_pickle=False), dtype=float)
        else:
            with warnings.catch_warnings():  # an empty file warns before it fails: keep the error one line
                warnings.simplefilter("ignore")
                matrix = np.loadtxt(file, delimiter="," if "," in file.read_text() else None, ndmin=2)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"noise matrix file {path!r} is not a numeric matrix ({' '.join(str(exc).split())}); "
                         f"{allowed}") from None
    if matrix.ndim != 2 or matrix.size == 0:
        held = "no numbers" if matrix.size == 0 else f"a {matrix.ndim}-D array of shape {matrix.shape}"
        raise ValueError(f"noise matrix file {path!r} holds {held}; {allowed}")
    return tuple(tuple(float(v) for v in row) for row in matrix)


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
    p.add_argument("--noise-pairs", type=parse_pairs, metavar="SRC:DST,...",
                   help="flips for --noise-mode pairs (default: CIFAR-10's truck:automobile,bird:airplane,deer:horse,cat:dog,dog:cat)")
    p.add_argument("--noise-matrix", metavar="FILE",
                   help="K x K row-stochastic transition matrix for --noise-mode matrix (.json, .npy, .csv)")
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
    p.add_argument("--augment", choices=("on", "off"), help="random crop + flip (default: on, off for digits)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch CPU threads, >= 1 (default: torch's own, one per physical core unless "
                        "$OMP_NUM_THREADS says otherwise)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where torchvision datasets live (default: $SWEEP_DATA_DIR or "
                        "~/.cache/class-fragility-sweep/torchvision)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout instead of the summary")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
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
    allocator_enabled()  # a bad SWEEP_KEEP_FREED_MEMORY stops here, before any work
    config = TrialConfig(
        dataset=args.dataset, model=args.model, noise_mode=args.noise_mode, noise_fraction=args.noise,
        train_size=args.train_size, seed=args.seed, subset_mode=args.subset_mode,
        noise_pairs=args.noise_pairs,
        noise_matrix=read_matrix(args.noise_matrix) if args.noise_matrix else None,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        augment=None if args.augment is None else args.augment == "on",
        device=args.device, num_threads=args.threads, data_dir=args.data_dir,
    )
    from sweep.engine.datasets import load_dataset
    from sweep.engine.trial import prepare_labels, resolve_device, run_trial

    resolve_device(config.device)  # 'cuda' without CUDA fails here, before any output
    dataset = load_dataset(config.dataset, data_dir=config.data_dir)
    # Bad sizes, pairs or matrices, and a model that cannot take the images, fail here, before any output.
    prepare_labels(config, dataset)

    def on_epoch(epoch: int, epochs: int, loss: float, seconds: float) -> None:
        print(f"  epoch {epoch}/{epochs}  train loss {loss:.4f}  {seconds:.1f} s", file=sys.stderr, flush=True)

    if not args.quiet and not args.json:
        print(f"training {config.model} on {config.dataset} (trial {config.trial_id}) ...", file=sys.stderr, flush=True)
    result = run_trial(config, dataset, on_epoch=None if (args.quiet or args.json) else on_epoch)
    if args.json:
        print(json.dumps(result.to_json(), allow_nan=False))
    else:
        print(format_trial(result))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong and what is allowed), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


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
    from sweep.distributed import driver  # light: Ray and torch are imported inside its handlers

    driver.register(subparsers)
    analysis_cli.register(subparsers)
    _add_trial_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
