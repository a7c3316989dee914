"""docs/RESULTS.md as Markdown, from a finished spec's outcome and the database: nothing typed by hand.

Written by `lldmix results SPEC --out FILE`. The sentences that interpret numbers are generated from
the intervals (report.verdict), so the prose claims only what the intervals support.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core import provenance
from lldmix_core.agreement import PairAgreement, TrajectoryAgreement
from lldmix_core.headroom import HeadroomSummary, stored_seed_pairs, summarise
from lldmix_core.methods import METHODS, reference_note
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.realized import realized_markdown, realized_rows
from lldmix_core.report import final_sampled_by_label, label_of, verdict, method_table, paired_to_reference, recovery


def _named(label: str) -> str:
    """A method's label as every table prints it: a privileged method says it is a reference."""
    return label + reference_note(label.split(" ")[0])


def _mean_sd(values, digits: int) -> str:
    v = np.array([x for x in values if math.isfinite(x)])
    if len(v) == 0:
        return "n/a"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _final_kl_tables(outcome: SpecOutcome, seeds: list[int]) -> list[str]:
    by = {(label_of(outcome, r), r.seed): r for r in outcome.runs}  # rows are labels ("m τ=t" in a τ sweep)
    rows_s, rows_m = [], []
    for row in method_table(outcome):
        m = row["method"]
        cells = [f"{by[m, s].sampled_bits_per_byte:.4f} ± {by[m, s].sampled_se_bits_per_byte:.4f}" if (m, s) in by else "—"
                 for s in seeds]
        rows_s.append([_named(m), *cells, _mean_sd(row["sampled_bits_per_byte"], 4)])
        cells = [f"{by[m, s].final_kl_bits_per_byte:.2f}" if (m, s) in by else "—" for s in seeds]
        rows_m.append([_named(m), *cells, _mean_sd(row["kl_bits_per_byte"], 2), _mean_sd(row["gap_bits_per_byte"], 3)])
    seed_cols = [f"seed {s}" for s in seeds]
    return [
        "## Final KL to the target (sampled KL: the judge of closeness)", "",
        "KL(target ‖ model) on texts drawn from the target, bits/byte; per seed mean ± its standard error over "
        "the draws, then mean ± sd over seeds. Lower is closer.", "",
        *_table(["method", *seed_cols, "mean ± sd over seeds"], rows_s), "",
        "Beside it, the model map's second-order estimate (bits/byte; ½ var over the evaluation texts of "
        "log p_target − log p_model) and the log-likelihood gap (target's minus model's mean log-likelihood, "
        "bits/byte):", "",
        *_table(["method", *seed_cols, "model map mean ± sd", "gap mean ± sd"], rows_m), "",
    ]


def _paired_section(outcome: SpecOutcome, store) -> tuple[list[str], list[str]]:
    pairs = paired_to_reference(outcome, store)
    if not pairs:
        return [], []
    ref = pairs[0]["reference"]
    rows, findings = [], []
    for p in pairs:
        per_seed = "; ".join(f"{s}: {d:+.4f}" + (f" ± {w[1]:.4f}" if w is not None else "") for s, d, w, _ in p["per_seed"])
        sm = p["summary"]
        if sm is not None and sm.n >= 2:
            rows.append([_named(p["method"]), per_seed, f"{sm.mean_diff:+.4f}", f"[{sm.lo:+.4f}, {sm.hi:+.4f}]",
                         f"{sm.wins}/{sm.n}", verdict(p)])
            findings.append((p["method"], sm, verdict(p)))
        else:
            rows.append([_named(p["method"]), per_seed, "—", "—", "—", verdict(p)])
    lines = [
        f"## Paired with {ref}", "",
        f"Sampled-KL difference to {ref} of the same seed (same initial model, data order and draws), bits/byte; "
        "negative = closer to the target. Per seed: the difference ± its standard error over the shared draws. "
        f"Over seeds: mean, 95 % Student-t interval and the seeds on which the method is closer.", "",
        *_table(["method", "per seed", "mean", "95 % interval", f"closer than {ref}", "verdict"], rows), "",
    ]
    closer = [(m, sm) for m, sm, _ in findings if sm.hi < 0]
    farther = [(m, sm) for m, sm, _ in findings if sm.lo > 0]
    neither = [m for m, sm, _ in findings if sm.lo <= 0 <= sm.hi]
    says = ["## What the sampled KL says", ""]
    if findings:
        n = findings[0][1].n
        says.append(f"Over {n} seeds, methods closer to the target than {ref}: " +
                    (", ".join(f"{_named(m)} by {-sm.mean_diff:.4f} bits/byte (95 % interval {-sm.hi:.4f} to {-sm.lo:.4f})"
                               for m, sm in closer) if closer else "none") + ".")
        if farther:
            says.append("Farther than " + ref + ": " + ", ".join(
                f"{m} by {sm.mean_diff:.4f} bits/byte ({sm.lo:.4f} to {sm.hi:.4f})" for m, sm in farther) + ".")
        if neither:
            says.append(f"Not distinguishable from {ref} at this number of seeds: " + ", ".join(neither) + ".")
    else:
        says.append(f"One seed only: no interval over initial models, so no claim about which method is closer "
                    f"to the target than {ref} (the per-draw differences below say only what holds for this seed's "
                    "base model).")
    says.append("")
    return lines, says


def _headroom_section(summary: HeadroomSummary | None) -> list[str]:
    """What any mixture could win here (the oracle), the noise floor, and each method's share of it."""
    if summary is None:
        return []
    h, n, base = summary.headroom, len(summary.seeds), summary.baseline
    interval = f"[{h.lo:+.4f}, {h.hi:+.4f}]" if n >= 2 else "— (one seed)"
    floor = (f"{summary.floor_bits_per_byte:.4f} (" + ", ".join(f"{p.seed_a}→{p.seed_b}: {p.bits_per_byte:.4f} ± "
             f"{p.stderr_bits_per_byte:.4f}" for p in summary.floor) + ")") if summary.floor else "not measured"
    ratio = f"{summary.h_over_floor:.2f}" if summary.floor else "—"
    rows = []
    for m in summary.methods:
        d = m.diff
        rows.append([_named(m.label), str(m.n), m.captured.text(),
                     f"{d.mean_diff:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]" if d is not None else "—",
                     f"{m.mde:.4f}" if math.isfinite(m.mde) else "—",
                     ("closer" if d.hi < 0 else "farther") if m.detected else
                     f"identical to {base} on every seed" if m.identical else "not detected"])
    lines = [
        "## Headroom: what any mixture could win here", "",
        f"The oracle trains each seed's base on the target's true mixture: a reference that needs what a user "
        f"with a real target does not have, never a recommendation. Headroom H = KL(target ‖ {base}) − "
        f"KL(target ‖ oracle) per seed (sampled KL, bits/byte; the same draws for both). The noise floor is the "
        f"sampled KL between {summary.floor[0].method if summary.floor else 'oracle'} models of consecutive seeds, "
        "trained alike: the distance a different seed alone puts between two models.", "",
        *_table(["", "value (bits/byte)"], [
            ["H per seed", ", ".join(f"{s}: {v:+.4f}" for s, v in zip(summary.seeds, h.per_seed))],
            [f"H, mean and 95 % interval over {n} seeds", f"{h.mean:+.4f} {interval}"],
            ["noise floor: seed-to-seed sampled KL", floor],
            ["H / noise floor", ratio],
            [f"sd over seeds of a paired difference to {base}",
             f"{summary.paired_sd:.4f}" if math.isfinite(summary.paired_sd) else "—"]]), "",
        f"Headroom captured = (KL_{base} − KL_method) / H: 1 = as close as the oracle, 0 = no better than {base}; "
        "95 % Fieller interval over seeds (unbounded when H is not distinguishable from 0). Difference to "
        f"{base}: mean over seeds with its 95 % t interval; detectable effect: the smallest true mean difference "
        "this number of seeds detects at 80 % power.", "",
        *_table(["method", "seeds", "headroom captured [95 %]", f"− {base} (bits/byte) [95 %]",
                 "detectable effect (bits/byte)", "verdict"], rows), "",
    ]
    def registered(m):
        return METHODS.get(m.label.split(" ")[0])

    # the goal is a mixture's: methods that train on the target's outputs (distillation) are not mixtures and
    # are not bounded by H; they are reported beside it, never counted toward it
    usable = [m for m in summary.methods if not registered(m) or
              not (registered(m).privileged or registered(m).needs_teacher)]
    teachers = [m for m in summary.methods if registered(m) and registered(m).needs_teacher]
    met = [m.label for m in usable if m.captured.bounded and m.captured.estimate >= 0.5 and m.captured.lo > 0]
    if not h.detected:
        sd = float(np.std(h.per_seed, ddof=1)) if n >= 2 else math.nan
        mde = mc.min_detectable_effect(sd, n)
        power = f" (the smallest headroom these {n} seeds detect at 80 % power: {mde:.4f} bits/byte)" \
            if math.isfinite(mde) else ""
        lines.append(f"H is not distinguishable from 0 over {n} seed(s){power}: this setting has no detected headroom, "
                     "so no method's verdict against the baseline says anything about mixtures.")
    elif met:
        lines.append("Captures at least half the headroom with an interval above 0, a mixture needing nothing "
                     "privileged: " + ", ".join(met) + ".")
    else:
        mde = [m.mde for m in usable if math.isfinite(m.mde) and not m.identical]
        power = (f" The smallest difference to {base} these {n} seeds detect at 80 % power is {min(mde):.4f}–"
                 f"{max(mde):.4f} bits/byte, {min(mde) / h.mean:.0%}–{max(mde) / h.mean:.0%} of H.") if mde else ""
        lines.append("No mixture method that needs nothing privileged captures at least half the headroom with an "
                     "interval above 0." + power)
    for m in teachers:  # distillation: the target's outputs, not a mixture (it can go past the oracle)
        d = m.diff
        lines.append(f"{m.label} trains on the target's outputs (a teacher), not on a mixture, so H does not bound it: "
                     + (f"{-d.mean_diff:+.4f} bits/byte closer than {base} [{-d.hi:+.4f}, {-d.lo:+.4f}], "
                        f"{-d.mean_diff / h.mean:.2f} × H." if d is not None and h.mean > 0 else "one seed, no interval."))
    return lines + [""]


def _recovery_section(outcome: SpecOutcome) -> list[str]:
    rec = recovery(outcome)
    if not rec:
        return []
    rows = [[str(r["seed"]), f"{r['kl_uniform_truth']:.4f}", f"{r['kl_estimate_truth']:.4f}",
             f"{r['kl_truth_uniform']:.4f}", f"{r['kl_truth_estimate']:.4f}"] for r in rec]
    better = sum(r["kl_estimate_truth"] < r["kl_uniform_truth"] for r in rec)
    return [
        "## Weight recovery (paper §4.2)", "",
        "The target was trained with known weights (the truth). Paper's direction: KL(w ‖ truth) for w = uniform "
        "and w = the aggregated-LLD recipe, nats; the reverse direction as labelled extra columns.", "",
        *_table(["seed", "KL(uniform ‖ truth)", "KL(aggregated-LLD ‖ truth)", "reverse: KL(truth ‖ uniform)",
                 "reverse: KL(truth ‖ aggregated-LLD)"], rows), "",
        f"The recipe is nearer the truth than uniform (paper's direction) on {better}/{len(rec)} seeds.", "",
    ]


def _agreement_section(pairs: list[PairAgreement], trajectories: list[TrajectoryAgreement]) -> list[str]:
    if not pairs and not trajectories:
        return []
    lines = ["## Do the two estimators agree?", ""]
    if pairs:
        rows = []
        for a in pairs:
            # pairs of identical models (e.g. two methods that kept the prior) have 0/0: no ratio
            apart = a.sampled_bits_per_byte > 0
            ratio = a.modelmap_bits_per_byte[apart] / a.sampled_bits_per_byte[apart]
            rows.append([str(a.seed), str(len(a.pairs)), f"{a.spearman:+.2f}",
                         f"{np.median(ratio):.1f}" if ratio.size else "—",
                         f"{ratio.min():.1f} – {ratio.max():.1f}" if ratio.size else "—"])
        mm = np.concatenate([a.modelmap_bits_per_byte for a in pairs])
        sm = np.concatenate([a.sampled_bits_per_byte for a in pairs])
        lines += [
            "Pairs on the map: per seed, every pair among the target and the final models; the model-map KL against "
            "the sampled KL symmetrised, ½[KL(i ‖ j) + KL(j ‖ i)], each direction on draws from the first model "
            "(bits/byte). Spearman's ρ ranks the pairs; the ratio is model map / sampled (over pairs whose "
            "sampled KL is positive).", "",
            *_table(["seed", "pairs", "Spearman ρ", "median ratio", "ratio range"], rows), "",
            f"All seeds' pairs together: Spearman ρ = {mc.spearman(mm, sm):+.2f} over {len(mm)} pairs.", "",
        ]
    if trajectories:
        by_method = defaultdict(list)
        for t in trajectories:
            by_method[t.method].append(t)
        rows = [[m, str(len(ts)), str(len(ts[0].steps)), " ".join(f"{t.spearman:+.2f}" for t in ts),
                 _mean_sd([t.spearman for t in ts], 2)] for m, ts in sorted(by_method.items())]
        lines += [
            "Along each trajectory: per run, KL(target ‖ model) by both estimators at every step where both were "
            "measured; Spearman's ρ over those steps (+1: they order the checkpoints alike).", "",
            *_table(["method", "runs", "steps", "ρ per seed", "mean ± sd"], rows), "",
        ]
    return lines


def _provenance_section(outcome: SpecOutcome, store, seeds: list[int]) -> list[str]:
    commits = defaultdict(list)
    for r in outcome.runs:
        info = store.get_run(r.run_id)
        p = info.provenance or {"git_commit": info.git_commit}
        commits[provenance.short_commit(p)].append(f"{r.method}/{r.seed}")
    lines = ["## Provenance", ""]
    for c, runs in sorted(commits.items()):
        lines.append(f"- runs made by code {c}: {len(runs)} ({', '.join(sorted(runs))})")
    if outcome.provenance:
        lines += ["", provenance.footer(outcome.provenance, seeds=seeds) + " (this document's generation)"]
    return lines + [""]


def render_results(outcome: SpecOutcome, store, *, command: str, spec_description: str,
                   pairs: list[PairAgreement], trajectories: list[TrajectoryAgreement]) -> str:
    seeds = sorted({r.seed for r in outcome.runs})
    paired, says = _paired_section(outcome, store)
    head = [
        f"# Results of `{outcome.spec_name}`", "",
        f"Generated by `{command}`, which runs the spec (finding finished work in the database) and writes this "
        "file; do not edit it by hand.", "",
        f"{spec_description} Seeds {', '.join(map(str, seeds))}; evaluation corpus {outcome.corpus_hash[:12]}; "
        f"target {outcome.target_name}.", "",
    ]
    headroom = summarise(final_sampled_by_label(outcome), stored_seed_pairs(store, outcome.runs))
    body = (_headroom_section(headroom) + says + _final_kl_tables(outcome, seeds) + paired
            + realized_markdown(realized_rows(store, outcome.runs)) + _recovery_section(outcome)
            + _agreement_section(pairs, trajectories) + _provenance_section(outcome, store, seeds))
    return "\n".join(head + body).rstrip() + "\n"


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- lldmix results: {key} -->", f"<!-- /lldmix results: {key} -->"


def replace_section(existing: str | None, key: str, body: str) -> str:
    """The results file with `key`'s section set to `body`, every other spec's section kept as it was.

    One document can hold several specs' results (docs/RESULTS.md: the replication, the recovery
    benchmark and its pass 2), each written by its own `lldmix results SPEC --out FILE`. A file with no
    section markers at all (written before sections existed, or by hand) is replaced whole; a key not
    in the file yet is appended."""
    begin, end = _markers(key)
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    if not existing or "<!-- lldmix results: " not in existing:
        return block
    i = existing.find(begin)
    if i < 0:
        return existing.rstrip("\n") + "\n\n" + block
    j = existing.find(end, i)
    if j < 0:
        raise ValueError(f"results file: section {key!r} opens but never closes ({end} missing)")
    rest = existing[j + len(end):]
    return existing[:i] + block + (rest[1:] if rest.startswith("\n") else rest)
