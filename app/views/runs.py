"""Runs: the queue (queued / running / finished / failed / cancelled) beside runs started on the command
line, and the training runs. The whole page refreshes every 2 s while anything runs."""

import pandas as pd
import streamlit as st

import ui_data as data
from lldmix_core.methods import is_parent_row

st.title("Runs")
ACTIVE = ("queued", "running")


def _clock(ts) -> pd.Timestamp | None:
    if ts is None or pd.isna(ts):
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t


def _duration(start, end) -> str:
    s, e = _clock(start), _clock(end) or pd.Timestamp.now(tz="UTC")
    return f"{(e - s).total_seconds():.0f} s" if s is not None else "—"


def nothing_computed(job, runs: pd.DataFrame) -> bool:
    """A finished job that trained nothing: every training run under its spec had finished before the
    job started (the engine re-attaches an already computed spec's parent run to the new job)."""
    if runs.empty:
        return True
    parents = runs[(runs["job_id"] == job["id"]) & runs["method"].map(is_parent_row)]["id"]
    children = runs[runs["parent_id"].isin(list(parents))]
    started = _clock(job["started_at"])
    if children.empty or started is None:
        return True
    return all(_clock(t) is not None and _clock(t) < started for t in children["finished_at"])


def queue(jobs: pd.DataFrame, runs: pd.DataFrame) -> None:
    st.subheader("Queue and command-line runs")
    cli = runs[runs["method"].map(is_parent_row) & runs["job_id"].isna()] if not runs.empty else runs
    if jobs.empty and cli.empty:
        st.info("No runs yet. Start one on the **New run** page, or `lldmix enqueue runs/smoke.yaml`.")
        return
    for _, j in jobs.iterrows():
        cols = st.columns([3, 2, 4, 2, 2])
        cols[0].markdown(f"**#{j['id']} {j['name']}** · queue")
        cols[1].markdown(f"`{j['status']}`")
        cols[2].progress(float(j["progress"] or 0.0), text=(j["message"] or "")[:80])
        started = _clock(j["started_at"])
        cols[3].markdown(f"started {started.strftime('%H:%M:%S') if started is not None else '—'} · "
                         f"{_duration(j['started_at'], j['finished_at'])}")
        if j["status"] in ACTIVE and not j["cancel_requested"]:
            if cols[4].button("Cancel", key=f"cancel-{j['id']}", icon=":material/cancel:", width="stretch"):
                data.store().request_cancel(int(j["id"]))
                st.rerun()
        if j["status"] == "finished" and nothing_computed(j, runs):
            st.info(f"job {j['id']}: already computed — nothing to do (every run of this spec was in the database).")
        if j["status"] == "failed" and j["error"]:
            st.error(f"job {j['id']}: {str(j['error']).splitlines()[0]}")
    for _, r in cli.sort_values("id", ascending=False).iterrows():
        cols = st.columns([3, 2, 4, 2, 2])
        cols[0].markdown(f"**{r['name']}** · command line")
        cols[1].markdown(f"`{r['status']}`")
        cols[2].progress(1.0 if r["status"] != "running" else 0.5, text="command line (progress in its terminal)")
        cols[3].markdown(f"{_duration(r['created_at'], r['finished_at'])}")


def mlflow_row(r) -> None:
    link = data.mlflow_link(r["mlflow_run_id"])
    what = f"{r['name']} (seed {int(r['seed'])})" if pd.notna(r["seed"]) else r["name"]
    if link:
        st.markdown(f"- [{what}]({link})")
    else:
        c1, c2 = st.columns([2, 3])
        c1.markdown(what)
        c2.code(r["mlflow_run_id"], language=None)  # the code block carries a copy button


def training_runs(runs: pd.DataFrame) -> None:
    st.subheader("Training runs")
    if runs.empty:
        st.write("No training runs in the database yet.")
        return
    for _, spec in runs[runs["method"].map(is_parent_row)].sort_values("id", ascending=False).iterrows():
        children = runs[runs["parent_id"] == spec["id"]]
        origin = f"job {int(spec['job_id'])}" if pd.notna(spec["job_id"]) else "command line"
        with st.expander(f"{spec['name']} — {spec['status']} — {len(children)} runs ({origin}, spec {spec['spec_hash']})",
                         expanded=True):
            table = children[["name", "method", "seed", "tau_setting", "tau", "status", "final_step", "final_kl_nats_per_text",
                              "final_kl_bits_per_byte"]].rename(columns={
                "final_kl_nats_per_text": "final KL (nats/text)", "final_kl_bits_per_byte": "final KL (bits/byte)",
                "tau_setting": "τ setting", "tau": "τ used", "final_step": "final step"})
            table["τ setting"] = [t if isinstance(t, str) and t else "—" for t in table["τ setting"]]
            table["τ used"] = [f"{t:g}" if pd.notna(t) else "—" for t in table["τ used"]]
            st.dataframe(table, hide_index=True, width="stretch", column_config={
                "name": st.column_config.TextColumn("name", width="medium")})
            tracked = children[children["mlflow_run_id"].notna()]
            if not tracked.empty:
                server = data.mlflow_server()
                st.markdown("**MLflow** " + ("(links to the tracking server)" if server else
                                             "(no reachable tracking server: run ids to copy)"))
                for _, r in tracked.iterrows():
                    mlflow_row(r)


def page() -> None:
    v = data.version()
    jobs, runs = data.jobs(v), data.runs(v)
    queue(jobs, runs)
    training_runs(runs)
    active = jobs["status"].isin(ACTIVE).any() or (not runs.empty and (runs["status"] == "running").any())
    if st.session_state.get("runs_active") and not active:
        st.session_state["runs_active"] = False
        st.rerun()  # the last run ended: one full rerun, then the page stops polling


v0 = data.version()
j0, r0 = data.jobs(v0), data.runs(v0)
busy = bool(j0["status"].isin(ACTIVE).any() or (not r0.empty and (r0["status"] == "running").any()))
st.session_state["runs_active"] = busy
st.fragment(page, run_every="2s" if busy else None)()
