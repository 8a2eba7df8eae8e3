"""How many CPUs this process may use and how many of them are free: pure decisions from the
two readings, so callers (the probes' torch threads, the weight statistics' threads) and their
tests agree on one rule."""

from __future__ import annotations

import os


def free_cores(usable: int, load_average: float) -> int:
    """Cores not already busy: the CPUs this process may use minus the current load, at least 1."""
    return max(1, min(usable, usable - round(load_average)))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def current_load() -> float:
    """The one-minute load average (0 where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def idle_cores() -> int:
    """``free_cores`` of this machine now."""
    return free_cores(usable_cpus(), current_load())
