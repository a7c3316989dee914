"""The scale and budget ladder (`runs/ladder.yaml`, issue 21): per benchmark cell (model size × base
budget × twin or independent target) and truth, the headroom H = KL(target ‖ uniform) − KL(target ‖ oracle)
over seeds, the noise floor (sampled KL between oracle models of consecutive seeds) and H / floor; the
question it answers is where H exceeds three times the floor. Units: bits/byte of the sampled KL.

`collect_ladder` reads finished runs from the store; `render_ladder` writes the results section. A
benchmark file whose cells run only the baseline and the oracle is a ladder (`is_ladder`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.benchmark.leaderboard import _parent
from lldmix_core.benchmark.suite import BenchmarkCell, BenchmarkSpec, kl_uniform_to
from lldmix_core.headroom import HeadroomSummary, stored_seed_pairs, summarise
from lldmix_core.kl_rows import SAMPLED, last_kl
from lldmix_core.methods import baseline_method, oracle_method
from lldmix_core.plan import nanogpt_params

FLOOR_MULTIPLE = 3.0  # the bar: H beyond three times the seed-to-seed distance


def is_ladder(cells: list[BenchmarkCell]) -> bool:
    """Every cell compares just the baseline and the oracle: a headroom ladder, not a recovery benchmark."""
    runs = [c for c in cells if not c.is_reference]
    return bool(runs) and all(set(c.spec.methods) == {baseline_method(), oracle_method()} for c in runs)


@dataclass(frozen=True)
class LadderRow:
    cell: str
    truth: str
    size: str  # "2×64" (n_layer × n_embd)
    n_params: int  # the NanoGPT's parameters at a byte vocabulary (plan.nanogpt_params)
    steps: int  # the base runs' budget
    twin: bool  # twin targets (the mixture the only difference) or an independent one
    kl_uniform_nats: float  # KL(uniform ‖ truth): how skewed the truth is
    summary: HeadroomSummary | None  # None until uniform and the oracle finished on some seed
    commits: tuple[str, ...] = ()
    corpus_hash: str | None = None

    @property
    def verdict(self) -> str:
        """H against FLOOR_MULTIPLE × the floor: by its whole interval, by its mean only, or not."""
        s = self.summary
        if s is None or not s.floor:
            return "—"
        bar = FLOOR_MULTIPLE * s.floor_bits_per_byte
        if s.headroom.n >= 2 and s.headroom.lo > bar:
            return "yes"
        return "mean only" if s.headroom.mean > bar else "no"

    @property
    def h_mde(self) -> float:
        """The smallest H these seeds detect at 80 % power (bits/byte)."""
        h = self.summary.headroom if self.summary else None
        if h is None or h.n < 2:
            return math.nan
        return mc.min_detectable_effect(float(np.std(h.per_seed, ddof=1)), h.n)


def collect_ladder(store, cells: list[BenchmarkCell]) -> list[LadderRow]:
    """One row per (cell, truth), with the headroom summary of what has finished (None: nothing yet)."""
    rows, hashes = [], {}
    for c in cells:
        if c.is_reference:
            continue
        spec = c.spec
        final, runs = {}, []
        parent = _parent(store, spec)
        for r in (store.list_runs(parent_id=parent.id) if parent is not None else []):
            if r.status != "finished":
                continue
            sampled = last_kl(store.get_kl(r.id), SAMPLED)
            if sampled is None:
                continue
            final.setdefault(r.method, {})[r.seed] = sampled.bits_per_byte
            runs.append(r)
        floor = stored_seed_pairs(store, [SimpleNamespace(run_id=r.id, method=r.method, seed=r.seed,
                                                          final_model_id=r.final_model_id) for r in runs])
        corpus = next((r.corpus_id for r in runs if r.corpus_id is not None), None)
        if corpus is not None and corpus not in hashes:
            hashes[corpus] = store.get_corpus(corpus).content_hash
        rows.append(LadderRow(c.cell, c.truth, f"{spec.arch.n_layer}×{spec.arch.n_embd}", nanogpt_params(256, spec.arch.block_size, spec.arch.n_layer, spec.arch.n_embd),
                              spec.training.steps, bool(spec.target.train and spec.target.train.twin),
                              kl_uniform_to(c.weights), summarise(final, floor),
                              tuple(sorted({(r.git_commit or "unknown")[:10] for r in runs})), hashes.get(corpus)))
    return rows


def _fmt(x: float, spec: str = "{:.4f}") -> str:
    return spec.format(x) if math.isfinite(x) else "—"


def ladder_grid(rows: list[LadderRow]) -> list[str]:
    """H / floor as a size × budget grid per target kind, one entry per truth ("—": not finished)."""
    sizes = sorted({(r.n_params, r.size) for r in rows})
    budgets = sorted({r.steps for r in rows})
    truths = list(dict.fromkeys(r.truth for r in rows))
    out = []
    for twin in (True, False):
        mine = {(r.size, r.steps, r.truth): r for r in rows if r.twin == twin}
        if not mine:
            continue
        out += ["", f"**{'Twin' if twin else 'Independent'} targets**: H / floor "
                f"({' / '.join(truths)}; * = H's whole interval above {FLOOR_MULTIPLE:g} × floor)", "",
                "| size (parameters) | " + " | ".join(f"{b} steps" for b in budgets) + " |",
                "|---|" + "---|" * len(budgets)]
        for n, size in sizes:
            cells = []
            for b in budgets:
                parts = []
                for t in truths:
                    r = mine.get((size, b, t))
                    s = r.summary if r else None
                    parts.append("—" if s is None or not s.floor else
                                 f"{s.h_over_floor:.2f}" + ("*" if r.verdict == "yes" else ""))
                cells.append(" / ".join(parts))
            out.append(f"| {size} ({n / 1e3:.0f} k) | " + " | ".join(cells) + " |")
    return out


def render_ladder(b: BenchmarkSpec, cells: list[BenchmarkCell], rows: list[LadderRow], command: str) -> str:
    done = [r for r in rows if r.summary is not None]
    commits = sorted({c for r in done for c in r.commits})
    corpora = sorted({r.corpus_hash[:12] for r in done if r.corpus_hash})
    seeds = sorted({s for r in done for s in r.summary.seeds})
    expected = len(rows)
    L = [f"# Headroom ladder: `{b.benchmark}`", "",
         f"Generated by `{command}` from the database; do not edit by hand. {b.description}", "",
         f"(cell, truth) cases with uniform and the oracle finished: **{len(done)} of {expected}**. Code: commit(s) "
         f"{', '.join(commits) or '—'}; corpus {', '.join(corpora) or '—'}; seeds {seeds}.", "",
         "The oracle trains each seed's base on the target's true mixture: a reference that needs what a user with "
         "a real target lacks. H = KL(target ‖ uniform) − KL(target ‖ oracle), sampled KL in bits/byte, per seed on "
         "the same draws; its mean with a 95 % t interval over seeds. The noise floor is the sampled KL between "
         "oracle models of consecutive seeds (trained alike, other initial model and batch order). Twin: each "
         "seed's target is trained from that seed's base with its batch order and budget, so the mixture is the "
         "only difference; independent: one target per truth with its own seed, as a user's would be.", "",
         "## Verdict", ""]
    over = [r for r in done if r.verdict == "yes"]
    mean_only = [r for r in done if r.verdict == "mean only"]
    detected = [r for r in done if r.summary.headroom.detected]
    name = lambda r: f"{r.cell}·{r.truth}"  # noqa: E731
    if not done:
        L.append("Nothing finished yet.")
    else:
        L.append(f"- H exceeds {FLOOR_MULTIPLE:g} × the noise floor (its whole interval) in "
                 + (f"{len(over)} of {len(done)} cases: " + ", ".join(map(name, over)) if over else
                    f"none of the {len(done)} finished cases")
                 + (f"; by its mean only in {', '.join(map(name, mean_only))}" if mean_only else "") + ".")
        L.append(f"- H's interval excludes 0 (pass 2's cells) in " + (
            f"{len(detected)} of {len(done)}: " + ", ".join(map(name, detected)) if detected else
            f"none of the {len(done)}") + ".")
        ratios = [r.summary.h_over_floor for r in done if r.summary.floor]
        if ratios:
            best = max((r for r in done if r.summary.floor), key=lambda r: r.summary.h_over_floor)
            L.append(f"- H / floor ranges {min(ratios):.2f} to {max(ratios):.2f} (largest: {name(best)}, "
                     f"{best.size}, {best.steps} steps, {'twin' if best.twin else 'independent'} target).")
    L += ["", "## H / floor by size and budget", *ladder_grid(rows), "",
          "## Every case", "",
          "| cell | size | steps | target | truth | KL(uniform ‖ truth) nats | seeds | H [95 %] (bits/byte) | "
          "detectable H | noise floor (bits/byte) | H / floor | H > 3 × floor |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r.summary
        if s is None:
            L.append(f"| {r.cell} | {r.size} | {r.steps} | {'twin' if r.twin else 'independent'} | {r.truth} | "
                     f"{r.kl_uniform_nats:.3f} | 0 | not run yet | — | — | — | — |")
            continue
        h = s.headroom
        hi = f"{h.mean:+.4f} [{h.lo:+.4f}, {h.hi:+.4f}]" if h.n >= 2 else f"{h.mean:+.4f} (one seed)"
        floor = f"{s.floor_bits_per_byte:.4f} ({len(s.floor)} pairs)" if s.floor else "not measured"
        L.append(f"| {r.cell} | {r.size} | {r.steps} | {'twin' if r.twin else 'independent'} | {r.truth} | "
                 f"{r.kl_uniform_nats:.3f} | {h.n} | {hi} | {_fmt(r.h_mde)} | {floor} | "
                 f"{_fmt(s.h_over_floor, '{:.2f}')} | {r.verdict} |")
    L += ["", "Detectable H: the smallest true H these seeds detect at 80 % power (two-sided 5 %), from the sd of H "
          "over seeds. Where H's interval includes 0, nothing is detected and no verdict on a method's closeness "
          "to the target is interpretable in that cell."]
    return "\n".join(L) + "\n"
