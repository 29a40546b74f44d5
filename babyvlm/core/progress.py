"""Progress you can watch: a bar with rate and ETA on a terminal, readable periodic lines elsewhere.

``progress(total, "store build", unit="recording")`` is a context manager with ``update(n)``. On a
terminal (stderr is a TTY) it draws a tqdm bar on stderr; otherwise (a log file, a CI job, a pipe) it
writes one line every ``BABYVLM_PROGRESS_EVERY`` seconds (default 10) — ``store build: 12/40 recording
[00:31<01:12, 0.39 recording/s]`` — and a closing line for work that took that long, so a long stage is
never silent. ``BABYVLM_QUIET=1`` turns both off; only the main process (``RANK`` 0) reports.

``show_each_warning_once()`` makes a warning with the same category and text print once per process,
however often it is raised (a per-phase export warning, a deprecation inside a library called per step).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import IO, Any

from tqdm import tqdm

QUIET_ENV = "BABYVLM_QUIET"
EVERY_ENV = "BABYVLM_PROGRESS_EVERY"
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}]"
OPEN_LINE_FORMAT = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}]"  # no total known: no ETA


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0") or os.environ.get("RANK", "0") != "0"


class progress:  # noqa: N801 - used like a function: `with progress(n, "what") as bar:`
    """See the module docstring. ``total`` may be None (unknown); ``stream`` defaults to stderr."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", stream: IO[str] | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.n = self.reported = 0
        self.started = self.last_line = time.monotonic()
        self.every = float(os.environ.get(EVERY_ENV, "10") or 10)
        self.silent = quiet()
        self.bar = None
        if not self.silent and _is_terminal(self.stream):
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False,
                            **({"dynamic_ncols": True} if _columns(self.stream) else {"ncols": 100, "nrows": 24}))

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.silent and time.monotonic() - self.last_line >= self.every:
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.silent and self.n != self.reported and time.monotonic() - self.started >= self.every:
            self._line()  # the closing figures of a stage long enough to have reported

    def _line(self) -> None:
        now = time.monotonic()
        self.last_line, self.reported = now, self.n
        meter = tqdm.format_meter(self.n, self.total, now - self.started, unit=self.unit, prefix=self.desc,
                                  bar_format=LINE_FORMAT if self.total else OPEN_LINE_FORMAT)
        print(meter, file=self.stream, flush=True)

    def __enter__(self) -> progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False


def _columns(stream: IO[str]) -> int:
    """The terminal's width; 0 where it states none (a pseudo-terminal nobody sized draws no bar at 0)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def show_each_warning_once() -> None:
    """Print each (category, text) warning once per process: the registry Python keeps per call site is
    cleared whenever a library changes the warning filters, so repeated warnings would print again."""
    shown: set[tuple[type, str]] = set()
    original = warnings.showwarning
    if getattr(original, "babyvlm_once", False):
        return

    def show_once(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        key = (category, str(message))
        if key in shown:
            return
        shown.add(key)
        original(message, category, *args, **kwargs)

    show_once.babyvlm_once = True  # type: ignore[attr-defined]
    warnings.showwarning = show_once
