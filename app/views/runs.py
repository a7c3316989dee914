"""Runs: the queue (queued / running / finished / failed) with progress, and the training runs."""

import pandas as pd
import streamlit as st

import ui_data as data

st.title("Runs")


@st.fragment(run_every="2s")
def queue() -> None:
    v = data.version()
    jobs = data.jobs(v)
    st.subheader("Queue")
    if jobs.empty:
        st.info("No runs yet. Start one on the **New run** page, or `lldmix enqueue runs/smoke.yaml`.")
        return
    now = pd.Timestamp.now(tz="UTC")
    for _, j in jobs.iterrows():
        cols = st.columns([3, 2, 4, 2, 1])
        cols[0].markdown(f"**#{j['id']} {j['name']}**")
        cols[1].markdown(f"`{j['status']}`")
        started = pd.Timestamp(j["started_at"]) if pd.notna(j["started_at"]) else None
        if started is not None and started.tzinfo is None:
            started = started.tz_localize("UTC")
        end = pd.Timestamp(j["finished_at"]) if pd.notna(j["finished_at"]) else now
        if end.tzinfo is None:
            end = end.tz_localize("UTC")
        duration = f"{(end - started).total_seconds():.0f} s" if started is not None else "—"
        cols[2].progress(float(j["progress"] or 0.0), text=(j["message"] or "")[:80])
        cols[3].markdown(f"started {started.strftime('%H:%M:%S') if started is not None else '—'} · {duration}")
        if j["status"] in ("queued", "running") and not j["cancel_requested"]:
            if cols[4].button("Cancel", key=f"cancel-{j['id']}"):
                data.store().request_cancel(int(j["id"]))
                st.rerun(scope="fragment")
        if j["status"] == "failed" and j["error"]:
            st.error(f"job {j['id']}: {str(j['error']).splitlines()[0]}")


queue()

st.subheader("Training runs")
runs = data.runs(data.version())
if runs.empty:
    st.write("No training runs in the database yet.")
else:
    specs = runs[runs["method"] == "spec"]
    for _, spec in specs.sort_values("id", ascending=False).iterrows():
        children = runs[runs["parent_id"] == spec["id"]]
        with st.expander(f"{spec['name']} — {spec['status']} — {len(children)} runs (spec {spec['spec_hash']})", expanded=True):
            table = children[["id", "name", "method", "seed", "tau_setting", "tau", "status", "final_step", "final_kl_nats_per_text",
                              "final_kl_bits_per_byte"]].rename(columns={
                "final_kl_nats_per_text": "final KL (nats/text)", "final_kl_bits_per_byte": "final KL (bits/byte)",
                "tau_setting": "τ setting", "tau": "τ used"})
            st.dataframe(table, hide_index=True, width="stretch")
            st.markdown("MLflow: " + ", ".join(f"{r['method']} {data.mlflow_hint(r['mlflow_run_id'])}"
                                                for _, r in children.iterrows()))
