"""The end-of-run table: how close each method brought the base to the target, in stated units."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core import provenance
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.headroom import format_headroom, stored_seed_pairs, summarise
from lldmix_core.paired import FinalSampled, PairedToReference, across_seeds, pair_with_reference
from lldmix_core.methods import METHODS, baseline_method, reference_note, run_label
from lldmix_core.realized import format_realized, realized_rows
from lldmix_core.tau import sweeps_tau


def _mean_sd(values: list[float]) -> str:
    v = np.array([x for x in values if math.isfinite(x)])
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def several_taus(outcome: SpecOutcome) -> bool:
    """Does the spec sweep τ (so runs are labelled "method τ=t")?"""
    return sweeps_tau(r.tau_setting for r in outcome.runs)


def label_of(outcome: SpecOutcome, r) -> str:
    """The run's label in this spec's tables (methods.run_label)."""
    return run_label(r.method, r.tau_setting, several_taus(outcome))


def method_table(outcome: SpecOutcome) -> list[dict]:
    """One row per method label: mean ± sd over seeds of the final KL (nats/text, bits/byte) and gap."""
    by_method: dict[str, list] = defaultdict(list)
    for r in outcome.runs:
        by_method[label_of(outcome, r)].append(r)
    rows = []

    def order(label: str):
        m = label.split(" ")[0]
        return (METHODS[m].table_order if m in METHODS else 99, label)

    for label in sorted(by_method, key=order):
        rs = by_method[label]
        rows.append({
            "method": label,
            "seeds": len(rs),
            "kl_nats_per_text": [r.final_kl_nats_per_text for r in rs],
            "kl_bits_per_byte": [r.final_kl_bits_per_byte for r in rs],
            "gap_bits_per_byte": [r.final_gap_bits_per_byte for r in rs],
            "sampled_bits_per_byte": [r.sampled_bits_per_byte for r in rs],
            "sampled_se_bits_per_byte": [r.sampled_se_bits_per_byte for r in rs],
        })
    return rows


def recovery(outcome: SpecOutcome) -> list[dict]:
    """§4.2 per seed, nats: in the paper's direction KL(uniform ‖ truth) and KL(aggregated-LLD estimate ‖
    truth); the reverse direction KL(truth ‖ ·) as a second, labelled pair of columns."""
    if not outcome.truth or not outcome.recipes:
        return []
    domains = sorted(outcome.truth)
    truth = np.array([outcome.truth[d] for d in domains])
    uniform = np.full(len(domains), 1.0 / len(domains))
    out = []
    for seed, recipe in sorted(outcome.recipes.items()):
        est = np.array([recipe[d] for d in domains])
        u_t, t_u = mc.weight_recovery(truth, uniform)
        e_t, t_e = mc.weight_recovery(truth, est)
        out.append({"seed": seed, "kl_uniform_truth": u_t, "kl_estimate_truth": e_t,
                    "kl_truth_uniform": t_u, "kl_truth_estimate": t_e})
    return out


def _reference(outcome: SpecOutcome) -> str | None:
    """The baseline every method is paired with: the registry's prior-mixture method (uniform)."""
    ref = baseline_method()
    return ref if any(r.method == ref for r in outcome.runs) else None


def final_sampled_by_label(outcome: SpecOutcome) -> dict[str, dict[int, float]]:
    """{run label: {seed: final sampled KL(target ‖ model), bits/byte}}."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for r in outcome.runs:
        out[label_of(outcome, r)][r.seed] = r.sampled_bits_per_byte
    return dict(out)


def paired_to_reference(outcome: SpecOutcome, store=None) -> list[dict]:
    """Per method: KL − KL(reference) by the sampled KL. Within a seed both were scored on the same
    draws, so each seed's difference has a per-sample paired standard error; across seeds, a t
    interval over the per-seed differences and wins n/N (seeds where the method is closer)."""
    ref = _reference(outcome)
    if ref is None:
        return []
    finals = [FinalSampled(r.method, r.seed, r.sampled_bits_per_byte, r.sampled_corpus_id, r.final_model_id, of=r)
              for r in outcome.runs]
    by_label: dict[str, list[PairedToReference]] = defaultdict(list)
    for p in pair_with_reference(store, finals, ref):
        by_label[label_of(outcome, p.run.of)].append(p)
    rows = []
    for label, pairs in by_label.items():
        pairs = sorted(pairs, key=lambda p: p.run.seed)
        per_seed = [(p.run.seed, p.difference, p.within,
                     p.run.of.final_kl_bits_per_byte - p.reference.of.final_kl_bits_per_byte) for p in pairs]
        rows.append({"method": label, "reference": ref, "per_seed": per_seed, "summary": across_seeds(pairs)})
    return sorted(rows, key=lambda row: (METHODS[row["method"].split(" ")[0]].table_order, row["method"]))


def verdict(row: dict) -> str:
    """What the sampled KL says about this method against the reference, and only what it supports."""
    sm = row["summary"]
    if sm is not None and sm.n >= 2:
        if sm.hi < 0:
            return f"closer than {row['reference']} (interval below 0)"
        if sm.lo > 0:
            return f"farther than {row['reference']} (interval above 0)"
        return f"not distinguishable from {row['reference']} at {sm.n} seeds"
    seed, d, within, _ = row["per_seed"][0]
    if within is None:
        return "one seed: no interval"
    lo, hi = within[0] - 1.96 * within[1], within[0] + 1.96 * within[1]
    where = "closer" if hi < 0 else "farther" if lo > 0 else "not distinguishable"
    return f"{where} on seed {seed}'s draws (one seed: says nothing about other initial models)"


def format_report(outcome: SpecOutcome, db_url: str, mlflow_uri: str, store=None) -> str:
    rows = method_table(outcome)
    lines = [f"\n== {outcome.spec_name}: final KL to target {outcome.target_name} (lower is closer) =="]
    if any(math.isfinite(x) for row in rows for x in row["sampled_bits_per_byte"]):
        lines.append(f"{'method':<24} {'seeds':>5}  {'sampled KL bits/byte':>22}  {'model-map KL bits/byte':>24}  "
                     f"{'log-lik gap bits/byte':>22}")
        for row in rows:
            lines.append(f"{row['method']:<24} {row['seeds']:>5}  {_sampled(row):>22}  "
                         f"{_mean_sd(row['kl_bits_per_byte']):>24}  {_mean_sd(row['gap_bits_per_byte']):>22}")
        privileged = [f"{r['method']}{reference_note(r['method'])}" for r in rows if reference_note(r["method"])]
        if privileged:
            lines.append("References, not recommendations: " + "; ".join(privileged) + ".")
        lines.append("Sampled KL = KL(target ‖ model) on texts drawn from the target (mean ± its standard error for one "
                     "seed, mean ± sd over seeds): the judge of closeness. Model-map KL = half the variance over texts of "
                     "log p_target − log p_model (second order; far from exact when models are far apart). Gap = "
                     "target's minus model's mean log-likelihood per byte.")
    else:
        lines.append(f"{'method':<24} {'seeds':>5}  {'KL nats/text':>20}  {'KL bits/byte':>18}  {'log-lik gap bits/byte':>22}")
        for row in rows:
            lines.append(f"{row['method']:<24} {row['seeds']:>5}  {_mean_sd(row['kl_nats_per_text']):>20}  "
                         f"{_mean_sd(row['kl_bits_per_byte']):>18}  {_mean_sd(row['gap_bits_per_byte']):>22}")
        lines.append("KL = the model map's estimate: half the variance over texts of log p_target − log p_model (second "
                     "order; it ranks methods but is no exact KL when models are far apart). Sampled KL off (kl.sampled).")
    pairs = paired_to_reference(outcome, store)
    if pairs and any(math.isfinite(p["per_seed"][0][1]) for p in pairs):
        lines.append(f"\nPaired with {pairs[0]['reference']} (same seed = same initial model, data order and draws), "
                     "sampled KL difference in bits/byte (negative = closer to the target):")
        for p in pairs:
            cells = []
            for seed, d, within, dmap in p["per_seed"]:
                w = f" ± {within[1]:.4f}" if within is not None else ""
                cells.append(f"seed {seed}: {d:+.4f}{w} (model map {dmap:+.2f})")
            sm = p["summary"]
            over = (f"; over {sm.n} seeds {sm.mean_diff:+.4f}, 95 % interval [{sm.lo:+.4f}, {sm.hi:+.4f}], "
                    f"closer on {sm.wins}/{sm.n}") if sm is not None and sm.n >= 2 else ""
            lines.append(f"  {p['method']:<22} " + "; ".join(cells) + over + f" → {verdict(p)}"
                         + reference_note(p["method"].split(" ")[0]))
    summary = summarise(final_sampled_by_label(outcome), stored_seed_pairs(store, outcome.runs) if store else ())
    if summary is not None:
        lines += format_headroom(summary)
    realized = realized_rows(store, outcome.runs) if store is not None else []
    if realized:
        lines.append("\nIntended vs realized weights (one domain per step: token shares, %; TV = ½ Σ |intended − realized|):")
        for r, mix in realized:
            lines += format_realized(f"{r.method} seed {r.seed}", mix)
    rec = recovery(outcome)
    if rec:
        lines.append("\nWeight recovery (paper §4.2; nats): KL(uniform ‖ truth) vs KL(aggregated-LLD ‖ truth) "
                     "[reverse direction: KL(truth ‖ uniform) vs KL(truth ‖ aggregated-LLD)]")
        for r in rec:
            lines.append(f"  seed {r['seed']}: {r['kl_uniform_truth']:.4f} vs {r['kl_estimate_truth']:.4f}  "
                         f"[{r['kl_truth_uniform']:.4f} vs {r['kl_truth_estimate']:.4f}]")
    for seed, recipe in sorted(outcome.recipes.items()):
        lines.append(f"\naggregated-LLD recipe (seed {seed}): " + ", ".join(f"{d} {w:.3f}" for d, w in recipe.items()))
    lines.append(f"\nStored in {db_url} (tables kl_results, weight_estimates, recipes; parent run id {outcome.parent_run_id})")
    lines.append(f"MLflow: {mlflow_uri} (experiment {outcome.spec_name}, run {outcome.mlflow_parent})")
    if outcome.provenance:
        lines.append(provenance.footer(outcome.provenance, seeds=sorted({r.seed for r in outcome.runs})))
    return "\n".join(lines)


def _sampled(row: dict) -> str:
    v = [x for x in row["sampled_bits_per_byte"] if math.isfinite(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        se = row["sampled_se_bits_per_byte"][0]
        return f"{v[0]:.4f} ± {se:.4f}"
    return f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}"
