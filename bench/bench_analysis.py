"""Analysis speed at scale: 10,000 synthetic trials (1,000,000 confusion rows, K = 10) against 30 s.

Writes the trials the way the sweep does (one Parquet file per trial in OUT/confusion and
OUT/trials; not timed), then times, in one process: load_results, sensitivity_ranking for both
factors and breakpoints for both factors (default bootstrap sizes). Run by hand:

    python bench/bench_analysis.py            # about 20 s to write, then the timed steps
    python bench/bench_analysis.py --seeds 20 # a smaller grid (2,000 trials)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings

from analysis import SyntheticSpec, breakpoints, load_results, sensitivity_ranking, write_synthetic_results

TARGET_S = 30.0
NOISE = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)  # the blog preset's noise levels
FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def main() -> None:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="seeds per cell; 100 x 10 x 10 = 10,000 trials")
    parser.add_argument("--out", default=None, help="reuse/keep this results folder instead of a temp one")
    args = parser.parse_args()
    spec = SyntheticSpec(noise_fractions=NOISE, train_fractions=FRACTIONS, n_seeds=args.seeds)
    trials = len(NOISE) * len(FRACTIONS) * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        if not os.path.isdir(os.path.join(out, "confusion")):
            start = time.perf_counter()
            write_synthetic_results(out, spec)
            print(f"wrote {trials:,} trials ({trials * 100:,} confusion rows) in {time.perf_counter() - start:.1f} s "
                  "(not timed)")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}")
        print(f"load average before timing (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
              " -- other work on the machine inflates wall seconds; CPU seconds are less affected")
        steps = [("load_results", lambda: load_results(out))]
        steps += [(f"sensitivity_ranking({f})", lambda f=f: sensitivity_ranking(df, factor=f))
                  for f in ("noise", "size")]
        steps += [(f"breakpoints({f})", lambda f=f: breakpoints(df, factor=f)) for f in ("noise", "size")]
        print(f"{'step':<30} {'wall s':>8} {'CPU s':>8}")
        wall_total = cpu_total = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a silent skip would make the timing meaningless
            for name, step in steps:
                wall, cpu = time.perf_counter(), time.process_time()
                result = step()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if name == "load_results":
                    df = result
                wall_total, cpu_total = wall_total + wall, cpu_total + cpu
                print(f"{name:<30} {wall:8.2f} {cpu:8.2f}")
    verdict = "met" if wall_total <= TARGET_S else "MISSED"
    print(f"{'total':<30} {wall_total:8.2f} {cpu_total:8.2f}   target <= {TARGET_S:.0f} s wall: {verdict} "
          f"({wall_total / TARGET_S:.2f} of the budget, {len(df):,} rows)")


if __name__ == "__main__":
    main()
