"""The recovery benchmark's results, read from the database: for every (cell, truth, seed) the pass 1
that lldmix ran, every estimator's mixture from it, and its recovery ratio
KL(estimate ‖ truth) / KL(uniform ‖ truth) (nats / nats; < 1: closer to the truth than uniform), and its
overlap accuracy 1 − TV(estimate, truth) (a share of the mixture, in [0, 1]; 1: the truth exactly).
Then the leaderboard: per estimator, the median ratio over the pairs with a 95 % interval that
resamples whole targets (pairs that share a target — its seeds, or cells built on the same target —
are not independent), the fraction of pairs below 1 (Wilson interval), and how often it beats the
paper's aggregated-LLD on the same pair. An estimator is chosen on one half of the truths and reported
on the other (`held_out`); privileged estimators (they need a twin of the target) are never chosen.
The math is mathcore's; this module only gathers the inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.estimators import CONDITIONING, ESTIMATORS, PAPER, PHASED_ESTIMATORS, conditioning, estimate_all
from lldmix_core.benchmark.suite import BenchmarkCell
from lldmix_core.methods import METHODS, is_parent_row, pass1_methods
from lldmix_core.pass1 import pass1_of
from lldmix_core.kl_rows import MODELMAP, SAMPLED, last_kl

N_BOOT = 4000  # cluster-bootstrap resamples (seeded: a document regenerates to the same intervals)


@dataclass(frozen=True)
class PairResult:
    """One (cell, truth, seed): the truth, every estimator's mixture and recovery ratio."""

    cell: str
    truth: str
    seed: int
    run_id: int
    domains: tuple[str, ...]
    truth_weights: np.ndarray  # [K]
    kl_uniform_nats: float  # KL(uniform ‖ truth)
    estimates: dict[str, np.ndarray]  # estimator -> [K]
    ratios: dict[str, float]  # estimator -> KL(estimate ‖ truth) / KL(uniform ‖ truth)
    git_commit: str | None
    corpus_hash: str
    settings: dict  # size, target steps, base steps, base kind: what the cell varies
    conditioning: dict  # adjusted variant -> {ridge, condition_number, condition_number_unridged} (medians over steps)
    target_id: int | None = None  # the trained target's model id: pairs sharing it are one cluster
    overlaps: dict[str, float] = field(default_factory=dict)  # estimator -> 1 − TV(estimate, truth), in [0, 1]

    @property
    def cluster(self):
        return self.target_id if self.target_id is not None else (self.cell, self.truth)


@dataclass(frozen=True)
class LeaderRow:
    estimator: str
    family: str
    description: str
    n: int
    median: float
    median_ci95: tuple[float, float]  # percentile interval of the median, resampling whole targets
    fraction_below_1: float
    fraction_below_1_ci95: tuple[float, float]
    beats_paper: float  # fraction of pairs with a ratio below the paper's on the same pair
    meets_goal: bool  # median ≤ 0.5 and < 1 on ≥ 90 % of pairs (issue 13)
    n_targets: int = 0  # distinct targets among the pairs (the units the interval resamples)
    privileged: str | None = None  # what it needs that a user lacks (a reference row, never "best")
    # median overlap accuracy 1 − TV(estimate, truth) over the pairs (a share, in [0, 1]; higher is closer) with
    # its interval resampling whole targets; NaN where the pairs carry no overlaps
    median_overlap: float = float("nan")
    median_overlap_ci95: tuple[float, float] = (float("nan"), float("nan"))


def _parent(store, spec):
    for r in store.list_runs(spec_hash=spec.spec_hash):
        if is_parent_row(r.method) and r.parent_id is None:
            return r
    return None


def domain_logliks(store, model_id: int, corpus_id: int, domains, unit: str) -> np.ndarray | None:
    """ℓ_k [K] of a model on the corpus (nats/token or nats/byte), from the stored domain sums."""
    rows = {r.domain: r for r in store.get_domain_logliks(model_id, corpus_id)}
    if not all(d in rows for d in domains):
        return None
    return np.array([rows[d].nats_per_token if unit == "token" else rows[d].nats_per_byte for d in domains])


def _reference_logliks(store, cells: list[BenchmarkCell], name: str | None, corpus_id: int, domains, unit: str):
    ref = next((c for c in cells if c.is_reference and c.spec.name == name), None)
    if ref is None:
        return None
    parent = _parent(store, ref.spec)
    if parent is None:
        return None
    runs = [r for r in store.list_runs(parent_id=parent.id) if r.target_model_id is not None]
    if not runs:
        return None
    return domain_logliks(store, runs[0].target_model_id, corpus_id, domains, unit)


def collect(store, cells: list[BenchmarkCell]) -> list[PairResult]:
    """Every finished pass 1 of the benchmark's cells, with every estimator's mixture and ratio."""
    out = []
    for c in cells:
        if c.is_reference:
            continue
        parent = _parent(store, c.spec)
        if parent is None:
            continue
        for run in store.list_runs(parent_id=parent.id):
            if run.method not in pass1_methods() or run.status != "finished":  # the runs that store Δ_t
                continue
            corpus = store.get_corpus(run.corpus_id)
            domains = corpus.domains
            unit = c.spec.lld.unit
            l_t = domain_logliks(store, run.target_model_id, corpus.id, domains, unit)
            l_r = _reference_logliks(store, cells, c.reference, corpus.id, domains, unit)
            p = pass1_of(store, run, c.spec, domains, l_t, l_r)
            if p is None:
                continue
            truth = np.array([c.weights[d] for d in domains])
            est = estimate_all(p)
            ratios = {n: mc.recovery_ratio(w, truth) for n, w in est.items()}
            t = c.spec.target.train
            settings = {"size": f"{c.spec.arch.n_layer}x{c.spec.arch.n_embd}", "target_steps": t.steps or c.spec.training.steps,
                        "base_steps": c.spec.training.steps,
                        "base": "random" if c.spec.base.init else f"pretrained {c.spec.base.train.steps} steps"}
            out.append(PairResult(c.cell, c.truth, run.seed, run.id, domains, truth,
                                  float(mc.kl_categorical(np.full(len(truth), 1 / len(truth)), truth)), est, ratios,
                                  run.git_commit, corpus.content_hash, settings,
                                  {n: conditioning(p, *CONDITIONING[n]) for n in est if n in CONDITIONING},
                                  run.target_model_id, {n: mc.overlap_accuracy(w, truth) for n, w in est.items()}))
    return out


def leaderboard(pairs: list[PairResult]) -> list[LeaderRow]:
    """One row per estimator, best median ratio first; the paper's row included. An estimator computable
    on fewer pairs (the calibrated ones where a reference target has not finished) has a smaller `n`:
    the verdict ranks only those computed on every pair."""
    rows = []
    for name, e in ESTIMATORS.items():
        have = [p for p in pairs if name in p.ratios]
        if not have:
            continue
        r = np.array([p.ratios[name] for p in have])
        paper = np.array([p.ratios[PAPER] for p in have])
        s = mc.recovery_summary(r)
        clusters = [p.cluster for p in have]
        _, lo, hi = mc.cluster_bootstrap_median(r, clusters, n_boot=N_BOOT, seed=0)
        overlap = (float("nan"),) * 3
        if all(name in p.overlaps for p in have):
            overlap = mc.cluster_bootstrap_median(np.array([p.overlaps[name] for p in have]), clusters, n_boot=N_BOOT, seed=0)
        rows.append(LeaderRow(name, e.family, e.description, s["n"], s["median"], (lo, hi),
                              s["fraction_below_1"], s["fraction_below_1_ci95"],
                              float(np.mean(r < paper)) if name != PAPER else float("nan"), s["meets_goal"],
                              len(set(clusters)), e.privileged, float(overlap[0]), (float(overlap[1]), float(overlap[2]))))
    return sorted(rows, key=lambda x: x.median)


@dataclass(frozen=True)
class HeldOut:
    """An estimator chosen on some truths and judged on the others (no in-sample "best")."""

    chosen: str
    selection_truths: tuple[str, ...]
    held_out_truths: tuple[str, ...]
    chosen_row: LeaderRow  # on the held-out pairs
    paper_row: LeaderRow  # the paper's, on the same held-out pairs


def held_out(pairs: list[PairResult]) -> HeldOut | None:
    """Choose the lowest median ratio among the estimators that need nothing privileged and are computed
    on every pair, on every other truth (sorted by name); report it on the remaining truths."""
    truths = sorted({p.truth for p in pairs})
    if len(truths) < 2:
        return None
    pick, judge = tuple(truths[0::2]), tuple(truths[1::2])
    n_all = len(pairs)
    eligible = [r.estimator for r in leaderboard(pairs) if r.n == n_all and r.privileged is None]
    on_pick = [r for r in leaderboard([p for p in pairs if p.truth in pick]) if r.estimator in eligible]
    if not on_pick:
        return None
    chosen = on_pick[0].estimator
    board = {r.estimator: r for r in leaderboard([p for p in pairs if p.truth in judge])}
    return HeldOut(chosen, pick, judge, board[chosen], board[PAPER])


def by_group(pairs: list[PairResult], key) -> dict[str, dict[str, float]]:
    """Median ratio per estimator within each group of pairs (`key(pair)` → group label)."""
    groups: dict[str, list[PairResult]] = {}
    for p in pairs:
        groups.setdefault(key(p), []).append(p)
    return {g: {n: float(np.median([p.ratios[n] for p in ps])) for n in ps[0].ratios if all(n in p.ratios for p in ps)}
            for g, ps in groups.items()}


def skew_label(kl_uniform_nats: float) -> str:
    """The truth's skew by its distance from uniform: mild < 0.05 ≤ medium < 0.3 ≤ strong (nats)."""
    return "mild" if kl_uniform_nats < 0.05 else "medium" if kl_uniform_nats < 0.3 else "strong"


@dataclass(frozen=True)
class Pass2Row:
    """One pass-2 method on one (cell, truth, seed): its final sampled KL(target ‖ model) and the paired
    difference to uniform on the same draws (bits/byte; negative: closer to the target than uniform),
    with the model-map estimate beside it."""

    cell: str
    truth: str
    seed: int
    method: str
    sampled_bits_per_byte: float
    sampled_se: float
    diff_vs_uniform: float
    diff_se: float
    modelmap_bits_per_byte: float
    recipe_ratio: float | None  # the recipe's recovery ratio (fixed-mixture methods), else None
    git_commit: str | None = None  # the code that made the run
    corpus_hash: str | None = None  # the evaluation corpus of the run
    phased: bool = False  # the run trained a phased recipe (its weights changed during the run)


def pass2(store, cells: list[BenchmarkCell]) -> list[Pass2Row]:
    """Every finished run with a final sampled KL that has a uniform run of the same seed beside it."""
    from lldmix_core.paired import FinalSampled, pair_with_reference

    out = []
    hashes: dict[int, str] = {}

    def corpus_hash(corpus_id: int | None) -> str | None:  # one lookup per corpus, not per run
        if corpus_id is not None and corpus_id not in hashes:
            hashes[corpus_id] = store.get_corpus(corpus_id).content_hash
        return hashes.get(corpus_id)

    for c in cells:
        parent = None if c.is_reference else _parent(store, c.spec)
        if parent is None:
            continue
        finals = {}
        for run in store.list_runs(parent_id=parent.id):
            if run.status != "finished":
                continue
            kl = store.get_kl(run.id)
            sampled, mm = last_kl(kl, SAMPLED), last_kl(kl, MODELMAP)
            if sampled is not None:
                finals[(run.seed, run.method)] = (run, sampled, mm)
        ordered = [FinalSampled(method, seed, s.bits_per_byte, s.corpus_id, s.model_id, of=(run, s, mm))
                   for (seed, method), (run, s, mm) in sorted(finals.items())]
        for p in pair_with_reference(store, ordered):
            if p.within is None:  # the leaderboard reports only differences over the same draws
                continue
            (run, s, mm), seed, method, d = p.run.of, p.run.seed, p.run.method, p.within
            w = store.get_weights(run.id)
            ratio = None
            behaviour = METHODS[method].behaviour
            phased = behaviour.phased(c.spec, PHASED_ESTIMATORS)
            if behaviour.fixed_recipe and w and not phased:
                first = w[min(w)]
                truth = np.array([c.weights[k] for k in first])
                ratio = float(mc.recovery_ratio(np.array(list(first.values())), truth))
            out.append(Pass2Row(c.case or c.cell, c.truth, seed, method, s.bits_per_byte, s.stderr_bits_per_byte or float("nan"),
                                d[0], d[1], mm.bits_per_byte if mm else float("nan"), ratio, run.git_commit,
                                corpus_hash(run.corpus_id),
                                phased))
    return out
