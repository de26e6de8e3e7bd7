"""``python -m analysis report OUT [--to DIR]``: the report without the sweep package."""

import sys

from .cli import main

sys.exit(main())
