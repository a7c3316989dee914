"""Where a run's time goes: wall seconds per named part (training, model map, sampled KL, Δ estimates,
store + MLflow), the parts exclusive — time spent in a part nested inside another is charged to the inner
one only, so the parts add up to the whole. Pure: a clock function in, seconds out.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator


class Stopwatch:
    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.seconds: dict[str, float] = {}  # part → exclusive wall seconds, in first-use order
        self._open: list[list] = []  # [name, seconds spent in parts nested inside it]

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0 = self.clock()
        self.seconds.setdefault(name, 0.0)  # listed in the order parts first start
        self._open.append([name, 0.0])
        try:
            yield
        finally:
            _, nested = self._open.pop()
            dt = self.clock() - t0
            self.seconds[name] += dt - nested
            if self._open:
                self._open[-1][1] += dt

    def add(self, other: "Stopwatch") -> None:
        for k, v in other.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def line(self) -> str:
        """"training 31.2 s (72 %), model map 4.1 s (9 %), …; total 43.3 s" (seconds of wall time)."""
        total = self.total
        parts = ", ".join(f"{k} {v:.1f} s ({v / total:.0%})" if total > 0 else f"{k} {v:.1f} s"
                          for k, v in self.seconds.items())
        return f"{parts}; total {total:.1f} s"
