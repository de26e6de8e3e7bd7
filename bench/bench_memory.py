"""Host memory of a sweep worker: one copy of the dataset, not one per trial.

In a fresh process: peak and current resident memory (Linux /proc/self/status VmHWM, VmRSS) after
the imports, after loading the full CIFAR-10 (60,000 x 3 x 32 x 32 uint8 = 176 MiB of images), and
after each of ``--trials`` trials in a row. A trial copies its training subset (fancy indexing: the
trial's own, freed after) and holds the model and optimizer; if the dataset were copied per trial,
current memory would climb by 176 MiB a trial.

    python bench/bench_memory.py --trials 3                # from the repository root; ~2 min
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root


def memory_mib() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return {"rss_mib": values["VmRSS"], "peak_rss_mib": values["VmHWM"]}


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--trials", type=int, default=3, help="trials in a row (>= 1)")
    parser.add_argument("--train-size", type=int, default=10_000,
                        help="images per trial, 1-50000 (the subset copy scales with it)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per trial (>= 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (>= 1)")
    args = parser.parse_args(argv)
    for name, low, high in (("trials", 1, None), ("train_size", 1, 50_000), ("epochs", 1, None),
                            ("threads", 1, None)):
        value = getattr(args, name)
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            parser.error(f"--{name.replace('_', '-')} must be {allowed}, got {value}")
    if not (Path(args.data) / "train.parquet").is_file():
        print(f"error: {Path(args.data) / 'train.parquet'} not found; pass --data DIR with train/test.parquet",
              file=sys.stderr)
        return 2
    if not Path("/proc/self/status").is_file():
        print("error: needs Linux /proc/self/status for VmRSS/VmHWM", file=sys.stderr)
        return 2

    import torch  # noqa: F401  (counted in the imports line)

    from sweep.engine.config import TrialConfig
    from sweep.engine.datasets import load_dataset
    from sweep.engine.trial import run_trial

    rows = [("imports (torch, sweep)", memory_mib(), 0.0)]
    started = time.perf_counter()
    spec = f"parquet:{args.data}"
    dataset = load_dataset(spec)  # from the disk cache when warm
    arrays = sum(a.nbytes for a in (dataset.train_images, dataset.test_images, dataset.train_labels,
                                    dataset.test_labels)) / 2**20
    rows.append((f"dataset loaded ({arrays:.0f} MiB of arrays)", memory_mib(), time.perf_counter() - started))
    for seed in range(args.trials):
        started = time.perf_counter()
        config = TrialConfig(dataset=spec, model="blog_cnn", train_size=args.train_size, epochs=args.epochs,
                             seed=seed, num_threads=args.threads, device="cpu")
        result = run_trial(config, load_dataset(spec))  # a memory hit: the same arrays
        del result
        gc.collect()
        rows.append((f"after trial {seed + 1} ({args.train_size} images)", memory_mib(), time.perf_counter() - started))
    print(f"{'state':<40} {'RSS MiB':>9} {'peak RSS MiB':>13} {'seconds':>8}")
    for name, mem, seconds in rows:
        print(f"{name:<40} {mem['rss_mib']:>9.0f} {mem['peak_rss_mib']:>13.0f} {seconds:>8.1f}")
    loaded, first, last = rows[1][1], rows[2][1], rows[-1][1]
    # The first trial also leaves the allocator's and oneDNN's caches behind; later trials reuse them.
    print(f"RSS after the first trial: {first['rss_mib'] - loaded['rss_mib']:+.0f} MiB over the loaded worker "
          f"(allocator and kernel caches, kept for reuse); from trial 1 to trial {args.trials}: "
          f"{last['rss_mib'] - first['rss_mib']:+.0f} MiB (a dataset copy per trial would add about "
          f"{arrays:.0f} MiB each); peak above loaded: {last['peak_rss_mib'] - loaded['rss_mib']:+.0f} MiB "
          "(one trial's working set: its subset copy, activations and gradients)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
