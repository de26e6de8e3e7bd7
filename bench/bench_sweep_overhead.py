"""How much of a sweep's wall clock is the sweep machinery rather than training?

Runs the quick preset through the real `sweep run` command (a fresh process, its own local Ray, a
temporary OUT) and prints, side by side from that one run:

    compute   sum of every trial's own wall clock (TrialResult.seconds, from OUT/trials)
    wall      the whole `sweep run` command, as the user waits for it (Ray start included)
    span      first trial start to last trial end (the Tune phase, without Ray/driver start-up)
    slots     trials that could run at once (CPUs / CPUs per trial)
    overhead  wall x slots / compute - 1   (and the same for span: the steady-state overhead)

plus how many worker processes served the trials (each decodes the dataset once; actors are reused).

    python bench/bench_sweep_overhead.py [--preset quick] [--repeat 1] [--keep OUT]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def sweep_command() -> list[str]:
    """`python -m sweep.cli` when the project's parser has the run command, else the sweep's own."""
    from sweep import cli

    parser = cli.build_parser()
    has_run = any(getattr(a, "choices", None) and "run" in a.choices for a in parser._actions)
    return [sys.executable, "-m", "sweep.cli" if has_run else "sweep.sweep_cli"]


def one_run(preset: str, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(sweep_command() + ["run", "--preset", preset, "--out", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"sweep run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    slots = int(re.search(r"(\d+) at a time", proc.stderr).group(1))
    trials = pd.read_parquet(out / "trials")
    compute = float(trials.seconds.sum())
    span = (trials.finished_at.max() - trials.started_at.min()).total_seconds()
    return {"trials": len(trials), "compute": compute, "wall": wall, "span": span, "slots": slots,
            "overhead": wall * slots / compute - 1, "steady": span * slots / compute - 1,
            "processes": trials.worker_pid.nunique(), "train": float(trials.train_seconds.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="preset to run (default: quick)")
    parser.add_argument("--repeat", type=int, default=1, help="independent runs, each into a fresh OUT (default: 1)")
    parser.add_argument("--keep", metavar="OUT", help="keep the last run's results here")
    args = parser.parse_args()

    rows = []
    for i in range(args.repeat):
        folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
        try:
            rows.append(one_run(args.preset, folder / "out"))
            if args.keep and i == args.repeat - 1:
                shutil.copytree(folder / "out", args.keep, dirs_exist_ok=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    table = pd.DataFrame(rows)
    print(f"preset {args.preset}, n={len(table)} run(s), each a fresh `sweep run` with its own local Ray")
    for _, r in table.iterrows():
        print(f"  {int(r.trials)} trials  compute {r.compute:6.1f} s (training {r.train:6.1f} s)  "
              f"wall {r.wall:6.1f} s  span {r.span:6.1f} s  slots {int(r.slots)}  "
              f"overhead {r.overhead:+.0%} (steady state {r.steady:+.0%})  "
              f"worker processes {int(r.processes)}")
    if len(table) > 1:
        print(f"  mean overhead {table.overhead.mean():+.0%}, steady state {table.steady.mean():+.0%}")


if __name__ == "__main__":
    main()
