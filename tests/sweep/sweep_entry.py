"""Run the `sweep` command line in-process or as a subprocess, for the tests.

Uses ``sweep.cli.main`` (the console script's entry). While the lead's parser does not yet register
the sweep subcommands, it falls back to a parser with only ``sweep.sweep_cli.register`` and the same
error handling (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    from sweep import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "run" in commands:
        return cli.main(argv)
    from sweep import sweep_cli

    parser = argparse.ArgumentParser(prog="sweep")
    sweep_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"sweep {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
