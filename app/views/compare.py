"""Compare: KL to target per method along training, final KLs, and the domain weights behind them."""

import numpy as np
import pandas as pd
import streamlit as st

import ui_charts as charts
import ui_data as data
from lldmix_core import mathcore as mc
from lldmix_core.methods import METHODS, ordered

st.title("Compare methods")
v = data.version()
runs = data.runs(v)
specs = runs[runs["method"] == "spec"].sort_values("id", ascending=False) if not runs.empty else runs
if specs.empty:
    st.info("No finished specs yet: start one on the New run page.")
    st.stop()
labels = {int(r["id"]): f"{r['name']} (#{r['id']}, {r['status']})" for _, r in specs.iterrows()}
parent = st.selectbox("Spec", list(labels), format_func=labels.get)
kl = data.kl_rows(parent, v)
if kl.empty:
    st.info("No evaluations recorded for this spec yet.")
    st.stop()
several_taus = kl["tau"].dropna().nunique() > 1  # the τ settings (text; None where a method has no τ)
kl["label"] = [f"{m} τ={t}" if several_taus and isinstance(t, str) else m for m, t in zip(kl["method"], kl["tau"])]

unit = st.radio("Unit", list(charts.UNITS), horizontal=True)
st.altair_chart(charts.kl_vs_step(kl, unit), width="stretch")
st.caption("KL = the model-map estimate, half the variance over evaluation texts of log p_target − log p_model. It is "
           "second order: far from the target it ranks methods but is not an exact KL; the log-likelihood gap "
           "(bits/byte) beside it is a plain cross-entropy difference.")

final = kl.loc[kl.groupby("run_id")["step"].idxmax()]
table = final.groupby("label").agg(seeds=("seed", "nunique"), kl_nats_per_text=("nats_per_text", "mean"),
                                   kl_nats_sd=("nats_per_text", "std"), kl_bits_per_byte=("bits_per_byte", "mean"),
                                   kl_bits_sd=("bits_per_byte", "std"), gap_bits_per_byte=("gap_bits_per_byte", "mean"))
st.subheader("Final KL to target (mean over seeds)")
st.dataframe(table.sort_values("kl_bits_per_byte").rename(columns={
    "kl_nats_per_text": "KL (nats/text)", "kl_nats_sd": "sd (nats/text)", "kl_bits_per_byte": "KL (bits/byte)",
    "kl_bits_sd": "sd (bits/byte)", "gap_bits_per_byte": "gap (bits/byte)"}), width="stretch")

st.subheader("Domain weights")
children = runs[runs["parent_id"] == parent]
seed = st.selectbox("Seed", sorted(children["seed"].dropna().astype(int).unique()))
of_seed = children[children["seed"] == seed]
bars = []
for method in ordered(n for n, m in METHODS.items() if not m.needs_teacher and m.mixture != "recipe"):
    rows = of_seed[of_seed["method"] == method]
    if rows.empty:
        continue
    w = data.weights(int(rows.iloc[0]["id"]), v)
    if w.empty:
        continue
    shows_last = METHODS[method].shows == "last"
    at = w["step"].max() if shows_last else w["step"].min()
    label = f"{method} (last estimate)" if shows_last else method
    bars.append(w[w["step"] == at].assign(source=label))
if bars:
    st.altair_chart(charts.grouped_bars(pd.concat(bars), "source", "weight"), width="stretch")

iterative = of_seed[of_seed["method"].map(lambda m: m in METHODS and METHODS[m].mixture == "lld")]
if not iterative.empty:
    w = data.weights(int(iterative.iloc[0]["id"]), v)
    wide = w.pivot(index="step", columns="domain", values="weight").sort_index()
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**iterative-LLD weights over steps**")
        st.altair_chart(charts.heatmap(w, "domain", "step", "weight", "weight"), width="stretch")
    with c2:
        st.markdown("**Jensen–Shannon distance between steps (bits^½)**")
        D = mc.js_distance_matrix(wide.to_numpy())
        steps = list(wide.index)
        jsd = pd.DataFrame([{"step_a": a, "step_b": b, "jsd": D[i, j]} for i, a in enumerate(steps) for j, b in enumerate(steps)])
        st.altair_chart(charts.heatmap(jsd, "step_a", "step_b", "jsd", "JS distance"), width="stretch")
    agg = pd.concat([
        pd.DataFrame({"domain": wide.columns, "weight": mc.aggregate_geometric(wide.to_numpy()), "aggregation": "geometric"}),
        pd.DataFrame({"domain": wide.columns, "weight": mc.aggregate_arithmetic(wide.to_numpy()), "aggregation": "arithmetic"}),
    ])
    st.markdown("**Aggregating the per-step weights: geometric (the paper's) against arithmetic (appendix C)**")
    st.altair_chart(charts.grouped_bars(agg, "aggregation", "weight"), width="stretch")
