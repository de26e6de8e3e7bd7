"""The project's trial against the plain baseline, side by side in one process on real CIFAR-10.

Both train blog_cnn (Adam, lr 1e-3, batch 128) on the same ``--train-size`` examples of the same
seed for ``--epochs`` epochs, then classify the whole 10,000-image test set. Runs alternate
(baseline, project at each ``--threads``, baseline, ...) ``--n`` times with seeds 0..n-1, so
both see the same machine load; the ratio is of medians, and the per-round ratios give its spread.

End to end means: the baseline reads the Parquet and decodes its JPEGs every trial (as a user's
script does every time it runs); the project's trial uses the dataset a sweep worker already holds
(decoded once, memoized in the process). The one-time costs are measured once and printed apart:
decoding all 60,000 JPEGs into the disk cache, and loading that cache in a fresh worker.

    python bench/bench_trial.py --n 3                # from the repository root; ~10 min on 2 cores
    python bench/bench_trial.py --n 3 --threads 1 2  # also the project's trial on 2 threads
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for baseline_trial

from baseline_trial import run_baseline  # noqa: E402
from sweep.config import TrialConfig  # noqa: E402
from sweep.datasets import cache_stats, clear_memory_cache, load_dataset  # noqa: E402
from sweep.trial import run_trial  # noqa: E402


def time_one_time_loads(spec: str) -> dict[str, float]:
    """Seconds to decode the dataset into an empty disk cache, and to load that cache afresh."""
    with tempfile.TemporaryDirectory(prefix="bench-trial-cache-") as cache_dir:
        clear_memory_cache()
        started = time.perf_counter()
        load_dataset(spec, cache_dir=cache_dir)
        decoded = time.perf_counter()
        clear_memory_cache()
        load_dataset(spec, cache_dir=cache_dir)
        from_disk = time.perf_counter()
    assert cache_stats()["decodes"] >= 1 and cache_stats()["disk_hits"] >= 1
    return {"decode_seconds": decoded - started, "disk_cache_load_seconds": from_disk - decoded}


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--n", type=int, default=3, help="rounds; each runs every variant once (>= 1)")
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch threads of the project's trial; 1 is the sweep's per-slot setting (cpus = 1)")
    parser.add_argument("--baseline-threads", type=int, default=None,
                        help="torch threads of the baseline (default: torch's default, all cores)")
    parser.add_argument("--baseline-workers", type=int, default=0,
                        help="DataLoader workers of the baseline (0: on 2 cores, workers compete with training)")
    parser.add_argument("--skip-load-timing", action="store_true", help="do not time the one-time decode")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    data = Path(args.data)
    if not (data / "train.parquet").is_file():
        print(f"error: {data / 'train.parquet'} not found; pass --data DIR with train/test.parquet", file=sys.stderr)
        return 2
    spec = f"parquet:{data}"
    default_threads = torch.get_num_threads()
    baseline_threads = args.baseline_threads or default_threads

    loads = {} if args.skip_load_timing else time_one_time_loads(spec)
    dataset = load_dataset(spec)  # what a sweep worker holds: decoded once, memoized in the process

    variants = ["baseline"] + [f"project_{t}t" for t in args.threads]
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    accuracy: dict[str, list[float]] = {v: [] for v in variants}
    for seed in range(args.n):
        torch.set_num_threads(baseline_threads)
        out = run_baseline(data, train_size=args.train_size, epochs=args.epochs, seed=seed,
                           num_workers=args.baseline_workers)
        seconds["baseline"].append(out["seconds"])
        accuracy["baseline"].append(out["accuracy"])
        print(f"round {seed}: baseline {out['seconds']:.1f} s (load {out['load_seconds']:.1f}, train "
              f"{out['train_seconds']:.1f}, eval {out['eval_seconds']:.1f}) acc {out['accuracy']:.4f}", flush=True)
        for threads in args.threads:
            config = TrialConfig(dataset=spec, model="blog_cnn", train_size=args.train_size, epochs=args.epochs,
                                 seed=seed, num_threads=threads, device="cpu")
            started = time.perf_counter()
            result = run_trial(config, dataset)
            wall = time.perf_counter() - started
            name = f"project_{threads}t"
            seconds[name].append(wall)
            accuracy[name].append(result.accuracy)
            print(f"round {seed}: project ({threads} thread{'s' if threads > 1 else ''}) {wall:.1f} s (train "
                  f"{result.train_seconds:.1f}) acc {result.accuracy:.4f}", flush=True)
    torch.set_num_threads(default_threads)

    print()
    print(f"blog_cnn, {args.train_size} train images, {args.epochs} epochs, 10,000 test images; "
          f"baseline: {baseline_threads} threads, DataLoader workers {args.baseline_workers}")
    if loads:
        print(f"one-time: decode 60,000 JPEGs into the disk cache {loads['decode_seconds']:.1f} s; "
              f"load that cache in a fresh worker {loads['disk_cache_load_seconds']:.2f} s")
    summary = {}
    for v in variants:
        print(f"{v:>12}: seconds {spread(seconds[v])}; accuracy mean {statistics.mean(accuracy[v]):.4f} "
              f"(min {min(accuracy[v]):.4f}, max {max(accuracy[v]):.4f})")
    for v in variants[1:]:
        per_round = [b / p for b, p in zip(seconds["baseline"], seconds[v])]
        ratio = statistics.median(seconds["baseline"]) / statistics.median(seconds[v])
        gap = 100 * (statistics.mean(accuracy[v]) - statistics.mean(accuracy["baseline"]))
        print(f"ratio baseline / {v}: {ratio:.2f}x of medians; per round {', '.join(f'{r:.2f}' for r in per_round)}; "
              f"accuracy difference {gap:+.2f} points")
        summary[v] = {"ratio_of_medians": ratio, "per_round_ratios": per_round, "accuracy_points": gap}
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv,
            "torch": torch.__version__, "baseline_threads": baseline_threads, "one_time": loads,
            "seconds": seconds, "accuracy": accuracy, "ratios": summary,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
