"""What verifying every result file by reading it costs `sweep run`'s start, against reading footers.

`sweep run` (and `sweep status`) scan OUT before anything starts: a file whose data pages are damaged
but whose footer is intact must count as corrupt, so the scan reads every file to its last value.
This writes N synthetic trials the way the sweep does (one Parquet file per trial in OUT/confusion
and OUT/trials; not timed) and times, alternating in one process, the scan as it is and a scan that
reads only the footers. Run by hand:

    python bench/bench_scan.py                  # 2,000 trials (K = 10), 3 rounds
    python bench/bench_scan.py --seeds 50 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from unittest import mock


def main() -> None:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per cell; 100 cells (default 20: 2,000 trials)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both scans (default 3)")
    args = parser.parse_args()
    if args.seeds < 1 or args.rounds < 1:
        parser.error(f"--seeds and --rounds must be >= 1, got {args.seeds} and {args.rounds}")

    import pyarrow.parquet as pq

    from analysis import SyntheticSpec, write_synthetic_results
    from sweep.distributed import scan as scan_module, store

    def footer_only(out, path):  # the scan before it read every page
        try:
            with out.fs.open_input_file(path) as fh:
                pq.ParquetFile(fh).metadata
            return True
        except Exception:
            return False

    with tempfile.TemporaryDirectory() as folder:
        spec = SyntheticSpec(n_seeds=args.seeds, noise_fractions=tuple(i / 10 for i in range(10)),
                             train_fractions=tuple(1 - i / 10 for i in range(10)))
        write_synthetic_results(os.path.join(folder, "out"), spec)
        out = store.open_output(os.path.join(folder, "out"))
        times: dict[str, list[float]] = {"read every page": [], "footer only": []}
        for _ in range(args.rounds):
            for name in times:
                with mock.patch.object(scan_module, "_opens", footer_only) if name == "footer only" else (
                        mock.patch.object(scan_module, "_opens", scan_module._opens)):
                    started = time.perf_counter()
                    scan = scan_module.scan_done(out)
                    times[name].append(time.perf_counter() - started)
                assert not scan.corrupt
        n = len(scan.done)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{n:,} trials ({2 * n:,} files), {args.rounds} alternating rounds, median seconds:")
    for name, values in times.items():
        print(f"  {name:16s} {statistics.median(values):6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    ratio = statistics.median(times["read every page"]) / statistics.median(times["footer only"])
    print(f"reading every page costs {ratio:.2f}x the footer scan")


if __name__ == "__main__":
    main()
