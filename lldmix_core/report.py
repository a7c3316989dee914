"""The end-of-run table: how close each method brought the base to the target, in stated units."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.methods import METHODS



def run_label(method: str, tau_setting, several_taus: bool) -> str:
    return f"{method} τ={tau_setting}" if several_taus and tau_setting is not None else method


def _mean_sd(values: list[float]) -> str:
    v = np.array([x for x in values if math.isfinite(x)])
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def method_table(outcome: SpecOutcome) -> list[dict]:
    """One row per method: mean ± sd over seeds of the final KL (nats/text, bits/byte) and gap."""
    several = len({r.tau_setting for r in outcome.runs if r.tau_setting is not None}) > 1
    by_method: dict[str, list] = defaultdict(list)
    for r in outcome.runs:
        by_method[run_label(r.method, r.tau_setting, several)].append(r)
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


def format_report(outcome: SpecOutcome, db_url: str, mlflow_uri: str) -> str:
    lines = [f"\n== {outcome.spec_name}: final KL to target {outcome.target_name} "
             f"(model-map estimator; lower is closer) ==",
             f"{'method':<24} {'seeds':>5}  {'KL nats/text':>20}  {'KL bits/byte':>18}  {'log-lik gap bits/byte':>22}"]
    for row in method_table(outcome):
        lines.append(f"{row['method']:<24} {row['seeds']:>5}  {_mean_sd(row['kl_nats_per_text']):>20}  "
                     f"{_mean_sd(row['kl_bits_per_byte']):>18}  {_mean_sd(row['gap_bits_per_byte']):>22}")
    lines.append("KL = half the variance over texts of log p_target − log p_model (second order; it ranks methods "
                 "but is no exact KL when models are far apart). Gap = target's minus model's mean log-likelihood per byte.")
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
    return "\n".join(lines)
