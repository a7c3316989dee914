"""Interleaved timing (A B C … A B C …, after a warm-up), medians, spreads, per-round ratios, and the
quiet-cores gate: figures written into docs/BENCHMARKS.md must be taken at a load average of at most
`QUIET_LOAD_PER_CORE` per core, or say in the document that they were not (`--allow-busy`).

Everything but `interleaved` and `load_now` is a pure function of its arguments (tests/test_bench_timing.py).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

QUIET_LOAD_PER_CORE = 1.5  # 1-minute load average ÷ cores; a benchmark's own 2 threads add ≈ 1 per core on 2


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


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> float:
    """(max − min) / median of the repeats: the relative spread, a fraction."""
    return (max(xs) - min(xs)) / statistics.median(xs)


def round_ratios(num_s: Sequence[float], den_s: Sequence[float], num_work: float = 1.0,
                 den_work: float = 1.0) -> list[float]:
    """Per interleaved round r, the throughput ratio (num_work / num_s[r]) / (den_work / den_s[r]):
    how many times faster the numerator ran than the denominator in that round (seconds in, work in
    any unit such as tokens). Rounds are paired by index, so both lists come from the same `interleaved`."""
    if len(num_s) != len(den_s) or not num_s:
        raise ValueError("round_ratios needs two equally long, non-empty lists of round times")
    return [(num_work / a) / (den_work / b) for a, b in zip(num_s, den_s)]


@dataclass(frozen=True)
class RatioSummary:
    median: float  # median over rounds of the per-round ratio
    low: float  # smallest per-round ratio
    high: float  # largest
    spread: float  # (high − low) / median, a fraction
    rounds: int

    def text(self) -> str:
        return f"{self.low:.2f}–{self.high:.2f}× over {self.rounds} rounds (spread {self.spread * 100:.0f} %)"


def summarize_ratios(ratios: Sequence[float]) -> RatioSummary:
    """Median, range and relative spread of per-round ratios (`round_ratios`)."""
    if not ratios:
        raise ValueError("no rounds")
    return RatioSummary(statistics.median(ratios), min(ratios), max(ratios), spread(ratios), len(ratios))


@dataclass(frozen=True)
class LoadGate:
    ok: bool  # may the figures be written into docs/BENCHMARKS.md?
    busy: bool  # was the load above the limit (before or after)?
    per_core_before: float
    per_core_after: float
    limit: float
    note: str  # one sentence for the document (or the refusal)


def load_gate(before: Sequence[float], after: Sequence[float], cpus: int, *, limit: float = QUIET_LOAD_PER_CORE,
              allow_busy: bool = False) -> LoadGate:
    """Judge the 1-minute load averages taken before and after a benchmark (`os.getloadavg()` triples)
    against `limit` per core. Busy (either above the limit) figures are refused unless `allow_busy`,
    in which case the note says so, for the document, beside the figures."""
    if cpus < 1:
        raise ValueError("cpus must be ≥ 1")
    b, a = before[0] / cpus, after[0] / cpus
    busy = max(b, a) > limit
    loads = (f"1-minute load average {before[0]:.2f} before and {after[0]:.2f} after on {cpus} CPUs "
             f"({b:.2f} / {a:.2f} per core; limit {limit:g})")
    if not busy:
        note = f"Taken on quiet cores: {loads}."
    elif allow_busy:
        note = (f"**Taken on busy cores, written with `--allow-busy`: {loads}. Other work shared the CPUs, so "
                "these figures and their ratios are noise-bound; see each ratio's spread over rounds.**")
    else:
        note = f"Refused: {loads} is above the limit; rerun on quiet cores, or pass --allow-busy to write it anyway."
    return LoadGate(ok=allow_busy or not busy, busy=busy, per_core_before=b, per_core_after=a, limit=limit, note=note)


def load_now() -> tuple[float, float, float]:
    return os.getloadavg()


def load(before: Sequence[float] | None = None) -> str:
    """The load average now (and, given, before the benchmark), for a benchmark's own printout."""
    one, five, fifteen = os.getloadavg()
    now = f"{one:.2f} / {five:.2f} / {fifteen:.2f}"
    if before is None:
        return f"load average {now} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"
    return (f"load average {before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f} before and {now} after "
            f"(1 / 5 / 15 min) on {os.cpu_count()} CPUs")
