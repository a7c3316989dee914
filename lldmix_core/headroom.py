"""Headroom before verdicts: for one spec's final sampled KLs, how much closer any mixture could bring
the base (the oracle, a reference), how far apart models trained alike from different seeds are (the
noise floor), and how much of the headroom each method captures, with seeds as the replicates.

Torch-free (the CLI report, the results documents and the dashboard share it); the arithmetic is
mathcore's. Units: bits/byte of the sampled KL(target ‖ model) throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.methods import baseline_method, oracle_method

SEED_PAIR = "sampled-seed-pair"  # kl_results.estimator of the noise floor's rows (noise_floor.py)


@dataclass(frozen=True)
class SeedPairKL:
    """KL(model_a ‖ model_b) between the final models of one method trained alike from seeds a and b."""

    method: str
    seed_a: int
    seed_b: int
    bits_per_byte: float
    stderr_bits_per_byte: float
    n_samples: int


def floor_method(methods) -> str | None:
    """The method whose seed pairs measure the floor: the oracle where run, else the baseline."""
    names = set(methods)
    return next((m for m in (oracle_method(), baseline_method()) if m in names), None)


def stored_seed_pairs(store, runs) -> list[SeedPairKL]:
    """The floor's rows already stored for these runs (objects with run_id, method, seed, final_model_id)."""
    name = floor_method(r.method for r in runs)
    mine = sorted((r for r in runs if r.method == name), key=lambda r: r.seed)
    seed_of = {r.final_model_id: r.seed for r in mine}
    return [SeedPairKL(name, seed_of[k.reference_model_id], r.seed, k.bits_per_byte, k.stderr_bits_per_byte,
                       k.n_samples)
            for r in mine for k in store.get_kl(r.run_id)
            if k.estimator == SEED_PAIR and k.reference_model_id in seed_of]


@dataclass(frozen=True)
class MethodCapture:
    """One method against the baseline and the oracle over the seeds all three ran."""

    label: str
    n: int
    captured: mc.Ratio  # (KL_baseline − KL_method) / H
    diff: mc.PairedSummary | None  # KL_method − KL_baseline over seeds (None: one seed)
    sd_diff: float  # sd over seeds of that paired difference (nan: one seed)
    mde: float  # the smallest mean difference this design detects at 80 % power (bits/byte)

    @property
    def detected(self) -> bool:
        return self.diff is not None and (self.diff.hi < 0 or self.diff.lo > 0)

    @property
    def identical(self) -> bool:
        """The same final KL as the baseline on every seed (e.g. a recipe so close to uniform that every
        step drew the same domain): nothing to detect, and no noise to size a detectable effect with."""
        return self.diff is not None and self.diff.mean_diff == 0 and self.sd_diff == 0


@dataclass(frozen=True)
class HeadroomSummary:
    baseline: str
    oracle: str
    seeds: tuple[int, ...]
    headroom: mc.Headroom
    floor: tuple[SeedPairKL, ...]
    methods: tuple[MethodCapture, ...]

    @property
    def floor_bits_per_byte(self) -> float:
        """Mean seed-to-seed sampled KL (nan without pairs)."""
        return float(np.mean([p.bits_per_byte for p in self.floor])) if self.floor else math.nan

    @property
    def paired_sd(self) -> float:
        """The sd over seeds of a paired difference to the baseline, pooled over methods (root mean variance)."""
        v = [m.sd_diff ** 2 for m in self.methods if math.isfinite(m.sd_diff)]
        return math.sqrt(float(np.mean(v))) if v else math.nan

    @property
    def h_over_floor(self) -> float:
        f = self.floor_bits_per_byte
        return self.headroom.mean / f if f > 0 else math.nan


def summarise(final_kl: dict[str, dict[int, float]], floor=()) -> HeadroomSummary | None:
    """From {method label: {seed: final sampled KL}} (and the floor's seed pairs): the headroom, and per
    method its headroom captured and paired difference; None unless both baseline and oracle ran."""
    base, orc = baseline_method(), oracle_method()
    if base not in final_kl or orc not in final_kl:
        return None
    seeds = tuple(sorted(s for s in set(final_kl[base]) & set(final_kl[orc])
                         if math.isfinite(final_kl[base][s]) and math.isfinite(final_kl[orc][s])))
    if not seeds:
        return None
    h = mc.headroom([final_kl[base][s] for s in seeds], [final_kl[orc][s] for s in seeds])
    methods = []
    for label, per in final_kl.items():
        common = [s for s in seeds if math.isfinite(per.get(s, math.nan))]
        if label in (base, orc) or not common:
            continue
        u, m, o = (np.array([final_kl[x][s] if x != label else per[s] for s in common]) for x in (base, label, orc))
        d = m - u
        sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
        methods.append(MethodCapture(label, len(common), mc.headroom_captured(u, m, o),
                                     mc.paired_summary(m, u) if d.size > 1 else None, sd,
                                     mc.min_detectable_effect(sd, d.size)))
    return HeadroomSummary(base, orc, seeds, h, tuple(floor), tuple(methods))


def format_headroom(s: HeadroomSummary) -> list[str]:
    """The headroom block of the end-of-run report (lines; bits/byte of the sampled KL)."""
    h, n = s.headroom, len(s.seeds)
    per_seed = ", ".join(f"seed {x}: {v:+.4f}" for x, v in zip(s.seeds, h.per_seed))
    lines = [f"\nHeadroom (oracle = trained on the target's true mixture: a reference that needs what a user with a "
             f"real target lacks), sampled KL in bits/byte:",
             f"  H = KL(target ‖ {s.baseline}) − KL(target ‖ {s.oracle}) = {h.mean:+.4f}"
             + (f", 95 % interval over {n} seeds [{h.lo:+.4f}, {h.hi:+.4f}]" if n >= 2 else " (one seed: no interval)")
             + f" ({per_seed})"]
    if s.floor:
        lines.append(f"  noise floor: sampled KL between {s.floor[0].method} models of consecutive seeds "
                     f"{s.floor_bits_per_byte:.4f} bits/byte ({len(s.floor)} pair(s): "
                     + ", ".join(f"{p.seed_a}→{p.seed_b} {p.bits_per_byte:.4f}" for p in s.floor)
                     + f"); H / floor = {s.h_over_floor:.2f}")
    if math.isfinite(s.paired_sd):
        lines.append(f"  sd over seeds of a paired difference to {s.baseline}: {s.paired_sd:.4f} bits/byte")
    lines.append(f"  headroom captured = (KL_{s.baseline} − KL_method) / H (1 = as close as the oracle, 0 = no better "
                 f"than {s.baseline}), 95 % Fieller interval over seeds:")
    for m in s.methods:
        extra = ""
        if m.identical:
            extra = f"; the same final KL as {s.baseline} on every seed"
        elif m.diff is not None and not m.detected:
            share = f" = {m.mde / h.mean:.0%} of H" if h.detected else ""  # a share of an undetected H means nothing
            extra = (f"; difference to {s.baseline} not detected (smallest detectable at 80 % power: "
                     f"{m.mde:.4f} bits/byte{share})")
        lines.append(f"    {m.label:<22} {m.captured.text()}{extra}")
    if not h.detected:
        sd = float(np.std(h.per_seed, ddof=1)) if n >= 2 else math.nan
        lines.append("  no headroom detected: " + ("with one seed there is no interval over seeds" if n < 2 else
                     f"the interval of H includes 0 (the smallest H these {n} seeds detect at 80 % power: "
                     f"{mc.min_detectable_effect(sd, n):.4f} bits/byte), so no verdict on a method's closeness is "
                     "interpretable here"))
    return lines
