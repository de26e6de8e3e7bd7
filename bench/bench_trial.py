"""The project's trial against the plain baseline, side by side in one run on real CIFAR-10.

Both train blog_cnn (Adam, lr 1e-3, batch 128) on the same ``--train-size`` examples of the same
seed for ``--epochs`` epochs, then classify the whole 10,000-image test set. Rounds alternate the
variants (baseline, project at each ``--threads``, ...) ``--n`` times with seeds 0..n-1, so all see
the same machine load; ratios are of medians, and the per-round ratios give their spread.

Every variant runs in a fresh Python process of its own, timed inside that process. The project's
trial changes process-wide settings (its thread count; glibc's allocator thresholds, see
sweep/allocator.py), and the baseline must not inherit them: a user's script has neither.

End to end means: the baseline reads the Parquet and decodes its JPEGs every trial (as a user's
script does every time it runs); the project's trial uses the dataset a sweep worker already holds
(its process loads the disk cache first, untimed: 0.2-0.3 s once per worker). The trial itself is
the worker's first, so it pays any first-call costs. The one-time costs are measured once and
printed apart: decoding all 60,000 JPEGs into the disk cache, and loading that cache afresh.

Variants:

- ``baseline``: torch's default thread count (all cores), or ``--baseline-threads``.
- ``baseline_alloc`` (with ``--baseline-allocator``): the same script with the project's allocator
  setting applied first, to show how much of the gap that one setting is.
- ``project_Nt``: ``run_trial`` on N threads, for each N of ``--threads``.
- ``project_1t_xK`` (with ``--concurrent K``, K >= 2): K one-thread trials at once in K processes,
  as a sweep packs a machine (one trial per core); its seconds are the wall clock from the earliest
  start to the latest end of the K timed trials (absolute times each process reports), divided by
  K: seconds per trial of this machine's throughput.

With ``--warm`` every process first runs one untimed trial of its own kind (seed + 1000), then the
timed one: the steady state of a sweep worker, which pays its first-trial warm-up once, against a
script that trains trial after trial in one process (the baseline still reads and decodes its
JPEGs for each trial).

    python bench/bench_trial.py --n 3 --threads 1 2 --concurrent 2 --baseline-allocator
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for baseline_trial


def time_one_time_loads(spec: str) -> dict[str, float]:
    """Seconds to decode the dataset into an empty disk cache, and to load that cache afresh."""
    from sweep.engine.datasets import cache_stats, clear_memory_cache, load_dataset

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


def child(args: argparse.Namespace) -> int:
    """One variant in this fresh process; prints one JSON line."""
    import torch

    if args.child in ("baseline", "baseline_alloc"):
        from baseline_trial import run_baseline

        if args.child == "baseline_alloc":
            from sweep.engine.malloc_tuning import retain_freed_memory

            assert retain_freed_memory()
        if args.child_threads:
            torch.set_num_threads(args.child_threads)
        threads = torch.get_num_threads()
        if args.warm:
            run_baseline(args.data, train_size=args.train_size, epochs=args.epochs, seed=args.seed + 1000,
                         num_workers=args.baseline_workers)
        start_time = time.time()
        out = run_baseline(args.data, train_size=args.train_size, epochs=args.epochs, seed=args.seed,
                           num_workers=args.baseline_workers)
        end_time = time.time()
        print(json.dumps({**out, "threads": threads, "start_time": start_time, "end_time": end_time}), flush=True)
        return 0
    from sweep.engine.config import TrialConfig
    from sweep.engine.datasets import load_dataset
    from sweep.engine.trial import run_trial

    spec = f"parquet:{args.data}"
    dataset = load_dataset(spec)  # what a sweep worker holds before its first trial
    config = TrialConfig(dataset=spec, model="blog_cnn", train_size=args.train_size, epochs=args.epochs,
                         seed=args.seed, num_threads=args.child_threads, device="cpu")
    if args.warm:
        run_trial(config.replace(seed=args.seed + 1000), dataset)
    start_time = time.time()  # absolute (Unix) times: comparable across processes
    started = time.perf_counter()
    result = run_trial(config, dataset)
    wall = time.perf_counter() - started
    end_time = time.time()
    print(json.dumps({"seconds": wall, "train_seconds": result.train_seconds, "accuracy": result.accuracy,
                      "threads": args.child_threads, "start_time": start_time, "end_time": end_time}), flush=True)
    return 0


def spawn(args: argparse.Namespace, variant: str, seed: int, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--seed", str(seed),
               "--data", str(args.data), "--train-size", str(args.train_size), "--epochs", str(args.epochs),
               "--baseline-workers", str(args.baseline_workers)]
    if args.warm:
        command.append("--warm")
    if threads:
        command += ["--child-threads", str(threads)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen) -> dict:
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"error: a benchmark process failed (exit code {process.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--n", type=int, default=3, help="rounds; each runs every variant once (>= 1)")
    parser.add_argument("--train-size", type=int, default=5000, help="training images per trial, 1-50000")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (>= 1)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch threads of the project's trial, each >= 1; 1 is the sweep's per-slot setting "
                             "(cpus = 1)")
    parser.add_argument("--concurrent", type=int, default=0,
                        help="also run this many (>= 2) one-thread project trials at once (a sweep's packing); "
                             "0: none")
    parser.add_argument("--baseline-threads", type=int, default=None,
                        help="torch threads of the baseline, >= 1 (default: torch's default, all cores)")
    parser.add_argument("--baseline-workers", type=int, default=0,
                        help="DataLoader workers of the baseline, >= 0 "
                             "(0: on 2 cores, workers compete with training)")
    parser.add_argument("--baseline-allocator", action="store_true",
                        help="also run the baseline with the project's allocator setting")
    parser.add_argument("--warm", action="store_true",
                        help="time each process's second trial (a warm sweep worker / a script's later trials)")
    parser.add_argument("--skip-load-timing", action="store_true", help="do not time the one-time decode")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.data = Path(args.data).resolve()
    if args.child:
        return child(args)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    if not 1 <= args.train_size <= 50_000:
        parser.error(f"--train-size must be in [1, 50000] (CIFAR-10's training images), got {args.train_size}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if any(t < 1 for t in args.threads):
        parser.error(f"--threads values must each be >= 1, got {' '.join(map(str, args.threads))}")
    if len(set(args.threads)) != len(args.threads):
        parser.error(f"--threads values must be distinct, got {' '.join(map(str, args.threads))}")
    if args.concurrent < 0 or args.concurrent == 1:
        parser.error(f"--concurrent must be 0 (none) or >= 2 (1 would repeat project_1t), got {args.concurrent}")
    if args.baseline_threads is not None and args.baseline_threads < 1:
        parser.error(f"--baseline-threads must be >= 1, got {args.baseline_threads}")
    if args.baseline_workers < 0:
        parser.error(f"--baseline-workers must be >= 0, got {args.baseline_workers}")
    if not (args.data / "train.parquet").is_file():
        print(f"error: {args.data / 'train.parquet'} not found; pass --data DIR with train/test.parquet",
              file=sys.stderr)
        return 2
    import torch

    loads = {} if args.skip_load_timing else time_one_time_loads(f"parquet:{args.data}")
    if not args.skip_load_timing:
        from sweep.engine.datasets import load_dataset

        load_dataset(f"parquet:{args.data}")  # fills the default disk cache the children read

    plan: list[tuple[str, str, int | None]] = [("baseline", "baseline", args.baseline_threads)]
    if args.baseline_allocator:
        plan.append(("baseline_alloc", "baseline_alloc", args.baseline_threads))
    plan += [(f"project_{t}t", "project", t) for t in args.threads]
    variants = [name for name, _, _ in plan]
    if args.concurrent:
        variants.append(f"project_1t_x{args.concurrent}")
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    accuracy: dict[str, list[float]] = {v: [] for v in variants}
    details: dict[str, list[dict]] = {v: [] for v in variants}
    for seed in range(args.n):
        for name, kind, threads in plan:
            out = collect(spawn(args, kind, seed, threads))
            seconds[name].append(out["seconds"])
            accuracy[name].append(out["accuracy"])
            details[name].append(out)
            parts = ", ".join(f"{k.removesuffix('_seconds')} {out[k]:.1f}" for k in out
                              if k.endswith("_seconds"))
            print(f"round {seed}: {name} ({out['threads']} threads) {out['seconds']:.1f} s ({parts}) "
                  f"acc {out['accuracy']:.4f}", flush=True)
        if args.concurrent:
            name = f"project_1t_x{args.concurrent}"
            started = time.perf_counter()
            # Seeds seed, seed + n, seed + 2n, ...: distinct trials, none repeated across rounds.
            procs = [spawn(args, "project", seed + k * args.n, 1) for k in range(args.concurrent)]
            outs = [collect(p) for p in procs]
            # Wall clock from the first timed trial's start to the last one's end (absolute times
            # from each process: process start and dataset load are a worker's one-time costs, and
            # the K windows need not start together), divided by the trials it delivered.
            window = max(o["end_time"] for o in outs) - min(o["start_time"] for o in outs)
            per_trial = window / args.concurrent
            seconds[name].append(per_trial)
            accuracy[name].extend(o["accuracy"] for o in outs)
            skew = max(o["start_time"] for o in outs) - min(o["start_time"] for o in outs)
            details[name].append({"trials": outs, "outer_wall_seconds": time.perf_counter() - started,
                                  "window_seconds": window, "start_skew_seconds": skew,
                                  "slowest_trial_seconds": max(o["seconds"] for o in outs)})
            each = ", ".join(f"{o['seconds']:.1f}" for o in outs)
            accs = ", ".join(f"{o['accuracy']:.4f}" for o in outs)
            print(f"round {seed}: {name}: {args.concurrent} trials at once, each {each} s, starts "
                  f"{skew:.1f} s apart, together {window:.1f} s -> {per_trial:.1f} s per trial of throughput; "
                  f"acc {accs}", flush=True)

    print()
    baseline_threads = details["baseline"][0]["threads"]
    print(f"blog_cnn, {args.train_size} train images, {args.epochs} epochs, 10,000 test images; "
          f"{'second (warm) trial of each process' if args.warm else 'first trial of each process'}; "
          f"baseline: {baseline_threads} threads, DataLoader workers {args.baseline_workers}; torch {torch.__version__}")
    if loads:
        print(f"one-time: decode 60,000 JPEGs into the disk cache {loads['decode_seconds']:.1f} s; "
              f"load that cache in a fresh worker {loads['disk_cache_load_seconds']:.2f} s")
    summary = {}
    for v in variants:
        print(f"{v:>16}: seconds per trial {spread(seconds[v])}; accuracy mean {statistics.mean(accuracy[v]):.4f} "
              f"(min {min(accuracy[v]):.4f}, max {max(accuracy[v]):.4f}, n={len(accuracy[v])})")
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
            "torch": torch.__version__, "one_time": loads, "seconds": seconds, "accuracy": accuracy,
            "details": details, "ratios": summary,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
