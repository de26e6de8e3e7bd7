"""The ``report`` subcommand: ``sweep report OUT [--to DIR]`` or ``python -m analysis report OUT``;
``sweep report A B ... --to DIR`` writes one report over several results folders.

``register(subparsers)`` adds it to any argparse program; the parsed namespace carries the handler
as ``args.handler`` (returns an int exit code). Bad input becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

DESCRIPTION = """\
Turn a sweep's results folder into a report: PNG figures, CSV tables and one self-contained
HTML page (OUT/report/index.html by default; it opens offline). It opens with the findings in
sentences (also in findings.json, and printed at the end), each with its interval and whether the
seeds settle it. It then shows sensitivity rankings, confusion heatmaps,
change against the clean full-size baseline, per-class recall curves against noise and size with
breakpoints, directional confusions, noise against less data and the iso-accuracy exchange rate.
Sections the grid cannot support are replaced by a note.

Several folders (a model or a dataset per folder, e.g. `sweep report results/a results/b --to
ab`) make one report when they share their classes (same names, same order). With several
experiments each model is labelled experiment/model, and two models are compared only on the same
dataset, noise mode and levels.
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers()``)."""
    parser = subparsers.add_parser("report", help="write figures, tables and an HTML report of one or more results folders",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT", nargs="+", help="results folder written by `sweep run` (holds "
                        "confusion/ and trials/); a local path or a pyarrow URI such as s3://bucket/out. Several "
                        "folders sharing their classes make one report (then --to is required)")
    parser.add_argument("--to", metavar="DIR", default=None,
                        help="folder for the report (created); default OUT/report with one OUT, required with "
                             "several")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the seeds for every bootstrap interval, and the most sign "
                             "patterns the breakpoint test enumerates (an integer in [100, 100000]; default 1000)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=run_report, report_prog=parser.prog)
    return parser


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``report``: 0 on success, 2 on bad input (one line on stderr, nothing written)."""
    from .report import write_report  # matplotlib only when a report is asked for

    prog = getattr(args, "report_prog", "report")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # write_report puts its warnings on the page
            index = write_report(args.out[0] if len(args.out) == 1 else args.out, to=args.to, n_boot=args.n_boot,
                                 progress=None if args.quiet else lambda line: print(line, flush=True))
    except (ValueError, TypeError, OSError) as error:  # OSError: OUT unreadable, --to not a folder, ...
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print_findings(index.parent / "findings.json")
    print(f"report: open {index}")
    return 0


def print_findings(path) -> None:
    """The headline findings, one per line, marked + settled, ? not settled, - not answered (nothing if
    there is no findings.json). The per-class rows that a summary sentence stands for stay in the
    report and in findings.json / findings.csv."""
    import json
    from pathlib import Path

    if not Path(path).exists():
        return
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    headlines = [r for r in rows if r.get("headline", True)]
    settled = sum(bool(r["settled"]) for r in rows)
    print(f"report: {len(headlines)} headline findings of {len(rows)} ({settled} settled; all in {Path(path).name} "
          "and the report):")
    for r in headlines:
        mark = "+" if r["settled"] else "?" if not r["missing"] else "-"
        print(f"  {mark} {r['sentence']}")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong and what is allowed), exit code 2.

    The same as ``sweep``'s parser; kept here so ``analysis`` does not import ``sweep``.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="analysis", description="Analyse class-fragility sweep results.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    return args.handler(args)
