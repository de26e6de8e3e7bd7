"""The ``report`` subcommand: ``sweep report OUT [--to DIR]`` or ``python -m analysis report OUT``.

``register(subparsers)`` adds it to any argparse program; the parsed namespace carries the handler
as ``args.handler`` (returns an int exit code). Bad input becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

DESCRIPTION = """\
Turn a sweep's results folder into a report: PNG figures, CSV tables and one self-contained
HTML page (OUT/report/index.html by default; it opens offline). It shows confusion heatmaps,
change against the clean full-size baseline, per-class recall curves against noise and size with
breakpoints, sensitivity rankings with bootstrap CIs, directional confusions, noise against less
data and the iso-accuracy exchange rate. Sections the grid cannot support are replaced by a note.
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers()``)."""
    parser = subparsers.add_parser("report", help="write figures, tables and an HTML report of a results folder",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT", help="results folder written by `sweep run` (holds confusion/ "
                        "and trials/); a local path or a pyarrow URI such as s3://bucket/out")
    parser.add_argument("--to", metavar="DIR", default=None,
                        help="folder for the report (created); default OUT/report")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the seeds for every interval and test (default 1000)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=run_report, report_prog=parser.prog)
    return parser


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``report``: 0 on success, 2 on bad input (one line on stderr, nothing written)."""
    from .report import write_report  # matplotlib only when a report is asked for

    prog = getattr(args, "report_prog", "report")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # loader warnings reach the page as notes
            index = write_report(args.out, to=args.to, n_boot=args.n_boot,
                                 progress=None if args.quiet else lambda line: print(line, flush=True))
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"report: open {index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="analysis", description="Analyse class-fragility sweep results.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    return args.handler(args)
