"""The ``sweep`` command line: ``trial``, ``run``, ``status``, ``compact``, ``report``.

Bad input (ValueError, TypeError, a missing file) becomes one line on stderr and exit code 2,
with no traceback; set SWEEP_DEBUG=1 to see the traceback. A reader that leaves early
(``sweep trial | head -1``) is not an error: the rest of the output is discarded quietly and the
exit code is 0, as the work itself succeeded. Heavy imports (torch, Ray) happen inside the
handlers, so ``sweep --help`` is instant.

This module is the entry point (``sweep = "sweep.cli:main"``): the parser of every subcommand and
the error handling they share. The subcommands live in ``sweep.cli_trial`` (``trial``) and
``sweep.cli_sweep`` (``run``, ``status``, ``compact``), their shared argument types in
``sweep.cli_args``; ``report`` is registered by ``analysis.cli``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from analysis.cli import OneLineParser
from sweep.cli_sweep import add_sweep_parsers
from sweep.cli_trial import add_trial_parser


def build_parser() -> argparse.ArgumentParser:
    """The ``sweep`` parser: run, status, compact, report, trial, in the order ``sweep --help`` lists them."""
    parser = OneLineParser(
        prog="sweep",
        description=(
            "Which classes of a classifier are fragile: train under label noise and data reduction, "
            "record confusion matrices, analyse them with error bars."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from analysis import cli as analysis_cli  # light: matplotlib is imported inside its handler

    add_sweep_parsers(subparsers)
    analysis_cli.register(subparsers)
    add_trial_parser(subparsers)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' API
    """Warnings on the terminal as ``sweep: warning: ...``, one line, without the source line."""
    return f"sweep: warning: {' '.join(str(message).split())}\n"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that left shows up here, not at interpreter exit
        return code
    except BrokenPipeError:  # before OSError, its base class. `sweep trial | head -1`: the reader left
        # Python flushes stdout again at exit; point it at devnull so that flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except (ValueError, TypeError, OSError) as exc:  # OSError: missing files, permissions, a full disk
        if os.environ.get("SWEEP_DEBUG") == "1":
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"sweep {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweep {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
