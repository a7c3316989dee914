"""Interleaved timing: A B C … A B C …, after a warm-up, medians and spread (machine load recorded)."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each function, `repeats` rounds, one call of each per round, in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> float:
    """(max − min) / median of the repeats: the relative spread, a fraction."""
    return (max(xs) - min(xs)) / statistics.median(xs)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"
