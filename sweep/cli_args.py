"""Argument types and help formatting shared by the ``sweep`` subcommands.

Each type turns a command-line string into a value or raises ``argparse.ArgumentTypeError`` with one
line that names the text and what is allowed, so ``sweep run --seeds 0`` stops with ``sweep run: error:
argument --seeds: must be an integer >= 1, got '0'`` and exit code 2 before any work starts. The bounds
come from where the value is declared (``MAX_SEED_COUNT`` from the spec), not from here.
"""

from __future__ import annotations

import argparse

from sweep.distributed.spec import MAX_SEED_COUNT
from sweep.engine.config import MAX_STEPS


def parse_train_size(text: str) -> int | float:
    """'5000' -> a count; '0.1' (has a dot or exponent) -> a fraction of the train split."""
    try:
        if any(ch in text for ch in ".eE"):
            return float(text)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"train size must be a count (e.g. 5000) or a fraction (e.g. 0.1), got {text!r}"
        ) from None


def arg_type(parse):
    """An argparse type from a parser that raises ValueError naming the text."""

    def wrapped(text: str):
        try:
            return parse(text)
        except (ValueError, OSError) as exc:  # OSError: a parameter file that is missing or unreadable
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help does not state its default already and X is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= ``low`` (and <= ``high``), else one line naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
seed_count = int_at_least(1, MAX_SEED_COUNT)  # the cap of a spec's `seeds = N`
steps_count = int_at_least(1, MAX_STEPS)  # a steps budget, as TrialConfig.steps
