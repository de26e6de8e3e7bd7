"""The allocator's worker environment in a real sweep: `sweep run` on CIFAR-10 with and without it.

Each run is a fresh `sweep run` (its own local Ray, a temporary OUT) of 2 blog_cnn trials (5,000
images, 2 epochs, 1 CPU each, both at once on 2 cores); runs alternate with
``SWEEP_KEEP_FREED_MEMORY=0`` (glibc's defaults in the workers) and without it. Reported: each
trial's training seconds as the trials table records them, medians over runs.

    python bench/bench_sweep_allocator.py --repeat 2     # ~3 min on 2 cores
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

SPEC = """
name = "allocator-bench"
dataset = "parquet:{data}"
models = ["blog_cnn"]
noise_fractions = [0.0]
train_sizes = [5000]
seeds = 2

[training]
epochs = 2

[resources]
cpus = 1
device = "cpu"
"""


def one_run(data: Path, keep: bool) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-alloc-") as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(SPEC.format(data=data))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env["SWEEP_KEEP_FREED_MEMORY"] = "1" if keep else "0"
        done = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--out", f"{tmp}/out"],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: sweep run failed: {done.stderr.strip().splitlines()[-1:]}")
        return sorted(pd.read_parquet(f"{tmp}/out/trials").train_seconds.tolist())


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant (>= 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    data = Path(args.data).resolve()
    if not (data / "train.parquet").is_file():
        print(f"error: {data / 'train.parquet'} not found; pass --data DIR", file=sys.stderr)
        return 2
    seconds: dict[str, list[float]] = {"glibc defaults": [], "worker env (default)": []}
    for r in range(args.repeat):
        for name, keep in (("glibc defaults", False), ("worker env (default)", True)):
            trains = one_run(data, keep)
            seconds[name] += trains
            print(f"run {r}: {name}: training seconds of the 2 trials {', '.join(f'{t:.1f}' for t in trains)}",
                  flush=True)
    base = statistics.median(seconds["glibc defaults"])
    for name, values in seconds.items():
        med = statistics.median(values)
        print(f"{name:>22}: training s per trial median {med:.1f} (min {min(values):.1f}, max {max(values):.1f}, "
              f"n={len(values)}); {base / med:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
