"""Markdown tables of a finished spec, read from the lldmix database (used for docs/RESULTS.md).

    LLDMIX_HOME=... .venv/bin/python scripts/results_table.py replication

Per method: the final KL to the target for every seed and mean ± sd, in nats/text and bits/byte, and the
log-likelihood gap in bits/byte; then §4.2's weight recovery per seed. Nothing is typed in by hand.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.checkpoint import load_checkpoint
from lldmix_core.db.store import Store
from lldmix_core.methods import METHODS



def main(spec_name: str) -> None:
    st = Store.open()
    parent = [r for r in st.list_runs() if r.method == "spec" and r.name == spec_name][-1]
    children = [r for r in st.list_runs(parent_id=parent.id) if r.status == "finished"]
    finals = defaultdict(dict)
    sweep = len({r.tau_setting for r in children if r.tau_setting is not None}) > 1
    for r in children:
        last = max((k for k in st.get_kl(r.id) if k.estimator.startswith("modelmap")), key=lambda k: k.step)
        label = r.method + (f" τ={r.tau_setting}" if sweep and r.tau_setting is not None else "")
        finals[label][r.seed] = last
    seeds = sorted({r.seed for r in children})

    def fmt(vals, digits=2):
        v = np.array(vals)
        return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"

    print(f"| method | {' | '.join(f'seed {s} (bits/byte)' for s in seeds)} | mean ± sd (bits/byte) | mean ± sd (nats/text) | gap (bits/byte) |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for m in sorted(finals, key=_order):
        row = finals[m]
        per_seed = [f"{row[s].bits_per_byte:.2f}" if s in row else "—" for s in seeds]
        print(f"| {m} | {' | '.join(per_seed)} | {fmt([x.bits_per_byte for x in row.values()])} | "
              f"{fmt([x.nats_per_text for x in row.values()])} | {fmt([x.gap_bits_per_byte for x in row.values()], 3)} |")
    # §4.2 weight recovery, when the target was trained with known weights
    target = st.get_model(children[0].target_model_id)
    target_stage = load_checkpoint(target.source).get("truth") if target.kind == "nanogpt" else None
    if target_stage:
        domains = sorted(target_stage)
        truth = np.array([target_stage[d] for d in domains])
        uniform = np.full(len(domains), 1 / len(domains))
        print("\n| seed | KL(uniform ‖ truth) (nats) | KL(aggregated-LLD estimate ‖ truth) (nats) | "
              "reverse: KL(truth ‖ uniform) (nats) | reverse: KL(truth ‖ estimate) (nats) | estimate |")
        print("|---|---|---|---|---|---|")
        for s in seeds:
            try:
                rec = st.get_recipe(f"{spec_name}.aggregated-lld.seed{s}")
            except Exception:  # a τ sweep names its recipes per τ: no single recovery row
                continue
            est = np.array([rec["weights"][d] for d in domains])
            (u_t, t_u), (e_t, t_e) = mc.weight_recovery(truth, uniform), mc.weight_recovery(truth, est)
            print(f"| {s} | {u_t:.4f} | {e_t:.4f} | {t_u:.4f} | {t_e:.4f} | "
                  + ", ".join(f"{d} {w:.3f}" for d, w in zip(domains, est)) + " |")
        if sweep:  # recovery per τ: mean over seeds of KL(that τ's recipe ‖ truth), the paper's direction
            by_tau = defaultdict(list)
            for rec in st.list_recipes():
                head, _, tau = rec["name"].partition(".tau")
                if head.startswith(f"{spec_name}.aggregated-lld.seed") and tau:
                    est = np.array([rec["weights"][d] for d in domains])
                    by_tau[tau].append(mc.kl_categorical(est, truth))
            print("\n| τ | KL(aggregated-LLD recipe ‖ truth) (nats), mean ± sd over seeds |")
            print("|---|---|")
            for tau in sorted(by_tau, key=lambda t: float(t)):
                v = np.array(by_tau[tau])
                print(f"| {tau} | {v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f} |")
        print("\nground truth: " + ", ".join(f"{d} {w:.3f}" for d, w in zip(domains, truth)))




def _order(label: str):
    """Methods in the registry's table order, then by τ numerically (inf last)."""
    method, _, tau = label.partition(" τ=")
    rank = METHODS[method].table_order if method in METHODS else 1_000
    try:
        t = float(tau) if tau else -1.0
    except ValueError:
        t = float("inf")
    return (rank, method, t)


def recovery_by_window(spec_name: str) -> None:
    """Weight recovery of the geometric mean over all schedule steps, the early ones (< 10 % of the run) and
    the late ones (≥ 50 %): where the estimate's error comes from."""
    st = Store.open()
    parent = [r for r in st.list_runs() if r.method == "spec" and r.name == spec_name][-1]
    runs = [r for r in st.list_runs(parent_id=parent.id) if r.method in METHODS and METHODS[r.method].mixture == "lld"
            and r.status == "finished"]
    if not runs:
        return
    target = st.get_model(runs[0].target_model_id)
    truth = load_checkpoint(target.source).get("truth") if target.kind == "nanogpt" else None
    if not truth:
        return
    domains = sorted(truth)
    t = np.array([truth[d] for d in domains])
    steps_total = max(max(k.step for k in st.get_kl(r.id)) for r in runs)
    print("\n| seed | all schedule steps | early steps (< 10 %) | late steps (≥ 50 %) |   (KL(geometric mean ‖ truth), nats: the paper's direction)")
    print("|---|---|---|---|")
    for r in runs:
        w = st.get_weights(r.id)
        steps = sorted(s for s in w if s < steps_total)
        cells = []
        for keep in (lambda s: True, lambda s: s < steps_total / 10, lambda s: s >= steps_total / 2):
            sel = [s for s in steps if keep(s)]
            g = mc.aggregate_geometric(np.array([[w[s][d] for d in domains] for s in sel]))
            cells.append(f"{mc.kl_categorical(g, t):.4f} ({len(sel)} steps)")
        print(f"| {r.seed}" + (f", τ={r.tau_setting}" if len({x.tau_setting for x in runs}) > 1 else "") + " | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "replication"
    main(name)
    recovery_by_window(name)
