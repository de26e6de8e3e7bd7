"""Run the real `sweep` command line (``sweep.cli.main``, the console script's entry) in-process or
as a subprocess, for the tests."""

from __future__ import annotations

import sys

from sweep.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
