"""What every bench script shares: the repository root on sys.path, and sweep's one-line argument errors.

Imported as ``from _cli import OneLineParser`` (the scripts run as ``python bench/NAME.py``, so this
folder is on sys.path): a bad argument is one line on stderr and exit code 2, as in the ``sweep`` CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sweep.cli import OneLineParser  # noqa: E402

__all__ = ["ROOT", "OneLineParser"]
