"""The progress line: silent off a terminal, with --quiet, and for scans shorter than a second."""

from __future__ import annotations

import io

from ckptguard.progress import TerminalProgress, human_bytes, terminal_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_on_a_terminal_and_not_quiet() -> None:
    assert terminal_progress(io.StringIO()) is None
    assert terminal_progress(Tty(), quiet=True) is None
    assert isinstance(terminal_progress(Tty()), TerminalProgress)


def test_quick_scans_print_nothing() -> None:
    stream, clock = Tty(), Clock()
    bar = TerminalProgress(stream, clock=clock)
    bar.start(3, 3000)
    for _ in range(3):
        clock.now += 0.1
        bar.advance(1000)
    bar.finish()
    assert stream.getvalue() == ""


def test_long_scans_show_files_and_rate_then_clear() -> None:
    stream, clock = Tty(), Clock()
    bar = TerminalProgress(stream, clock=clock)
    bar.start(4, 4_000_000)
    clock.now += 2.0
    bar.advance(2_000_000)
    drawn = stream.getvalue()
    assert "1/4 files" in drawn and "2.0 MB/4.0 MB" in drawn and "1.0 MB/s" in drawn
    bar.finish()
    assert stream.getvalue().endswith("\r\033[K")


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1_500_000) == "1.5 MB"
    assert human_bytes(3e12) == "3.0 TB"
