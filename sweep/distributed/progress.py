"""One live progress line for a sweep, fed by Ray Tune's callback hooks.

    sweep: 12/18 done (6 skipped) · 2 running · 1 failed · 0:42 elapsed · ETA 0:21

On a terminal the line is redrawn in place (at most a few times a second); in a log (not a TTY)
a full line is printed at most every ``log_every_s`` seconds and whenever a trial finishes or fails
for good, so CI logs stay short. The ETA is (elapsed / trials finished in this run) x trials left,
which already accounts for how many trials run at once.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class SweepProgress(Callback):
    """Counts trials as Tune starts, finishes, retries and gives up on them; prints the live line."""

    def __init__(self, *, total: int, skipped: int, stream: TextIO | None = None,
                 enabled: bool = True, log_every_s: float = 10.0) -> None:
        self.total = total  # trials in the whole grid
        self.skipped = skipped  # already done before this run
        self._stream = stream  # None = sys.stderr, looked up at each write (Tune pickles callbacks)
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every_s = log_every_s
        self.started = time.monotonic()
        self.running: set[str] = set()  # Tune trial ids
        self.finished = 0  # trials finished (results written) in this run
        self.failed = 0  # trials that failed for good
        self.retries = 0  # failed attempts that Tune retried
        self.trial_seconds: list[float] = []  # each finished trial's own wall clock
        self._last_print = 0.0
        self._line_width = 0
        self._last_text = ""  # the last line a log (not a terminal) got

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stream": None}

    # ---- Tune hooks ---------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._show()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "sweep_trial_id" in result:  # our trainable reports exactly once, after writing
            self.finished += 1
            self.trial_seconds.append(float(result.get("trial_seconds", 0.0)))
            self._show(force=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self._show()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.retries += 1
        self._show()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._show(force=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._show()  # keeps elapsed/ETA moving while trials train

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._show(force=True)  # a large sweep is several Tune experiments: the driver closes the line

    # ---- the line -----------------------------------------------------------------------------
    def line(self) -> str:
        done = self.skipped + self.finished
        elapsed = time.monotonic() - self.started
        left = self.total - done - self.failed
        parts = [f"{done}/{self.total} done" + (f" ({self.skipped} skipped)" if self.skipped else ""),
                 f"{len(self.running)} running"]
        if self.failed or self.retries:
            parts.append(f"{self.failed} failed" + (f", {self.retries} retried" if self.retries else ""))
        parts.append(f"{format_seconds(elapsed)} elapsed")
        if self.finished and left > 0:
            parts.append(f"ETA {format_seconds(elapsed / self.finished * left)}")
        return "sweep: " + " · ".join(parts)

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last_print < 0.25:
                return
            text = self.line()
            self.stream.write("\r" + text.ljust(self._line_width))
            self._line_width = len(text)
        else:
            if not force and now - self._last_print < self.log_every_s:
                return
            text = self.line()
            if text == self._last_text:  # a log gets each state once (the end is announced three ways)
                return
            self.stream.write(text + "\n")
            self._last_text = text
        self.stream.flush()
        self._last_print = now

    def close(self) -> None:
        """Print the final state once and end the line."""
        if not self.enabled or self._last_print < 0:
            return
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._line_width) + "\n")
        elif text != self._last_text:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_print = -1.0
