"""Model map: every model and checkpoint of a corpus placed in 2-D from double-centred log-likelihood
vectors; training runs drawn as paths from the base toward their target. The projection is computed
once per data version (ui_data.projection); this page only draws."""

import numpy as np
import pandas as pd
import streamlit as st

import ui_charts as charts
import ui_data as data
from lldmix_core.methods import is_parent_row

st.title("Model map")
v = data.version()
corpora = data.corpora(v)
if corpora.empty:
    st.info("No corpus yet: `lldmix corpus build-local`, or start a run.")
    st.stop()
by_id = corpora.set_index("id")
corpus_ids = sorted(int(i) for i in corpora["id"])[::-1]  # newest first: the default
corpus_id = st.selectbox("Evaluation corpus", corpus_ids, index=0,
                         format_func=lambda i: f"{by_id.loc[i, 'name']} (#{i}, {by_id.loc[i, 'texts']} texts)")
ids, L, nbytes = data.loglik_matrix(int(corpus_id), v)
if len(ids) < 2:
    st.info("Fewer than two models have been scored on this corpus.")
    st.stop()
projection = st.radio("Projection", ["MDS", "t-SNE"], horizontal=True,
                      help="MDS keeps the sqrt(2·KL) distances as well as two axes can; t-SNE keeps neighbours.")
ids, xy, K = data.projection(int(corpus_id), projection, v)

models = data.models(v).set_index("id")
runs = data.runs(v)
run_by_id = runs.set_index("id") if not runs.empty else pd.DataFrame()
targets = set(runs["target_model_id"].dropna().astype(int)) if not runs.empty else set()
target_rows = [i for i, m in enumerate(ids) if m in targets]
first_step, last_step = {}, {}
for mid in ids:
    m = models.loc[mid]
    if pd.notna(m["run_id"]) and pd.notna(m["step"]):
        r, s = int(m["run_id"]), int(m["step"])
        first_step[r], last_step[r] = min(first_step.get(r, s), s), max(last_step.get(r, s), s)

rows = []
for i, mid in enumerate(ids):
    m = models.loc[mid]
    run_id = int(m["run_id"]) if pd.notna(m["run_id"]) else None
    run = run_by_id.loc[run_id] if run_id is not None and run_id in run_by_id.index else None
    in_trajectory = run is not None and not is_parent_row(run["method"]) and pd.notna(m["step"])
    if mid in targets:
        role, series, step_label = "target", "target", "target"
    elif in_trajectory:
        step = int(m["step"])
        role = ("final checkpoint" if step == last_step[run_id] else
                "first checkpoint" if step == first_step[run_id] else "checkpoint")
        role, series, step_label = role, run["method"], str(step)
    elif str(m["source"]).startswith("init:") or ".base" in str(m["name"]):
        role, series, step_label = "base", "base", "0 (base)"
    else:
        role, series, step_label = "other model", "other model", "—"
    rows.append({"name": m["name"], "x": xy[i, 0], "y": xy[i, 1], "run": run["name"] if in_trajectory else "",
                 "seed": str(int(run["seed"])) if in_trajectory and pd.notna(run["seed"]) else "—",
                 "role": role, "series": series, "step": int(m["step"]) if pd.notna(m["step"]) else -1,
                 "step_label": step_label, "map_label": f"{role}: {m['name']}",
                 "kl_to_target": float(K[i, target_rows[0]]) if target_rows else np.nan})
points = pd.DataFrame(rows)
st.altair_chart(charts.model_map(points), width="stretch")
st.caption(f"{len(ids)} models × {L.shape[1]} texts. Distances: sqrt(2·KL) from double-centred log-likelihood "
           "vectors (Oyama et al. 2025). Colour: the method that trained a checkpoint (the same colour on every "
           "page); shape: the model's role; dashes: the seed. Each trajectory starts at its first checkpoint "
           "(square) and ends at its final checkpoint (triangle)" + ("; the base is the labelled cross" if (points["role"] == "base").any()
           else "") + ". Runs that trained alike draw on top of each other (the table below lists every trajectory). "
           "Hover a point for its model, run, seed, step and KL.")

st.subheader("Trajectories")
traj = points[points["run"] != ""].groupby("run").agg(
    method=("series", "first"), seed=("seed", "first"), checkpoints=("name", "count"), last_step=("step", "max"))
finals = points[points["role"] == "final checkpoint"].set_index("run")["kl_to_target"]
traj["final KL to target (nats/text)"] = finals.reindex(traj.index).round(4)
st.dataframe(traj.reset_index().rename(columns={"run": "run (full name)"}), hide_index=True, width="stretch")

st.subheader("KL matrix (nats/text)")
show = [i for i, r in points.iterrows() if r["role"] not in ("checkpoint", "first checkpoint")]
names = [points.loc[i, "name"] for i in show]
st.dataframe(pd.DataFrame(K[np.ix_(show, show)], index=names, columns=names).round(3), width="stretch")

st.subheader("Per-domain log-likelihood (nats/token)")
dl = data.domain_logliks(int(corpus_id), v)
if not dl.empty:
    dl = dl[dl["model"].isin(set(names))]
    st.altair_chart(charts.heatmap(dl, "domain", "model", "nats_per_token", "nats/token"), width="stretch")
