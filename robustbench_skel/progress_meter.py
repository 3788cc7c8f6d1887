"""Progress of long work: a tqdm bar on a terminal, plain log lines everywhere else.

A bar redraws one line with carriage returns; in a log file (``nohup``, a batch scheduler, CI) that is
unreadable, and the CLI used to show nothing at all there. Every long loop of the package (attack
batches, sanity re-runs, CERTIFY, training of victims, defenses, Bayesian heads, SWAG moments and the
motion manifold, the cells of a transfer matrix, a sweep) goes through :func:`progress`, which picks:

- stderr (or ``stream``) is a terminal: a tqdm bar that stays on screen when done (nested bars go);
- it is not: one flushed line at the start and then one per unit of work or per 10% of it, whichever
  gives fewer lines, each with the label, count/total, percentage, elapsed time and ETA;
- progress is off: nothing (the loop runs as it would without it).

Whether progress is on is the caller's ``enabled``; where a plugin cannot be handed a flag (a defense's
extra metrics) it follows the run's setting, set with :func:`showing_progress` by the runner.
``ROBUSTBENCH_SKEL_PROGRESS=off`` silences it, ``=lines`` or ``=bar`` forces one form.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

__all__ = ["progress", "showing_progress", "progress_enabled", "LineProgress", "PROGRESS_ENV", "LINES_PER_TASK"]

PROGRESS_ENV = "ROBUSTBENCH_SKEL_PROGRESS"  # off | lines | bar
LINES_PER_TASK = 10  # at most this many lines after the first: one per 10% of the work
UNKNOWN_TOTAL_INTERVAL_S = 10.0  # without a total, at most one line per this many seconds

_SHOWN: ContextVar[bool] = ContextVar("robustbench_skel_progress", default=False)


@contextmanager
def showing_progress(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`progress` calls that do not say ``enabled`` follow ``enabled``."""
    token = _SHOWN.set(bool(enabled))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def progress_enabled() -> bool:
    """Whether the enclosing :func:`showing_progress` block (the run) shows progress; off outside one."""
    return _SHOWN.get() and os.environ.get(PROGRESS_ENV, "").strip().lower() != "off"


def _is_terminal(stream: TextIO) -> bool:
    """A terminal a bar can be drawn on: one that reports no width (a pseudo-terminal of size 0, as some
    containers and ``script`` give) gets lines, since tqdm draws nothing there."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):  # no file descriptor: trust isatty
        return True


def _clock(seconds: float) -> str:
    """``mm:ss`` or ``h:mm:ss``, as tqdm writes times."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class LineProgress:
    """tqdm's interface (iteration, ``update``, ``set_postfix``, ``write``, ``close``) as flushed log lines.

    Lines: one at the start, then one each time the count passes a unit of work (at most 10 units) or a
    tenth of the total; without a total, at most one per ``UNKNOWN_TOTAL_INTERVAL_S`` seconds; at
    ``close`` a last one if the count moved since the last line (an interrupted loop).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = self.initial = int(initial)
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = clock()
        self._postfix = ""
        self._shown_n: int | None = None
        self._shown_at = self._started
        self._closed = False
        self._emit()

    # --- tqdm's interface
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + int(n)
        if self._due(before):
            self._emit()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **values: Any) -> None:
        values = {**(ordered_dict or {}), **values}
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, message: str, file: TextIO | None = None, end: str = "\n") -> None:
        """A message line, as ``tqdm.write``: to stdout unless ``file`` says otherwise, flushed."""
        out = file if file is not None else sys.stdout
        out.write(message + end)
        out.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shown_n != self.n:
            self._emit()

    # --- lines
    def _due(self, before: int) -> bool:
        if self.total is None:
            return self._clock() - self._shown_at >= UNKNOWN_TOTAL_INTERVAL_S
        if self.total <= LINES_PER_TASK:
            return self.n != before
        return (self.n * LINES_PER_TASK) // self.total > (before * LINES_PER_TASK) // self.total

    def line(self) -> str:
        """The current state as one line: label, count/total, percentage, elapsed time and ETA."""
        elapsed = self._clock() - self._started
        if self.total is None:
            text = f"{self.desc}: {self.n} {self.unit}, elapsed {_clock(elapsed)}"
        else:
            pct = 100.0 * self.n / self.total if self.total else 100.0
            done = self.n - self.initial
            if done > 0 and self.n < self.total:
                eta = _clock(elapsed / done * (self.total - self.n))
            else:
                eta = "?" if self.n < self.total else _clock(0)
            text = f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), elapsed {_clock(elapsed)}, ETA {eta}"
        return f"{text}, {self._postfix}" if self._postfix else text

    def _emit(self) -> None:
        self._shown_n, self._shown_at = self.n, self._clock()
        try:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or vanished log must not stop the work
            pass


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool | None = None, stream: TextIO | None = None) -> Any:
    """``iterable`` wrapped to show its progress (or, without one, a meter to ``update`` by hand).

    ``enabled=None`` follows the run (:func:`showing_progress`). The result has tqdm's interface in every
    form: iterate it, or call ``update(n)``, ``set_postfix(...)``, ``write(message)`` and ``close()``.
    """
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stderr
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    shown = (_SHOWN.get() if enabled is None else bool(enabled)) and forced != "off"
    if not shown:
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    if forced == "bar" or (forced != "lines" and _is_terminal(stream)):
        # leave=None: a bar stays once done, one nested in another (a transfer matrix's cell) goes
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream, leave=None,
                    dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, stream=stream)
