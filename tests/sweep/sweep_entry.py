"""Run the `sweep` command line in-process or as a subprocess, for the tests.

Uses ``sweep.cli.main`` (the console script's entry). While the lead's parser does not yet register
the sweep subcommands, it falls back to ``sweep.distributed.driver.main`` (the same commands, the same
one-line errors and exit codes).
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
    from sweep.distributed import driver

    return driver.main(argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
