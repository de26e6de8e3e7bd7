"""Value checks shared by every boundary that validates input: the trial config, the spec, the CLI.

One definition each, so "a number" means the same everywhere: booleans are not numbers (TOML and
JSON ``true`` would otherwise pass as 1), and NaN is not a number (it passes no range check).
"""

from __future__ import annotations

import math
import reprlib
from typing import Any


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float that is not a bool and not NaN (infinities pass: ranges decide)."""
    return is_int(value) or (isinstance(value, float) and not math.isnan(value))


_SHORT = reprlib.Repr()  # Python 3.11's Repr takes no arguments; these bound nesting and lengths
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 3, 8, 8, 8
_SHORT.maxstring = _SHORT.maxother = 80


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message must stay one short line even
    when the value is a huge list (a YAML alias bomb, a pasted matrix)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_finite(value: Any) -> bool:
    """An int, or a float that is neither NaN nor infinite."""
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))
