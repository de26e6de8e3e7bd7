"""The cost of learning curves: the training loop with and without its per-step counts, side by side.

    python bench/bench_curves.py                          # digits, then 5,000 CIFAR-10 images if present
    python bench/bench_curves.py --datasets digits --repeats 5

For each dataset the same trial (blog_cnn, its recipe, noise 0.4, seed 0, one thread) trains
``--repeats`` times in each of three variants, interleaved (A, B, C, A, B, C, ...) so that a busy
machine slows all three alike: ``plain`` (no curves: the loop as it was), ``curves`` (the per-step
argmax, per-example loss and index_add_ on the device, one host copy per epoch: what every trial
now does), and ``curves+test`` (also scoring the test set after every epoch, ``eval_every = 1``).
Prints the median training seconds of each and the ratios to ``plain``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _cli import ROOT, OneLineParser

CIFAR = f"parquet:{ROOT.parent / 'shared' / 'data' / 'cifar10-jpeg'}"


def train_once(dataset, train_size: int, epochs: int, variant: str) -> float:
    import numpy as np
    import torch

    from sweep.engine.config import TrialConfig
    from sweep.engine.curves import CurveCounter
    from sweep.engine.models import build_model
    from sweep.engine.recipes import recipe_for
    from sweep.engine.rng import torch_generator, torch_seed
    from sweep.engine.train import normalize_stats, predict_probs, train_model
    from sweep.engine.trial import device_images, prepare_labels

    config = TrialConfig(dataset="bench", noise_fraction=0.4, train_size=train_size, epochs=epochs, device="cpu")
    _, subset, noisy = prepare_labels(config, dataset)
    recipe = recipe_for(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(0, "init"))
        model = build_model("blog_cnn", dataset.image_shape, dataset.num_classes)
    train_all, test_x = device_images(dataset, torch.device("cpu"))
    x = train_all.index_select(0, torch.from_numpy(subset))
    y = torch.from_numpy(noisy.labels)
    mean, std = normalize_stats(x)
    curves = None if variant == "plain" else CurveCounter(
        torch.from_numpy(np.asarray(dataset.train_labels[subset])), y, dataset.num_classes,
        label_smoothing=recipe.label_smoothing)

    def evaluate(m):
        pred = predict_probs(m, test_x, mean=mean, std=std, tta=False).argmax(dim=1).numpy()
        return np.bincount(dataset.test_labels, minlength=dataset.num_classes), np.bincount(
            dataset.test_labels[pred == dataset.test_labels], minlength=dataset.num_classes)

    started = time.perf_counter()
    train_model(model, x, y, recipe=recipe, mean=mean, std=std, augment=dataset.augment,
                generator=torch_generator(0, "batches"), curves=curves,
                on_epoch=None if curves is None else (lambda stats: None),
                evaluate=evaluate if variant == "curves+test" else None, eval_every=1)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="bench_curves.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,cifar5k",
                        help="comma list of digits and cifar5k (5,000 images of ../shared/data/cifar10-jpeg)")
    parser.add_argument("--repeats", type=int, default=3, help="trainings per variant, >= 1")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training, >= 1")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        parser.error(f"--repeats and --epochs must be >= 1, got {args.repeats} and {args.epochs}")
    import torch

    from sweep.engine.datasets import load_dataset

    torch.set_num_threads(1)
    for name in args.datasets.split(","):
        if name not in ("digits", "cifar5k"):
            parser.error(f"unknown dataset {name!r}; allowed: digits, cifar5k")
        dataset = load_dataset("digits" if name == "digits" else CIFAR)
        train_size = dataset.num_train if name == "digits" else 5000
        times: dict[str, list[float]] = {"plain": [], "curves": [], "curves+test": []}
        train_once(dataset, train_size, 1, "plain")  # warm-up: first-call costs out of the timings
        for _ in range(args.repeats):
            for variant in times:
                times[variant].append(train_once(dataset, train_size, args.epochs, variant))
        base = statistics.median(times["plain"])
        print(f"{name}: {train_size} images, {args.epochs} epochs, blog_cnn, 1 thread, n={args.repeats} each")
        for variant, values in times.items():
            median = statistics.median(values)
            print(f"  {variant:<12} median {median:6.2f} s  (min {min(values):.2f}, max {max(values):.2f})  "
                  f"x{median / base:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
