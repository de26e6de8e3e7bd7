"""Results at 100,000 trials: load and rank the compacted layout against the per-trial one, target 30 s.

Writes 100,000 synthetic trials the way the sweep does (one Parquet file per trial in OUT/confusion
and OUT/trials: 10 noise x 10 sizes x 1,000 seeds, K = 10, 10,000,000 confusion rows; not timed),
then times, in one process and on the same data: scan_done, load_results and sensitivity_ranking
(noise and size) on the per-trial layout; the compaction (``sweep compact``); then scan_done, load
and ranking on the compacted layout, and checks that both layouts load to the identical table.
The folder is compacted in place. Run by hand:

    python bench/bench_compact.py               # about 5 min to write, then 10-15 min timed
    python bench/bench_compact.py --seeds 10    # a smaller grid (1,000 trials)
    python bench/bench_compact.py --out DIR     # reuse DIR if it holds the per-trial files already
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tempfile
import time
import warnings

TARGET_S = 30.0
NOISE = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)  # the blog preset's noise levels
FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def timed(name: str, step, rows: list) -> object:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append((name, wall, cpu))
    print(f"  {name:<38} {wall:8.2f} {cpu:8.2f}   load average {os.getloadavg()[0]:.1f}", flush=True)
    return result


def load_and_rank(out: str, layout: str, rows: list):
    from analysis import load_results, sensitivity_ranking

    df = timed(f"{layout}: load_results", lambda: load_results(out), rows)
    for factor in ("noise", "size"):
        timed(f"{layout}: sensitivity_ranking({factor})", lambda: sensitivity_ranking(df, factor=factor), rows)
    return df


def main() -> None:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per cell; 1,000 x 10 x 10 = 100,000 trials")
    parser.add_argument("--out", default=None, help="results folder to use (and keep) instead of a temp one")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")

    from analysis import SyntheticSpec, write_synthetic_results
    from sweep.distributed.compact import compact_folder
    from sweep.distributed.scan import scan_done
    from sweep.distributed.store import open_output

    spec = SyntheticSpec(noise_fractions=NOISE, train_fractions=FRACTIONS, n_seeds=args.seeds)
    trials = len(NOISE) * len(FRACTIONS) * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "out")
        folder = os.path.join(out, "confusion")
        if not os.path.isdir(folder) or len(os.listdir(folder)) != trials:
            start = time.perf_counter()
            write_synthetic_results(out, spec)
            print(f"wrote {trials:,} trials ({trials * 100:,} confusion rows) in {time.perf_counter() - start:.0f} s "
                  "(not timed)")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}")
        print(f"load average before timing (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
              " -- other work on the machine inflates wall seconds; CPU seconds are less affected")
        print(f"  {'step':<38} {'wall s':>8} {'CPU s':>8}")
        rows: list = []
        output = open_output(out)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a silent skip would make the timing meaningless
            done = timed("per-trial: scan_done", lambda: scan_done(output), rows)
            assert len(done.done) == trials and not done.corrupt
            before = load_and_rank(out, "per-trial", rows)
            result = timed("compaction (sweep compact)", lambda: compact_folder(out), rows)
            assert result.trials == trials, result
            done = timed("compacted: scan_done", lambda: scan_done(output), rows)
            assert len(done.done) == trials and not done.corrupt
            after = load_and_rank(out, "compacted", rows)
        assert after.equals(before), "the two layouts loaded to different tables"
        files = {d: len(os.listdir(os.path.join(out, d))) for d in ("confusion", "trials")}
    total = {layout: sum(w for name, w, _ in rows if name.startswith(layout) and "scan" not in name)
             for layout in ("per-trial", "compacted")}
    cpu = {layout: sum(c for name, _, c in rows if name.startswith(layout) and "scan" not in name)
           for layout in ("per-trial", "compacted")}
    print(f"identical tables from both layouts: {len(after):,} rows; compacted files: {files}")
    for layout in total:
        print(f"load + rank, {layout}: {total[layout]:.2f} s wall, {cpu[layout]:.2f} s CPU")
    verdict = "met" if total["compacted"] <= TARGET_S else "MISSED"
    print(f"compacted load + rank {total['compacted']:.2f} s: target <= {TARGET_S:.0f} s wall {verdict}; "
          f"{total['per-trial'] / total['compacted']:.1f}x faster than per-trial")


if __name__ == "__main__":
    main()
