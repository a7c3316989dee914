"""Cached reads for the dashboard. Every cached function takes the database's data version, so its
cache is invalidated as soon as a job moves or a run finishes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from lldmix_core.config import get_settings
from lldmix_core.errors import UserError
from lldmix_core.kl_rows import SAMPLED, is_kind


@st.cache_resource(show_spinner="Opening the database…")
def _store(url: str):
    from lldmix_core.db.store import Store

    return Store.open(url)


def store():
    """The store, or a one-line error on the page (e.g. a database behind head) and stop."""
    try:
        return _store(get_settings().db_url)
    except UserError as e:
        _store.clear()
        st.error(str(e))
        st.stop()


def version() -> str:
    return store().data_version()


@st.cache_data(ttl=60)
def jobs(v: str) -> pd.DataFrame:
    rows = [j.__dict__ for j in store().list_jobs()]
    return pd.DataFrame(rows, columns=["id", "name", "status", "progress", "message", "error", "worker", "cancel_requested",
                                       "created_at", "started_at", "finished_at", "heartbeat_at", "spec_hash", "spec_yaml"])


@st.cache_data(ttl=60)
def runs(v: str) -> pd.DataFrame:
    s = store()
    out = []
    for r, last in s.runs_with_last_kl():
        step, nats, bits = (None, None, None) if last is None else (last.step, last.nats_per_text, last.bits_per_byte)
        out.append({"id": r.id, "name": r.name, "method": r.method, "seed": r.seed, "tau": r.tau,
                    "tau_setting": r.tau_setting, "status": run_status(r),
                    "parent_id": r.parent_id, "job_id": r.job_id, "spec_hash": r.spec_hash[:12],
                    "target_model_id": r.target_model_id, "final_model_id": r.final_model_id,
                    "final_step": step, "final_kl_nats_per_text": nats, "final_kl_bits_per_byte": bits,
                    "mlflow_run_id": r.mlflow_run_id,
                    "created_at": r.created_at, "finished_at": r.finished_at, "error": r.error})
    return pd.DataFrame(out)


def run_status(r) -> str:
    """One vocabulary with the queue: a run stopped by Cancel reads "cancelled", not "failed" (runs
    stored before the worker recorded it as such say so in their error)."""
    if r.status == "failed" and r.error and ("Cancelled" in r.error or r.error.startswith("stopped")):
        return "cancelled"
    return r.status


@st.cache_data(ttl=60)
def kl_rows(parent_id: int, v: str) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(r) for r in store().kl_rows(parent_id)])


def last_per_run(kl: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Each run's row of `kind` ("modelmap" or "sampled", kl_rows.is_kind) at its latest step, from a
    kl_rows frame: the table form of kl_rows.last_kl (empty when no row is of that kind)."""
    if kl.empty:
        return kl
    of = kl[kl["estimator"].map(lambda e: is_kind(e, kind)) & kl["step"].notna()]
    return of.loc[of.groupby("run_id")["step"].idxmax()] if not of.empty else of


@st.cache_data(ttl=60)
def truth(model_id: int, v: str) -> dict[str, float] | None:
    """The weights a target was trained with (known when lldmix trained it)."""
    return store().trained_weights(int(model_id))


@st.cache_data(ttl=60)
def sampled_pairs(parent_id: int, reference: str, v: str) -> list:
    """Per run (not the reference) and seed: its final sampled KL beside the reference's of the same seed
    (lldmix_core.paired.pair_with_reference: the difference, and the per-draw paired difference with its
    standard error where both were scored on the same draws from the target). Each pair's `run.of` is the
    run's row of `last_per_run` as a dict (run_id, method, tau_setting, …)."""
    from lldmix_core.paired import FinalSampled, pair_with_reference

    kl = kl_rows(parent_id, v)
    if kl.empty:
        return []
    final = last_per_run(kl, SAMPLED)
    finals = [FinalSampled(r["method"], int(r["seed"]), float(r["bits_per_byte"]), int(r["corpus_id"]),
                           int(r["model_id"]), of=r.to_dict()) for _, r in final.iterrows()]
    return pair_with_reference(store(), finals, reference)


@st.cache_data(ttl=60)
def weights(run_id: int, v: str) -> pd.DataFrame:
    w = store().get_weights(run_id)
    return pd.DataFrame([{"step": step, "domain": d, "weight": x} for step, ws in w.items() for d, x in ws.items()])


@st.cache_data(ttl=60)
def realized(run_id: int, v: str) -> tuple[float, pd.DataFrame] | None:
    """(TV between intended and realized token shares, a share of tokens; per domain: intended and realized
    share in %, tokens trained) of a run, or None when it stored no realized totals (lldmix_core/realized.py)."""
    from lldmix_core.realized import realized_of

    mix = realized_of(store(), run_id)
    if mix is None:
        return None
    return mix.tv, pd.DataFrame({"domain": mix.domains, "intended (%)": (100 * mix.intended).round(2),
                                 "realized (%)": (100 * mix.realized).round(2), "tokens trained": mix.tokens.astype(int)})


@st.cache_data(ttl=60)
def models(v: str) -> pd.DataFrame:
    return pd.DataFrame([{"id": m.id, "name": m.name, "kind": m.kind, "tokenizer": m.tokenizer, "n_params": m.n_params,
                          "run_id": m.run_id, "step": m.step, "source": m.source} for m in store().list_models()])


@st.cache_data(ttl=60)
def corpora(v: str) -> pd.DataFrame:
    return pd.DataFrame([{"id": c.id, "name": c.name, "hash": c.content_hash[:12], "texts": c.n_texts, "bytes": c.n_bytes,
                          "domains": ", ".join(c.domains)} for c in store().list_corpora()
                         # the sampled KL's draws are a corpus of their own; the map is drawn on evaluation corpora
                         if (c.settings or {}).get("kind") != "target-samples"])


@st.cache_data(ttl=60)
def loglik_matrix(corpus_id: int, v: str):
    ids, L = store().loglik_matrix(corpus_id)
    nbytes = store().load_texts(corpus_id).n_bytes if ids else None
    return ids, L, nbytes


@st.cache_data(ttl=60)
def domain_logliks(corpus_id: int, v: str) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(r) for r in store().domain_loglik_table(corpus_id)])


@st.cache_data(ttl=60)
def recipes(v: str) -> list[dict]:
    return store().list_recipes()


@st.cache_data(ttl=30, show_spinner=False)
def mlflow_server() -> str | None:
    """The tracking server's base URL when one is configured and answers within a second, else None."""
    import urllib.request

    uri = get_settings().mlflow_uri
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=1.0).read()
    except OSError:
        return None
    return uri.rstrip("/")


def mlflow_link(run_id: str | None) -> str | None:
    """A browser link to an MLflow run when the tracking server is reachable, else None."""
    base = mlflow_server()
    return f"{base}/#/runs/{run_id}" if base and run_id else None


@st.cache_data(ttl=600, show_spinner="Placing the models on the map…")
def projection(corpus_id: int, method: str, v: str):
    """(model ids, xy (n, 2) map coordinates, K (n, n) KL matrix in nats/text) for a corpus; computed
    once per data version and projection, so the page itself only draws."""
    import numpy as np

    from lldmix_core import mathcore as mc

    ids, L, _ = loglik_matrix(corpus_id, v)
    K = mc.kl_matrix(L)  # nats/text
    D = np.sqrt(2 * K)  # ‖q_i − q_j‖ / sqrt(N): a Euclidean distance between the centred vectors
    if method == "MDS":
        from sklearn.manifold import MDS

        xy = MDS(n_components=2, metric="precomputed", init="classical_mds", random_state=0, n_init=1).fit_transform(D)
    else:
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, metric="precomputed", init="random", random_state=0,
                  perplexity=max(1.0, min(30.0, (len(ids) - 1) / 3))).fit_transform(D)
    return ids, xy, K


def known_domains(v: str) -> list[str]:
    """Domain names a target's multipliers may name: those of the stored corpora, or (none stored yet)
    the local mini-Pile's, which a new run builds."""
    c = corpora(v)
    if not c.empty:
        return sorted({d.strip() for ds in c["domains"] for d in ds.split(",") if d.strip()})
    from lldmix_core.corpus.local import frozen_manifest

    return sorted(frozen_manifest()["domains"])


RUNS_DIR = Path(__file__).resolve().parents[1] / "runs"


def benchmark_files() -> list[str]:
    """The benchmark files in runs/ (YAML with a top-level `benchmark:`)."""
    from lldmix_core.benchmark.suite import is_benchmark_text

    return sorted(p.name for p in RUNS_DIR.glob("*.yaml") if is_benchmark_text(p.read_text(encoding="utf-8")))


@st.cache_data(ttl=60)
def benchmark_results(file_name: str, v: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(leaderboard, ratios: one row per (pair, estimator), mixtures: one row per (pair, series, domain),
    pairs expected) for runs/<file_name>, from what is finished in the database."""
    from lldmix_core.benchmark.leaderboard import collect, leaderboard
    from lldmix_core.benchmark.suite import expand, load_benchmark

    cells = expand(load_benchmark(RUNS_DIR / file_name))
    pairs = collect(store(), cells)
    board = pd.DataFrame([dataclasses.asdict(r) for r in leaderboard(pairs)])
    ratios, mixes = [], []
    for p in pairs:
        pair = f"{p.cell} · {p.truth} · seed {p.seed}"
        for n, r in p.ratios.items():
            ratios.append({"pair": pair, "cell": p.cell, "truth": p.truth, "seed": p.seed, "estimator": n, "ratio": r})
        series = {"truth": p.truth_weights, "uniform": [1 / len(p.domains)] * len(p.domains), **p.estimates}
        for name, w in series.items():
            for d, x in zip(p.domains, w):
                mixes.append({"pair": pair, "series": name, "domain": d, "weight": float(x)})
    expected = sum(len(c.spec.seeds) for c in cells if not c.is_reference)
    return board, pd.DataFrame(ratios), pd.DataFrame(mixes), expected


@st.cache_data(ttl=60)
def benchmark_pass2(file_name: str, v: str) -> pd.DataFrame:
    """One row per pass-2 method and (cell, truth, seed) of runs/<file_name>: final sampled KL and its
    paired difference to uniform (bits/byte), from what is finished in the database."""
    from lldmix_core.benchmark.leaderboard import pass2
    from lldmix_core.benchmark.suite import expand, load_benchmark

    rows = pass2(store(), expand(load_benchmark(RUNS_DIR / file_name)))
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows])
    return df.assign(case=df.cell + " · " + df.truth + " · seed " + df.seed.astype(str)) if len(df) else df


@st.cache_data(ttl=60)
def benchmark_pass2_cases(file_name: str, v: str) -> pd.DataFrame:
    """One row per pass-2 method and (cell, truth): the paired differences to uniform over seeds, their
    mean and 95 % t interval (seeds are the replicates), the verdict it supports and the smallest
    difference those seeds detect at 80 % power (bits/byte)."""
    from lldmix_core.benchmark.leaderboard import Pass2Row
    from lldmix_core.benchmark.report import pass2_cases
    from lldmix_core.methods import reference_note

    rows = benchmark_pass2(file_name, v)
    if not len(rows):
        return rows
    fields = list(Pass2Row.__dataclass_fields__)
    cases = pass2_cases([Pass2Row(**{k: r[k] for k in fields}) for _, r in rows.iterrows()])
    return pd.DataFrame([{"case": f"{c.cell} · {c.truth}", "method": c.method,
                          "reference": reference_note(c.method).strip(" ()"), "seeds": len(c.diffs),
                          "mean": c.summary.mean_diff if c.summary else c.diffs[0],
                          "lo": c.summary.lo if c.summary else float("nan"),
                          "hi": c.summary.hi if c.summary else float("nan"),
                          "verdict": c.call, "detectable": c.mde} for c in cases])


@st.cache_data(ttl=60)
def benchmark_ladder(file_name: str, v: str) -> pd.DataFrame:
    """One row per (cell, truth) of a headroom ladder (runs/ladder.yaml): H with its interval over seeds,
    the noise floor and H / floor (bits/byte of the sampled KL); empty for another kind of benchmark."""
    from lldmix_core.benchmark.ladder import collect_ladder, is_ladder
    from lldmix_core.benchmark.suite import expand, load_benchmark

    cells = expand(load_benchmark(RUNS_DIR / file_name))
    if not is_ladder(cells):
        return pd.DataFrame()
    out = []
    for r in collect_ladder(store(), cells):
        s = r.summary
        h = s.headroom if s else None
        out.append({"cell": r.cell, "truth": r.truth, "size": r.size, "n_params": r.n_params, "steps": r.steps,
                    "target": "twin" if r.twin else "independent", "seeds": h.n if h else 0,
                    "h": h.mean if h else float("nan"), "lo": h.lo if h else float("nan"),
                    "hi": h.hi if h else float("nan"),
                    "floor": s.floor_bits_per_byte if s else float("nan"),
                    "h_over_floor": s.h_over_floor if s else float("nan"),
                    "detectable_h": r.h_mde, "verdict": r.verdict, "over_3_floors": r.verdict == "yes"})
    return pd.DataFrame(out)


@st.cache_data(ttl=60)
def seed_pairs(parent_id: int, v: str) -> list:
    """The noise floor's stored seed-pair KLs of a spec (lldmix_core.headroom.SeedPairKL)."""
    from types import SimpleNamespace

    from lldmix_core.headroom import stored_seed_pairs

    kl = kl_rows(parent_id, v)
    if kl.empty:
        return []
    fin = last_per_run(kl, SAMPLED)
    runs_ = [SimpleNamespace(run_id=int(r["run_id"]), method=r["method"], seed=int(r["seed"]),
                             final_model_id=int(r["model_id"])) for _, r in fin.iterrows()]
    return stored_seed_pairs(store(), runs_)
