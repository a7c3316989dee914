"""The recovery benchmark's file (`runs/recovery.yaml`): targets whose true mixtures lldmix draws and
trains, crossed with the settings that plausibly decide whether LLD helps (skew of the truth, target
steps relative to the base's, model size, random-init or pretrained base). It expands into plain run
specs, one per (cell, truth), that the engine runs one after another: each is resumable and keyed by
content like any spec, so a re-run finds what is done. Pure: no I/O beyond reading the YAML.

    benchmark: recovery
    domains: [Python, C++, ...]          # the order Dirichlet draws are assigned in
    truths: [{name, dirichlet: {concentration, seed} | weights | mixture_file: PATH, multipliers?}, ...]
    sizes: {S: {arch}, M: {arch}}
    bases: {random: {init: random}, pretrained: {train: {steps, seed, dirichlet|weights}}}
    cells: [{name, size, steps?, target_ratio, base, truths: all | [names], seeds?, twin?}]
    reference: true                      # a uniform-trained target per (size, ratio) for the calibrated Δ
    spec: {the run-spec fields every cell shares: seeds, corpus, training, methods, lld, kl, ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from lldmix_core.errors import UserError
from lldmix_core.methods import baseline_method
from lldmix_core.spec import (ArchSpec, RunSpec, _format_error, _NoDuplicatesLoader, parse_spec,
                              weights_from_mixture_file)

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dirichlet(_Strict):
    concentration: float = Field(..., gt=0)
    seed: int = Field(..., ge=0)


class Truth(_Strict):
    """A known mixture: drawn from a seeded symmetric Dirichlet (optionally × multipliers, the paper's
    "double some domains" style), or given explicitly."""

    name: str = Field(..., pattern=NAME, max_length=40)
    dirichlet: Dirichlet | None = None
    weights: dict[str, float] | None = None
    multipliers: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _mixture_file(cls, data, info: ValidationInfo):
        # `mixture_file: PATH` (relative to the benchmark file) is read into `weights` (fractions)
        return weights_from_mixture_file(data, info, ("weights", "dirichlet"))

    @model_validator(mode="after")
    def _one(self):
        if (self.dirichlet is None) == (self.weights is None):
            raise ValueError("give exactly one of dirichlet, weights, mixture_file")
        return self


class BaseTrain(_Strict):
    steps: int = Field(..., ge=1)
    seed: int = Field(99, ge=0)
    dirichlet: Dirichlet | None = None
    weights: dict[str, float] | None = None


class BaseChoice(_Strict):
    """`init: random` (the run seed's random NanoGPT) or `train:` a NanoGPT first on another mixture
    (the paper's pretrained base)."""

    init: str | None = None
    train: BaseTrain | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.init is None) == (self.train is None) or self.init not in (None, "random"):
            raise ValueError("give `init: random` or `train: {...}`")
        return self


class Cell(_Strict):
    name: str = Field(..., pattern=NAME, max_length=40)
    size: str
    steps: int | None = Field(None, ge=1)  # the base runs' budget in this cell (default: spec.training.steps)
    target_ratio: float = Field(1.0, gt=0)  # target steps = ratio × the cell's steps
    base: str = "random"
    truths: str | tuple[str, ...] = "all"
    seeds: tuple[int, ...] | None = None  # default: spec.seeds
    spec: dict = Field(default_factory=dict)  # run-spec fields this cell sets differently (e.g. methods, kl)
    # twin targets: one per seed, trained from that seed's base with the runs' budget (the mixture is the only
    # difference; target_ratio must be 1), instead of one independent target with its own seed
    twin: bool = False
    # the cell it repeats with other settings (same truths and seeds): the report pairs them, e.g. the
    # paper's estimator at the paper's settings against the same cell at the cheap default
    compare_to: str | None = None
    label: str = ""  # what the cell's settings are, for the report
    # the case the report counts this cell's runs under (default: its name): a pass-2 file's per-seed cells of
    # one source cell share it, so their seeds are replicates of one case (scripts/recovery_pass2.py sets it)
    case: str | None = Field(None, pattern=NAME, max_length=40)

    @model_validator(mode="after")
    def _twin_budget(self):
        if self.twin and self.target_ratio != 1:
            raise ValueError(f"cells.{self.name}: a twin target trains with the runs' budget: target_ratio must be 1")
        return self


class BenchmarkSpec(_Strict):
    benchmark: str = Field(..., pattern=NAME, max_length=40)
    description: str = ""
    domains: tuple[str, ...]
    truths: tuple[Truth, ...]
    sizes: dict[str, ArchSpec]
    bases: dict[str, BaseChoice] = Field(default_factory=lambda: {"random": BaseChoice(init="random")})
    cells: tuple[Cell, ...]
    reference: bool = True
    target_seed: int = Field(1000, ge=0)  # target i (in `truths` order) trains with seed target_seed + i
    spec: dict  # run-spec fields shared by every cell (validated when the cells are expanded)

    @model_validator(mode="after")
    def _check(self):
        names = [t.name for t in self.truths]
        if len(set(names)) != len(names):
            raise ValueError("truths: a name is listed twice")
        if len({c.name for c in self.cells}) != len(self.cells):
            raise ValueError("cells: a name is listed twice")
        for c in self.cells:
            if c.size not in self.sizes:
                raise ValueError(f"cells.{c.name}.size: {c.size!r} is not in sizes {list(self.sizes)}")
            if c.base not in self.bases:
                raise ValueError(f"cells.{c.name}.base: {c.base!r} is not in bases {list(self.bases)}")
            if c.compare_to is not None and c.compare_to not in {x.name for x in self.cells}:
                raise ValueError(f"cells.{c.name}.compare_to: {c.compare_to!r} is not a cell")
            if c.truths != "all":
                unknown = sorted(set(c.truths) - set(names))
                if unknown:
                    raise ValueError(f"cells.{c.name}.truths: unknown {unknown}")
        for key in ("name", "target", "arch", "base", "seeds"):
            for where, d in [("spec", self.spec)] + [(f"cells.{c.name}.spec", c.spec) for c in self.cells]:
                if key in d and not (key == "seeds" and d is self.spec):  # seeds: shared, or per cell
                    raise ValueError(f"{where}.{key}: set by the benchmark's cells, not here")
        for t in self.truths:
            for d in list(t.multipliers) + list(t.weights or {}):
                if d not in self.domains:
                    raise ValueError(f"truths.{t.name}: unknown domain {d!r}")
        return self


def dirichlet_weights(domains: tuple[str, ...], d: Dirichlet) -> np.ndarray:
    """[K] numpy.random.default_rng(seed).dirichlet(concentration · 1), in `domains` order."""
    return np.random.default_rng(d.seed).dirichlet(np.full(len(domains), d.concentration))


def truth_weights(domains: tuple[str, ...], t: Truth) -> dict[str, float]:
    """The truth as {domain: weight} on the simplex (rounded to 6 decimals, so the spec shows it and
    its hash does not depend on the last bits of the Dirichlet draw)."""
    if t.weights is not None:
        w = np.array([float(t.weights.get(d, 0.0)) for d in domains])
    else:
        w = dirichlet_weights(domains, t.dirichlet)
    w = w * np.array([t.multipliers.get(d, 1.0) for d in domains])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UserError(f"truths.{t.name}: weights must be finite, ≥ 0 and not all zero")
    w = np.round(w / w.sum(), 6)
    w[np.argmax(w)] += 1.0 - w.sum()  # exactly on the simplex after rounding
    return {d: float(x) for d, x in zip(domains, w)}


def kl_uniform_to(weights: dict[str, float]) -> float:
    """KL(uniform ‖ truth), nats: how far the truth is from uniform (the recovery ratio's denominator)."""
    w = np.array(list(weights.values()))
    u = 1.0 / len(w)
    return float(np.sum(u * np.log(u / np.maximum(w, 1e-300))))


@dataclass(frozen=True)
class BenchmarkCell:
    """One expanded spec: a cell × a truth (or the cell's uniform reference target)."""

    cell: str
    truth: str  # the truth's name, or "reference"
    weights: dict[str, float]  # the target's true mixture
    spec: RunSpec
    is_reference: bool = False
    reference: str | None = None  # the spec name of the uniform-trained reference of this (size, target steps)
    case: str = ""  # the report's case (Cell.case, default the cell's name)


def expand(b: BenchmarkSpec) -> list[BenchmarkCell]:
    """Every (cell, truth) as a run spec named `<benchmark>.<cell>.<truth>`, plus (with `reference`)
    one uniform-trained target per distinct (size, target steps) named `<benchmark>.<cell>.reference`."""
    shared = dict(b.spec)
    steps = int(shared.get("training", {}).get("steps", 0) or 0)
    if steps < 1:
        raise UserError("spec.training.steps: required (the base runs' steps)")
    out, refs_done = [], {}
    for c in b.cells:
        arch = b.sizes[c.size].model_dump(mode="json", exclude_none=True)
        cell_shared = {**shared, **c.spec}
        if c.steps is not None:  # a budget ladder: this cell's runs (and, by target_ratio, its target) train longer
            cell_shared["training"] = {**cell_shared.get("training", {}), "steps": c.steps}
        target_steps = max(1, int(round(c.target_ratio * (c.steps or steps))))
        ref_name = refs_done.get((c.size, target_steps), f"{b.benchmark}.{c.name}.reference") if b.reference else None
        base = _base_ref(b, c)
        seeds = list(c.seeds) if c.seeds is not None else cell_shared.get("seeds", [0])
        chosen = [t for t in b.truths if c.truths == "all" or t.name in c.truths]
        for t in chosen:
            w = truth_weights(b.domains, t)
            i = [x.name for x in b.truths].index(t.name)
            target = {"train": {"twin": True, "weights": w}} if c.twin else \
                {"train": {"steps": target_steps, "seed": b.target_seed + i, "weights": w}}
            out.append(BenchmarkCell(c.name, t.name, w, _spec(b, cell_shared, f"{c.name}.{t.name}", arch, target, base, seeds,
                                                              f"truth {t.name}, cell {c.name}"), reference=ref_name,
                                     case=c.case or c.name))
        if b.reference and (c.size, target_steps) not in refs_done:
            refs_done[(c.size, target_steps)] = ref_name
            u = {d: 1.0 / len(b.domains) for d in b.domains}
            target = {"train": {"steps": target_steps, "seed": b.target_seed - 1, "weights": u}}
            ref = {**cell_shared, "methods": [baseline_method()], "lld": {}, "kl": {"sampled": {"n_samples": 0}}}
            out.append(BenchmarkCell(c.name, "reference", u,
                                     _spec(b, ref, f"{c.name}.reference", arch, target, {"init": "random"}, seeds[:1],
                                           "uniform-trained reference target (calibrated Δ)"),
                                     is_reference=True))
    return out


def select_cells(b: BenchmarkSpec, cells: list[BenchmarkCell], only: str) -> list[BenchmarkCell]:
    """The expanded specs of the named cells (comma-separated; "" = all), with the uniform references they
    use even where another cell owns them; an unknown name is a one-line error."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        return cells
    unknown = [n for n in names if n not in {c.name for c in b.cells}]
    if unknown:
        raise UserError(f"--cells: {', '.join(unknown)} not in {b.benchmark}'s cells {[c.name for c in b.cells]}")
    mine = [c for c in cells if c.cell in names and not c.is_reference]
    refs = {c.reference for c in mine if c.reference}
    return [c for c in cells if c in mine or (c.is_reference and c.spec.name in refs)]


def _base_ref(b: BenchmarkSpec, c: Cell) -> dict:
    choice = b.bases[c.base]
    if choice.init is not None:
        return {"init": "random"}
    t = choice.train
    w = truth_weights(b.domains, Truth(name="base", dirichlet=t.dirichlet, weights=t.weights))
    return {"train": {"steps": t.steps, "seed": t.seed, "weights": w}}


def _spec(b: BenchmarkSpec, shared: dict, name: str, arch: dict, target: dict, base: dict, seeds, what: str) -> RunSpec:
    data = {**shared, "name": f"{b.benchmark}.{name}", "arch": arch, "target": target, "base": base, "seeds": list(seeds),
            "description": f"{b.benchmark}: {what}"}
    return parse_spec(data, f"benchmark {b.benchmark}, cell {name}")


def is_benchmark_text(text: str) -> bool:
    """A benchmark file is a YAML mapping with a top-level `benchmark:` key."""
    try:
        data = yaml.load(text, Loader=_NoDuplicatesLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "benchmark" in data


def load_benchmark(path: str | Path) -> BenchmarkSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"benchmark file {p} does not exist")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_NoDuplicatesLoader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: a benchmark file is a YAML mapping")
    try:
        b = BenchmarkSpec.model_validate(data, context={"base_dir": p.parent})
    except ValidationError as e:
        raise UserError(_format_error(e, str(p))) from None
    expand(b)  # every cell's spec validates now, not halfway through the run
    return b


# The local mini-Pile's evaluation texts average ≈ 980 bytes (byte tokens): what one Δ or Gram text costs.
EVAL_TEXT_TOKENS = 1000


def reweighting_steps(spec: RunSpec, n_domains: int) -> float:
    """Training-step equivalents that one re-weighting run (iterative, adjusted) adds at its ~16 LLD
    schedule steps: Δ scores n_est texts per domain (a forward, ⅓ of a training token's cost), the Gram
    (adjusted-LLD, or `record_gram`) a forward and backward over gram.texts_per_domain texts per domain.
    A training step is batch × block tokens forward and backward."""
    from lldmix_core.mathcore.schedule import lld_schedule
    from lldmix_core.methods import METHODS

    lld = spec.lld
    step_tokens = spec.training.batch_size * spec.arch.block_size
    n_est = lld.estimate_texts_per_domain or spec.corpus.eval_per_domain
    delta = n_domains * n_est * EVAL_TEXT_TOKENS / (3 * step_tokens)
    gram = n_domains * lld.gram.texts_per_domain * EVAL_TEXT_TOKENS / step_tokens
    n_sched = len(lld_schedule(spec.training.steps))
    total = 0.0
    for m in spec.methods:
        if METHODS[m].iterative:
            needs_gram = METHODS[m].behaviour.uses_gram or lld.record_gram
            total += n_sched * (delta + (gram if needs_gram else 0.0))
    return total


def seconds_estimate(cells: list[BenchmarkCell], step_seconds: dict[str, float]) -> float:
    """A rough wall-time estimate (s) from a measured seconds-per-training-step at each arch's
    n_layer·n_embd² (`step_seconds` maps "n_layer x n_embd" → s/step); unknown sizes scale by n_layer·d².
    Counts target/base training, one run per (method, seed) at ~1.4× training (the model map, the
    sampled KL, the store), and each re-weighting run's Δ estimates and Gram (`reweighting_steps`)."""
    ref_key, ref_s = next(iter(step_seconds.items()))
    rl, rd = (int(x) for x in ref_key.split("x"))
    total, seen = 0.0, set()
    for c in cells:
        a = c.spec.arch
        s = step_seconds.get(f"{a.n_layer}x{a.n_embd}", ref_s * (a.n_layer * a.n_embd ** 2) / (rl * rd ** 2))
        t = c.spec.target.train
        if t.twin:  # one target per seed, each as long as a run
            total += len(c.spec.seeds) * c.spec.training.steps * s
        else:
            key = (a.n_layer, a.n_embd, t.steps, t.seed, tuple(sorted((t.weights or {}).items())))
            if key not in seen:
                seen.add(key)
                total += t.steps * s
        n_runs = len(c.spec.seeds) * len(c.spec.methods)
        total += n_runs * c.spec.training.steps * s * 1.4
        total += len(c.spec.seeds) * reweighting_steps(c.spec, len(c.weights)) * s
    return total if math.isfinite(total) else math.nan
