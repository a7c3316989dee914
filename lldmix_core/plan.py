"""`lldmix run --dry-run`: validate a spec's paths and print the plan with cost estimates.

Estimates: training FLOPs ≈ 6 · parameters · tokens, scoring FLOPs ≈ 2 · parameters · tokens;
training memory ≈ 16 bytes/parameter (fp32 weights, grads, AdamW moments) + activations
≈ batch · context · layers · 34 · d bytes (a rough transformer rule of thumb).
"""

from __future__ import annotations

from typing import NamedTuple
from pathlib import Path

from lldmix_core import mathcore as mc
from lldmix_core.config import Settings, confine_path
from lldmix_core.errors import UserError
from lldmix_core.methods import METHODS, is_parent_row, run_label
from lldmix_core.spec import RunSpec
from lldmix_core.tau import NO_TAU, Tau, sweeps_tau
from lldmix_core.tokenizers import get_tokenizer


def nanogpt_params(vocab: int, ctx: int, n_layer: int, d: int) -> int:
    """Parameters of a NanoGPT with tied embeddings and biases."""
    per_block = 12 * d * d + 13 * d  # attention 4d²+4d, MLP 8d²+5d, two LayerNorms 4d
    return vocab * d + ctx * d + n_layer * per_block + 2 * d


def _human(x: float, unit: str) -> str:
    for p in ["", "k", "M", "G", "T", "P", "E"]:
        if abs(x) < 1000:
            return f"{x:.3g} {p}{unit}"
        x /= 1000
    return f"{x:.3g} Z{unit}"


TAU_METHODS = tuple(n for n, m in METHODS.items() if m.uses_tau)


class RunUnit(NamedTuple):
    """One run of the plan. `tau_setting`: the spec's τ setting (tau.Tau), NO_TAU where the method has none."""

    seed: int
    method: str
    tau_setting: Tau


def run_plan(spec: RunSpec) -> list[RunUnit]:
    """RunUnit(seed, method, τ setting) in the registry's order, which puts pass 1 before pass 2 and recipes
    before their users. A method that aggregates another's runs pulls that pass 1 in."""
    methods = set(spec.methods)
    wanted = {m for m in methods if METHODS[m].aggregates}
    mix = METHODS.get(spec.distill.mixture)
    if mix is not None and mix.aggregates and any(METHODS[m].needs_teacher for m in methods):
        wanted.add(spec.distill.mixture)  # distillation drawn from a recipe needs that recipe's runs
    pass1 = {METHODS[m].aggregates for m in wanted}
    pass1_only = pass1 - methods  # methods run only as pass 1
    methods |= wanted | pass1
    plan = []
    for seed in spec.seeds:
        for m in sorted(methods, key=lambda n: METHODS[n].order):
            taus = spec.lld.taus if METHODS[m].uses_tau else (NO_TAU,)
            if m in pass1_only:
                taus = [t for t in taus if not t.is_inf]  # τ = ∞: the recipe is the prior, no pass 1
            plan += [RunUnit(seed, m, t) for t in taus]
    return plan


MAX_GROUP_BYTES = 4 * 2**30  # activations of one training group (fp32), a bound for 24 GiB machines


def groupable(spec: RunSpec, method: str) -> bool:
    """Whether `method`'s runs of `spec` may train in a group (train_group.py): training.group is on, the
    base is a NanoGPT lldmix builds or reads from a file (random, trained first, or a NanoGPT checkpoint
    path; a database `model` may be a Hugging Face model, so it trains alone) and no teacher is involved."""
    b = spec.base
    return spec.training.group and b.kind == "nanogpt" and b.model is None and not METHODS[method].needs_teacher


def max_group(spec: RunSpec) -> int:
    """Models per training group, bounded by their activations' memory (≈ MAX_GROUP_BYTES in all, fp32:
    per model batch · context · (layers · 34 · d + 12 · vocabulary) bytes, the logits and their gradients
    included)."""
    a, o = spec.arch, spec.training
    vocab = a.vocab_size or get_tokenizer(spec.tokenizer).vocab_size
    per_model = o.batch_size * o.grad_accum * a.block_size * (a.n_layer * 34 * a.n_embd + 12 * vocab)
    return max(1, MAX_GROUP_BYTES // per_model)


def training_batches(plan: list[RunUnit], groupable, max_group: int) -> list[tuple[list[RunUnit], bool]]:
    """The plan as (units, grouped) batches in an order that respects its dependencies: the groupable
    runs that need no other run (pass 1, fixed mixtures, the oracle) as groups of at most `max_group`,
    then the groupable runs that aggregate pass 1's weights, then every other run alone in plan order
    (distillation may draw from an aggregated recipe, so it comes last). `groupable(unit)` says
    whether a run can train in a group."""
    first = [u for u in plan if groupable(u) and METHODS[u.method].aggregates is None]
    second = [u for u in plan if groupable(u) and METHODS[u.method].aggregates is not None]
    size = max(1, max_group)
    batches = [(wave[i:i + size], True) for wave in (first, second) for i in range(0, len(wave), size)]
    return batches + [([u], False) for u in plan if not groupable(u)]


def describe_plan(spec: RunSpec, settings: Settings, store=None) -> str:
    tok = get_tokenizer(spec.tokenizer)
    a = spec.arch
    vocab = a.vocab_size or ((tok.vocab_size + 63) // 64) * 64
    n = nanogpt_params(vocab, a.block_size, a.n_layer, a.n_embd)
    lines = [f"plan for spec {spec.name!r} (hash {spec.spec_hash[:12]})"]
    # paths
    if not spec.corpus.local:
        for field in ("train", "eval"):
            p = getattr(spec.corpus, field)
            if p:
                path = confine_path(p, settings, f"corpus.{field}")
                if not path.exists():
                    raise UserError(f"corpus.{field}: {path} does not exist")
                lines.append(f"  corpus.{field}: {path}")
    else:
        from lldmix_core.corpus.local import FROZEN_CONTENT_HASH, FROZEN_DIR

        lines.append(f"  corpus: frozen mini-Pile {FROZEN_DIR.name} (sha256 {FROZEN_CONTENT_HASH[:12]}), shipped with lldmix")
    o = spec.training
    for role, ref in (("target", spec.target), ("base", spec.base)):
        if ref.path:
            path = confine_path(ref.path, settings, f"{role}.path")
            if not path.exists():
                raise UserError(f"{role}.path: {path} does not exist")
            if ref.kind == "hf" and not (Path(path) / "config.json").is_file():
                raise UserError(f"{role}.path: {path} has no config.json (not a Hugging Face model folder)")
            lines.append(f"  {role}: {ref.kind} model at {path}")
        elif ref.model:
            lines.append(f"  {role}: model {ref.model!r} from the database")
        elif ref.train and ref.train.twin:
            lines.append(f"  {role}: one twin per seed: trained from that seed's base for {o.steps:,} steps "
                         "(the runs' seed, data order and budget) with fixed weights first")
        elif ref.train:
            lines.append(f"  {role}: NanoGPT trained for {ref.train.steps:,} steps with fixed weights first")
        else:
            lines.append(f"  {role}: random NanoGPT per seed")
    o = spec.training
    tokens_per_step = o.batch_size * o.grad_accum * a.block_size
    schedule = mc.lld_schedule(o.steps)
    lines.append(f"  model: NanoGPT {a.n_layer} layers × {a.n_embd} dims, context {a.block_size}, vocab {vocab} "
                 f"({tok.name}): {n:,} parameters")
    lines.append(f"  per run: {o.steps:,} steps × {tokens_per_step:,} tokens/step = {o.steps * tokens_per_step:,} tokens")
    lines.append(f"  evaluation/LLD schedule ({len(schedule)} steps + final): {schedule}")
    train_flops = 6 * n * o.steps * tokens_per_step
    mem = 16 * n + o.batch_size * a.block_size * a.n_layer * 34 * a.n_embd
    stages = []
    if spec.target.train and spec.target.train.twin:
        stages += [(f"train twin target seed {s}", train_flops) for s in spec.seeds]
    elif spec.target.train:
        t = spec.target.train
        stages.append(("train target", 6 * n * t.steps * (t.batch_size or o.batch_size) * a.block_size))
    for seed, m, tau in run_plan(spec):
        stages.append((f"{run_label(m, tau, sweeps_tau(spec.lld.taus))} seed {seed}",
                       train_flops * (4 / 3 if METHODS[m].needs_teacher else 1)))  # + the teacher's forward (2·N per token)
    lines.append(f"  stages ({len(stages)}):")
    for name, flops in stages:
        lines.append(f"    {name:<28} ≈ {_human(flops, 'FLOP')}, peak memory ≈ {_human(mem, 'B')}")
    lines.append(f"  total ≈ {_human(sum(f for _, f in stages), 'FLOP')} (training only; scoring adds ≈ 2·params·tokens per evaluation)")
    plan = run_plan(spec)
    batches = training_batches(plan, lambda u: groupable(spec, u.method), max_group(spec))
    grouped = [b for b, g in batches if g]
    if grouped:
        lines.append(f"  training: {sum(map(len, grouped))} run(s) in {len(grouped)} group(s) of up to {max_group(spec)} "
                     "models trained together (training.group: true; --no-group: one at a time)"
                     + (f", {len(batches) - len(grouped)} alone" if len(batches) > len(grouped) else ""))
    else:
        lines.append("  training: one model at a time" + ("" if spec.training.group else " (training.group: false; --group trains the runs as groups)"))
    if store is not None:
        done = [r for r in store.list_runs(spec_hash=spec.spec_hash) if r.status == "finished" and not is_parent_row(r.method)]
        lines.append(f"  already in the database: {len(done)} finished run(s) of this spec"
                     + (": " + ", ".join(r.name for r in done) if done else ""))
    return "\n".join(lines)
