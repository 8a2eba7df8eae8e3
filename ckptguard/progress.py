"""A progress line with bytes per second on a terminal, for scans long enough to want one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO

SHOW_AFTER_SECONDS = 1.0
REDRAW_SECONDS = 0.1
BAR_WIDTH = 24


class ProgressSink(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def finish(self) -> None: ...


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


class TerminalProgress:
    """Redraws one line on ``stream``; stays silent for the first second so that quick scans
    (a pre-commit hook on a few files) print nothing, and clears the line when done."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 show_after: float = SHOW_AFTER_SECONDS) -> None:
        self.stream = stream
        self.clock = clock
        self.show_after = show_after
        self.files = 0
        self.total = 0
        self.done_files = 0
        self.done_bytes = 0
        self.began = 0.0
        self.drawn_at: float | None = None

    def start(self, files: int, total_bytes: int) -> None:
        self.files, self.total = files, total_bytes
        self.began = self.clock()

    def advance(self, size: int) -> None:
        self.done_files += 1
        self.done_bytes += size
        now = self.clock()
        elapsed = now - self.began
        if elapsed < self.show_after:
            return
        if self.drawn_at is not None and now - self.drawn_at < REDRAW_SECONDS \
                and self.done_files < self.files:
            return
        self.drawn_at = now
        self.stream.write("\r" + self.line(elapsed) + "\033[K")
        self.stream.flush()

    def line(self, elapsed: float) -> str:
        share = self.done_bytes / self.total if self.total else self.done_files / max(self.files, 1)
        filled = int(BAR_WIDTH * min(1.0, share))
        rate = self.done_bytes / elapsed if elapsed > 0 else 0.0
        return (f"scanning [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{self.done_files}/{self.files} files, {human_bytes(self.done_bytes)}"
                f"/{human_bytes(self.total)}, {human_bytes(rate)}/s")

    def finish(self) -> None:
        if self.drawn_at is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()


def terminal_progress(stream: TextIO, *, quiet: bool = False) -> TerminalProgress | None:
    """A progress line when ``stream`` is a terminal and the user did not ask for quiet."""
    isatty = getattr(stream, "isatty", None)
    if quiet or isatty is None or not isatty():
        return None
    return TerminalProgress(stream)
