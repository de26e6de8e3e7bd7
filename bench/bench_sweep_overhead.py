"""How much of a sweep's wall clock is the sweep machinery rather than training?

Runs a preset (default: quick) through the real `sweep run` command — a fresh process, its own
local Ray, a temporary OUT — and splits the wall clock the user waits for into:

    start-up  command start -> first trial starts training (Python and Ray start, Tune, the trial
              processes importing torch): a fixed cost, paid once per `sweep run`
    span      first trial start -> last trial end (the trials, and Tune between them)
    tail      last trial end -> prompt back (Ray shut down)

and compares them with ``compute``, the sum of every trial's own wall clock (TrialResult.seconds,
from OUT/trials), on ``slots`` trials at once:

    per-trial overhead   span x slots / compute - 1   what each trial costs beyond its own work:
                         Tune scheduling, the dataset lookup, Parquet writing. Target <= 10 %.
    end-to-end overhead  wall x slots / compute - 1   the same including the fixed start-up and
                         tail: large for a sweep of a minute, negligible for one of hours.

With ``--baseline-tree DIR`` (another checkout of this repository, e.g. made with
``git archive <commit> | tar -x -C DIR``) the same command also runs from DIR's ``sweep`` package,
alternating run by run, so the two are measured side by side under the same load.

    python bench/bench_sweep_overhead.py [--preset quick] [--repeat 3] [--baseline-tree DIR] [--keep OUT]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def one_run(preset: str, out: Path, tree: Path) -> dict[str, float]:
    """One `sweep run --preset PRESET --out OUT` with ``tree``'s sweep package first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    started_unix = time.time()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sweep.cli", "run", "--preset", preset, "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"sweep run from {tree} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    slots = int(re.search(r"(\d+) at a time", proc.stderr).group(1))
    trials = pd.read_parquet(out / "trials")
    compute = float(trials.seconds.sum())
    first = trials.started_at.min().timestamp() - started_unix
    last = trials.finished_at.max().timestamp() - started_unix
    span = last - first
    return {"trials": len(trials), "compute": compute, "train": float(trials.train_seconds.sum()),
            "wall": wall, "startup": first, "span": span, "tail": wall - last, "slots": slots,
            "per_trial": span * slots / compute - 1, "end_to_end": wall * slots / compute - 1,
            "processes": trials.worker_pid.nunique()}


def summary(rows: list[dict[str, float]]) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def spread(key: str, fmt: str) -> str:
        values = sorted(r[key] for r in rows)
        return f"{format(med(key), fmt)} ({format(values[0], fmt)}..{format(values[-1], fmt)})"

    return (f"median (min..max) of n={len(rows)}: wall {spread('wall', '.1f')} s, start-up "
            f"{spread('startup', '.1f')} s, tail {spread('tail', '.1f')} s; per-trial overhead "
            f"{spread('per_trial', '+.1%')}, end-to-end overhead {spread('end_to_end', '+.0%')}")


def main() -> None:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="preset to run (default: quick)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tree, each into a fresh OUT (default: 3)")
    parser.add_argument("--baseline-tree", type=Path, metavar="DIR",
                        help="another checkout to measure alternately with this one (default: none)")
    parser.add_argument("--keep", metavar="OUT", help="keep this tree's last run's results here")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.keep and Path(args.keep).exists() and not Path(args.keep).is_dir():
        parser.error(f"--keep {args.keep}: exists and is not a folder")

    trees = {"this tree": REPO}
    if args.baseline_tree:
        if not (args.baseline_tree / "sweep" / "cli.py").is_file():
            parser.error(f"--baseline-tree {args.baseline_tree}: not a checkout of this repository "
                         "(needs DIR/sweep/cli.py)")
        trees = {"baseline": args.baseline_tree.resolve(), **trees}
    for name, tree in trees.items():
        presets = tree / "sweep" / "distributed" / "presets"
        if presets.is_dir() and not (presets / f"{args.preset}.toml").is_file():  # an old tree may lack the folder
            allowed = ", ".join(sorted(p.stem for p in presets.glob("*.toml"))) or "none found"
            parser.error(f"--preset {args.preset!r} is not a preset of {name} ({tree}); allowed: {allowed}")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(args.repeat):
        for name, tree in trees.items():
            folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
            try:
                rows[name].append(one_run(args.preset, folder / "out", tree))
                if args.keep and name == "this tree" and i == args.repeat - 1:
                    shutil.copytree(folder / "out", args.keep, dirs_exist_ok=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            r = rows[name][-1]
            print(f"{name:9s} run {i + 1}: {int(r['trials'])} trials, compute {r['compute']:5.1f} s "
                  f"(training {r['train']:5.1f} s) on {int(r['slots'])} slots; wall {r['wall']:5.1f} s = "
                  f"start-up {r['startup']:4.1f} + span {r['span']:5.1f} + tail {r['tail']:3.1f}; overhead "
                  f"per trial {r['per_trial']:+.1%}, end to end {r['end_to_end']:+.0%}; "
                  f"{int(r['processes'])} worker processes", flush=True)
    print(f"\npreset {args.preset}; each run a fresh `sweep run` with its own local Ray; "
          "target: per-trial overhead <= 10 %")
    for name, tree in trees.items():
        print(f"{name:9s} ({tree}): {summary(rows[name])}")
    if args.baseline_tree:
        ratio = statistics.median(r["wall"] for r in rows["this tree"]) / statistics.median(
            r["wall"] for r in rows["baseline"])
        saved = statistics.median(r["startup"] + r["tail"] for r in rows["baseline"]) - statistics.median(
            r["startup"] + r["tail"] for r in rows["this tree"])
        print(f"this tree / baseline, median wall: {ratio:.2f}; fixed start-up + tail: {saved:+.1f} s saved")


if __name__ == "__main__":
    main()
