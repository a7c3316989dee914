"""`lldmix export-swarm` (issue 25 item 5): the swarm files read back with pandas, hold what the store holds,
and feed a numpy least-squares fit of per-domain loss on the mixture."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, fresh_home, run_cli
from lldmix_core.swarm import SwarmRun, SwarmSpec, swarm_files, write_swarm


def _design(ratios: pd.DataFrame, domains: list[str]) -> np.ndarray:
    """[N, K] design: an intercept and the first K − 1 shares (the last is 1 minus their sum)."""
    return np.column_stack([np.ones(len(ratios)), ratios[domains[:-1]].to_numpy()])


def test_a_log_linear_law_written_as_a_swarm_is_recovered_by_least_squares(tmp_path):
    """Closed form: runs whose per-domain losses follow log L_d = a_d + Σ_j B_dj w_j exactly; written as swarm
    files, read with pandas and fitted with numpy least squares, the coefficients come back. Mutation tried:
    writing the metrics header in another domain order than the values -> the recovered B is permuted and
    this fails."""
    rng = np.random.default_rng(3)
    domains = ("code", "legal", "math", "web")
    k, n = len(domains), 30
    a = np.array([1.2, 0.8, 1.5, 1.0])
    B = rng.normal(0, 0.5, size=(k, k - 1))  # the law uses the first K − 1 shares
    runs = []
    for i in range(n):
        w = rng.dirichlet(np.ones(k))
        bpb = np.exp(a + B @ w[:-1])
        runs.append(SwarmRun(100 + i, f"r{i}", "s", "h" * 64, "uniform", i, None, "c0ffee", "corpus", domains, w,
                             -bpb * math.log(2), bpb, float(i) / 10, 0.01, 20))
    spec = SwarmSpec(type("Spec", (), {"name": "s", "spec_hash": "h" * 64, "seeds": (0,), "methods": ("uniform",),
                                       "training": type("T", (), {"steps": 20})()})())
    write_swarm(tmp_path, swarm_files(runs, [spec], "synthetic"))
    ratios = pd.read_csv(tmp_path / "ratios.csv")
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(ratios.columns) == ["run_id", *domains]
    assert (ratios["run_id"] == metrics["run_id"]).all()
    X = _design(ratios, list(domains))
    for j, d in enumerate(domains):
        coef, *_ = np.linalg.lstsq(X, np.log(metrics[f"bits_per_byte/{d}"].to_numpy()), rcond=None)
        assert coef[0] == pytest.approx(a[j], abs=1e-9)
        assert coef[1:] == pytest.approx(B[j], abs=1e-9)
    assert metrics["sampled_kl_bits_per_byte"].to_numpy() == pytest.approx(np.arange(n) / 10, abs=0)


@pytest.fixture(scope="module")
def smoke_swarm(smoke_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("swarm") / "smoke-swarm"
    proc = run_cli("export-swarm", "runs/smoke.yaml", "--out", str(out), env={"LLDMIX_HOME": str(smoke_home),
                                                                               "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""})
    assert "export-swarm: 5 runs × 9 domains" in proc.stdout
    return out


def test_the_smoke_swarm_holds_what_the_store_holds(smoke_home, smoke_swarm):
    """Every value against the store read directly: the mixture is the stored weights weighted by the steps
    each was in force (recomputed here by a loop), uniform's is exactly 1/K, the metrics are the final
    model's stored per-domain scores (bits/byte = −nats/byte / ln 2) and the run's last sampled KL.
    Mutation tried: exporting the run's first stored weights instead of the time average -> the
    iterative runs' rows differ and this fails."""
    from lldmix_core.methods import baseline_method, is_parent_row
    from lldmix_core.spec import load_spec

    ratios = pd.read_csv(smoke_swarm / "ratios.csv")
    metrics = pd.read_csv(smoke_swarm / "metrics.csv")
    meta = json.loads((smoke_swarm / "metadata.json").read_text())
    spec = load_spec(ROOT / "runs/smoke.yaml")
    with fresh_home(smoke_home) as (_, store):
        parent = next(r for r in store.list_runs(spec_hash=spec.spec_hash) if is_parent_row(r.method))
        runs = [r for r in store.list_runs(parent_id=parent.id) if r.status == "finished"]
        corpus = store.get_corpus(runs[0].corpus_id)
        domains = list(corpus.domains)
        assert list(ratios["run_id"]) == [r.id for r in runs] == list(metrics["run_id"])
        assert list(ratios.columns) == ["run_id", *domains]
        for r in runs:
            row = ratios.set_index("run_id").loc[r.id]
            stored = store.get_weights(r.id)
            steps = sorted(stored)
            expect = np.zeros(len(domains))
            for i, t in enumerate(steps):  # in force from t (the first from 0) until the next stored step
                start = 0 if i == 0 else t
                end = min(steps[i + 1] if i + 1 < len(steps) else spec.training.steps, spec.training.steps)
                expect += max(end - start, 0) * np.array([stored[t][d] for d in domains])
            expect /= expect.sum()
            assert row[domains].to_numpy() == pytest.approx(expect, abs=1e-12)
            if r.method == baseline_method():
                assert row[domains].to_numpy() == pytest.approx(np.full(len(domains), 1 / len(domains)), abs=1e-12)
            m = metrics.set_index("run_id").loc[r.id]
            for dl in store.get_domain_logliks(r.final_model_id, corpus.id):
                assert m[f"loglik_nats_per_token/{dl.domain}"] == dl.nats_per_token
                assert m[f"bits_per_byte/{dl.domain}"] == pytest.approx(-dl.nats_per_byte / math.log(2), rel=1e-15)
            last = max((k for k in store.get_kl(r.id) if k.estimator == "sampled"), key=lambda k: k.step)
            assert m["sampled_kl_bits_per_byte"] == last.bits_per_byte
            assert m["sampled_kl_stderr_bits_per_byte"] == last.stderr_bits_per_byte
        assert [s["spec_hash"] for s in meta["specs"]] == [spec.spec_hash]
        assert meta["corpus_hashes"] == [corpus.content_hash]
        assert meta["seeds"] == list(spec.seeds)
        assert meta["git_commits"] == sorted({r.git_commit for r in runs})
        assert [x["method"] for x in meta["runs"]] == [r.method for r in runs]
    assert meta["domains"] == domains
    assert set(meta["columns"]["metrics.csv"]) >= {"sampled_kl_bits_per_byte", "bits_per_byte/<domain>"}
    assert all(c == "run_id" or "nats_per_token" in c or "bits_per_byte" in c for c in metrics.columns)  # units named


def test_a_numpy_fit_consumes_the_smoke_swarm(smoke_swarm):
    """A pooled log-linear fit, log bits/byte_d = a + b · w_d over every (run, domain), by numpy least squares
    on the files, equals the closed-form simple regression (b = cov / var) on the same numbers."""
    ratios = pd.read_csv(smoke_swarm / "ratios.csv").set_index("run_id")
    metrics = pd.read_csv(smoke_swarm / "metrics.csv").set_index("run_id")
    domains = list(ratios.columns)
    w = ratios[domains].to_numpy().ravel()
    y = np.log(metrics[[f"bits_per_byte/{d}" for d in domains]].to_numpy()).ravel()
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones_like(w), w]), y, rcond=None)
    b = np.cov(w, y, bias=True)[0, 1] / np.var(w)
    assert np.all(np.isfinite(coef)) and coef[1] == pytest.approx(b, rel=1e-9)
    assert coef[0] == pytest.approx(y.mean() - b * w.mean(), rel=1e-9)


def test_export_swarm_without_finished_runs_writes_nothing(home, tmp_path):
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    out = tmp_path / "nothing"
    proc = run_cli("export-swarm", "runs/smoke.yaml", "--out", str(out), env=env, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "runs/smoke.yaml: no finished runs of smoke" in lines[0], proc.stderr
    assert not out.exists()


def test_export_swarm_to_a_file_is_refused_and_leaves_it(smoke_home, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    proc = run_cli("export-swarm", "runs/smoke.yaml", "--out", str(target), check=False,
                   env={"LLDMIX_HOME": str(smoke_home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""})
    assert proc.returncode == 2 and "--out" in proc.stderr and "not a folder" in proc.stderr
    assert target.read_text() == "keep me"
