"""Load: thousands of very short trials through the real `sweep run`, watching the driver's memory
and open files, then checking the results are exact. Run by hand (about 15 minutes here), not in CI.

The grid is digits with `blog_cnn`, 50 training examples and 1 epoch per trial (each trial trains
for a few hundredths of a second and evaluates the 451 test images): 20 noise fractions x
TRIALS/20 seeds. While it runs, once a second, the benchmark samples

    committed  trials whose OUT/trials/ row exists
    driver     the `sweep run` process: resident memory now (VmRSS) and its peak so far (VmHWM),
               open file descriptors
    ray        every other process of the run (raylet, GCS, trial workers, ...): summed
               proportional memory (PSS: shared pages split, not counted once per process), and
               the most file descriptors any one of them holds

and prints them at the checkpoints (default 500 and 2,000 committed trials) and at the end, with
the check of the result: every trial exactly once, K x K confusion rows each, no temp files.

    python bench/bench_load.py [--trials 2000] [--checkpoints 500,2000] [--keep OUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

SPEC = """
name = "load"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [{noise}]
train_sizes = [50]
seeds = {seeds}
retries = 1

[training]
epochs = 1

[resources]
cpus = 1
device = "cpu"
"""
NOISE_LEVELS = 20


def status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (Ray's object store, libraries) split between processes,
    so that a sum over processes does not count them many times, as a sum of RSS would."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def session_pids(sid: int) -> list[int]:
    """Processes of the session the run was started in (the driver, its local Ray and workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


class Sampler(threading.Thread):
    def __init__(self, pid: int, out: Path, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.out, self.every_s = pid, out, every_s
        self.rows: list[dict[str, float]] = []
        self.stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            others = [p for p in session_pids(self.pid) if p != self.pid]
            try:
                committed = sum(1 for n in os.listdir(self.out / "trials") if n.endswith(".parquet")
                                and not n.startswith("."))
            except OSError:
                committed = 0
            self.rows.append({
                "seconds": time.monotonic() - self.started, "committed": committed,
                "driver_rss_mib": status_kib(self.pid, "VmRSS") / 1024,
                "driver_peak_mib": status_kib(self.pid, "VmHWM") / 1024,
                "driver_fds": open_fds(self.pid),
                "ray_pss_mib": sum(pss_kib(p) for p in others) / 1024,
                "ray_max_fds": max((open_fds(p) for p in others), default=0),
                "processes": len(others) + 1,
            })
            self.stop.wait(self.every_s)


def main() -> None:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000, help="trials in the grid, a multiple of 20 (default 2000)")
    parser.add_argument("--checkpoints", default="500,2000", help="committed-trial counts to report (default 500,2000)")
    parser.add_argument("--keep", metavar="OUT", help="write the results here instead of a temporary folder")
    args = parser.parse_args()
    if args.trials % NOISE_LEVELS:
        sys.exit(f"--trials must be a multiple of {NOISE_LEVELS}")

    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    out = Path(args.keep) if args.keep else folder / "out"
    spec = folder / "load.toml"
    noise = ", ".join(f"{i / NOISE_LEVELS:.2f}" for i in range(NOISE_LEVELS))
    spec.write_text(SPEC.format(noise=noise, seeds=args.trials // NOISE_LEVELS))
    command = [sys.executable, "-m", "sweep.cli", "run", str(spec), "--out", str(out), "--yes"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    print(f"{args.trials} trials: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    log = open(folder / "stderr.log", "w+")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)
    sampler = Sampler(proc.pid, out)
    sampler.start()
    code = proc.wait()
    wall = time.monotonic() - started
    sampler.stop.set()
    sampler.join()
    log.seek(0)
    stderr = log.read()
    samples = pd.DataFrame(sampler.rows)

    print(f"exit code {code}, wall {wall:.0f} s ({wall / args.trials * 1000:.0f} ms per trial); "
          f"{samples.processes.max():.0f} processes at most")
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    for n in checkpoints + [None]:
        upto = samples if n is None else samples[samples.committed <= n]
        at = samples[samples.committed >= n].head(1) if n is not None else samples.tail(1)
        if at.empty:
            print(f"  {n} trials: not reached")
            continue
        row = at.iloc[0]
        label = "end" if n is None else f"{n:,} trials"
        print(f"  {label:>13}: {row.seconds:5.0f} s; driver RSS {row.driver_rss_mib:5.0f} MiB (peak so far "
              f"{upto.driver_peak_mib.max():5.0f}), {upto.driver_fds.max():.0f} fds; Ray processes "
              f"{row.ray_pss_mib:5.0f} MiB (PSS), at most {upto.ray_max_fds.max():.0f} fds in one")

    trials = pd.read_parquet(out / "trials", columns=["trial_id"])
    confusion = pd.read_parquet(out / "confusion", columns=["trial_id"])
    hidden = [p.name for d in ("trials", "confusion") for p in (out / d).iterdir() if p.name.startswith(".")]
    exact = (len(trials) == args.trials and trials.trial_id.is_unique
             and (confusion.trial_id.value_counts() == 100).all() and confusion.trial_id.nunique() == args.trials)
    print(f"results: {len(trials)} trial rows ({trials.trial_id.nunique()} distinct), {len(confusion):,} "
          f"confusion rows, {len(hidden)} temp files -> {'exact' if exact and not hidden else 'NOT EXACT'}")
    if "Too many open files" in stderr:
        print("stderr mentions 'Too many open files'")
    if code != 0:
        print(stderr[-3000:])
    samples.to_csv(folder / "samples.csv", index=False)
    print(f"samples: {folder / 'samples.csv'}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
