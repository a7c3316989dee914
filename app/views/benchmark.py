"""Benchmark: which mixture estimator recovers a known target mixture best (runs/recovery.yaml).
The leaderboard, every pair's recovery ratio per estimator, and per pair the truth, uniform and the
estimates as bars. Same numbers as `lldmix results runs/recovery.yaml --out FILE`."""

import streamlit as st

import ui_charts as charts
import ui_data as data

st.title("Recovery benchmark")
files = data.benchmark_files()
if not files:
    st.info("No benchmark file in runs/ (a YAML with a top-level `benchmark:` key, e.g. runs/recovery.yaml).")
    st.stop()
chosen = st.selectbox("Benchmark file in runs/", files, index=files.index("recovery.yaml") if "recovery.yaml" in files else 0)
ladder = data.benchmark_ladder(chosen, data.version())
if len(ladder):  # a headroom ladder (uniform and the oracle only): where does H exceed three noise floors?
    st.subheader("Headroom ladder: where does the mixture decide closeness?")
    done = ladder[ladder.seeds > 0]
    st.caption(f"{len(done)} of {len(ladder)} (cell, truth) cases finished. H = KL(target ‖ uniform) − "
               "KL(target ‖ oracle) (sampled KL, bits/byte; the oracle is a reference trained on the target's true "
               "mixture, which a user with a real target lacks); noise floor = sampled KL between oracle models of "
               "consecutive seeds. A red square: H's whole 95 % interval over seeds above 3 × floor.")
    if len(done):
        st.altair_chart(charts.ladder_grid(done), width="content")
    st.dataframe(ladder.drop(columns=["n_params", "over_3_floors"]), hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in ("h", "lo", "hi", "floor", "detectable_h")})
    st.stop()
board, ratios, mixes, expected = data.benchmark_results(chosen, data.version())
p2 = data.benchmark_pass2(chosen, data.version())
if len(p2):
    cases = data.benchmark_pass2_cases(chosen, data.version())
    st.subheader("Pass 2: closer to the target than uniform?")
    st.caption("Final sampled KL(target ‖ model) minus uniform's, paired on the same draws (bits/byte), per "
               "(cell, truth): the mean over seeds with its 95 % t interval, seeds being the replicates (one "
               "seed's draw noise says nothing about other initial models). Left of the dashed line is closer to "
               "the target. Rows marked as references need what a user with a real target lacks.")
    summary = cases.groupby("method").apply(lambda g: {
        "(cell, truth) cases": len(g), "closer (95 % over seeds)": int((g.verdict == "closer").sum()),
        "farther": int((g.verdict == "farther").sum()), "not detected": int((g.verdict == "not detected").sum()),
        "median difference (bits/byte)": float(g["mean"].median()), "reference": g.reference.iloc[0] or "—"},
        include_groups=False)
    st.dataframe([{"method": m, **v} for m, v in summary.items()], hide_index=True)
    st.altair_chart(charts.pass2_differences(cases), width="stretch")
if board.empty:
    if not len(p2):
        st.info(f"No finished pass 1 of {chosen} in the database yet: `lldmix run runs/{chosen}` runs it "
                "(or queue its cells' specs).")
    st.stop()
n_pairs = ratios["pair"].nunique()
st.caption(f"{n_pairs} of {expected} (target, seed) pairs finished. Recovery ratio = KL(estimate ‖ truth) / "
           "KL(uniform ‖ truth) in nats/nats: below 1 the estimate is closer to the truth than uniform. Every "
           "estimator is computed from the same pass 1 (iterative-LLD at τ = 1). The median's interval resamples "
           "whole targets (n_targets distinct), not pairs; rows marked as references need a twin of the target. "
           "Overlap accuracy = 1 − TV(estimate, truth): the share of the mixture the estimate gets right (1: exact).")
table = board.assign(
    median_ci95=board.median_ci95.map(lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]"),
    median_overlap_ci95=board.median_overlap_ci95.map(lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]"),
    reference=board.privileged.map(lambda p: f"needs {p}" if isinstance(p, str) else "—"),
    below_1=board.fraction_below_1.map(lambda f: f"{f:.0%}"),
    beats_paper=board.beats_paper.map(lambda f: "—" if f != f else f"{f:.0%}"),
)[["estimator", "reference", "family", "n", "n_targets", "median", "median_ci95", "median_overlap",
   "median_overlap_ci95", "below_1", "beats_paper",
   "meets_goal", "description"]]
st.subheader("Leaderboard")
st.dataframe(table, hide_index=True, column_config={
    "median": st.column_config.NumberColumn("median ratio", format="%.3f"),
    "median_overlap": st.column_config.NumberColumn("median overlap accuracy (1 − TV)", format="%.3f")})
st.subheader("Ratio per pair")
st.altair_chart(charts.recovery_ratios(ratios, board.estimator.tolist()), width="stretch")
st.subheader("Truth, uniform and estimates")
pair = st.selectbox("Pair (cell · truth · seed)", sorted(ratios["pair"].unique()))
default = ["truth", "uniform", "paper"] + [e for e in board.estimator.tolist() if e != "paper"][:1]
series = st.multiselect("Show", ["truth", "uniform"] + board.estimator.tolist(), default=default)
st.altair_chart(charts.mixture_bars(mixes[mixes.pair == pair], series), width="stretch")
st.dataframe(ratios[ratios.pair == pair][["estimator", "ratio"]].sort_values("ratio"), hide_index=True)
