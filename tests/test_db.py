"""The store: exact blob round-trips, transactional writes, idempotency, the atomic job queue.

Runs on SQLite always and on PostgreSQL when LLDMIX_TEST_PG_URL is set (scripts/test.sh starts one)."""

import multiprocessing as mp
import os
import uuid

import numpy as np
import pytest
from sqlalchemy import text

from lldmix_core.db.engine import make_engine, upgrade
from lldmix_core.db.store import Store
from lldmix_core.errors import UserError

PG = os.environ.get("LLDMIX_TEST_PG_URL")


def _fresh_pg_url(base: str) -> str:
    """A new empty database on the test server, so tests never share state."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return base.rsplit("/", 1)[0] + "/" + name


PG_SKIP = "LLDMIX_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL server and sets it)"


def need_pg() -> str:
    """The PostgreSQL test server's URL, or a skip with a reason (the skip guard decides if it is allowed)."""
    if not PG:
        pytest.skip(PG_SKIP)
    return PG


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return _fresh_pg_url(need_pg())


@pytest.fixture
def st(db_url):
    upgrade(db_url)
    return Store.open(db_url)


def _corpus(st, n=6):
    texts = [f"text number {i} é" * (i + 1) for i in range(n)]
    domains = ["A", "B", "A", "C", "B", "A"][:n]
    cid = st.save_corpus(name="c", content_hash="h" * 64, source="test", settings={"seed": 1}, texts=texts, domains=domains)
    return cid, texts, domains


def _model(st, name="m", fp="f" * 64):
    return st.register_model(name=name, kind="nanogpt", source="x", tokenizer="bytes", tokenizer_hash="t", n_params=10,
                             fingerprint=fp, config={})


def test_corpus_round_trip_and_dedup(st):
    cid, texts, domains = _corpus(st)
    assert _corpus(st)[0] == cid  # same content hash: same corpus, nothing written
    info = st.get_corpus(cid)
    assert info.domains == ("A", "B", "C") and info.n_texts == 6
    assert info.n_bytes == sum(len(t.encode()) for t in texts)
    loaded = st.load_texts(cid)
    assert loaded.texts == texts and loaded.domains == domains
    assert loaded.n_bytes.tolist() == [len(t.encode()) for t in texts]
    assert st.get_corpus("c").id == cid and st.get_corpus("hhhhhhhh").id == cid
    with pytest.raises(UserError, match="corpus 'nope' not found"):
        st.get_corpus("nope")


def test_scores_round_trip_exactly_and_domain_sums(st):
    cid, texts, domains = _corpus(st)
    mid = _model(st)
    ll = np.array([-1e-30, -3.4e38, -123.456, -0.0, -7.25, -1e6], dtype=np.float32)
    nt = np.array([0, 2**31 - 1, 5, 1, 2, 3], dtype=np.int32)
    st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=ll, n_tokens=nt)
    got_ll, got_nt = st.get_loglik_vector(mid, cid, "t")
    assert got_ll.tobytes() == ll.tobytes() and got_nt.tobytes() == nt.tobytes()
    rows = {r.domain: r for r in st.get_domain_logliks(mid, cid)}
    nb = np.array([len(t.encode()) for t in texts])
    for d in "ABC":
        m = np.array(domains) == d
        assert rows[d].loglik_sum == pytest.approx(float(ll[m].astype(np.float64).sum()))
        assert rows[d].n_bytes == nb[m].sum()
        assert rows[d].nats_per_byte == pytest.approx(rows[d].loglik_sum / nb[m].sum())
    st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=ll, n_tokens=nt)  # idempotent
    with st.engine.connect() as c:
        assert c.execute(text("select count(*) from loglik_vectors")).scalar() == 1
        assert c.execute(text("select count(*) from domain_logliks")).scalar() == 3


def test_nan_scores_write_nothing(st):
    cid, *_ = _corpus(st)
    mid = _model(st)
    with pytest.raises(UserError, match="NaN"):
        st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=[np.nan] * 6, n_tokens=[1] * 6)
    with pytest.raises(UserError, match="6 texts"):
        st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=[-1.0] * 5, n_tokens=[1] * 5)
    assert st.get_loglik_vector(mid, cid, "t") is None and st.get_domain_logliks(mid, cid) == []


def test_corrupt_blob_is_detected(st):
    cid, *_ = _corpus(st)
    mid = _model(st)
    st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=[-1.0] * 6, n_tokens=[1] * 6)
    with st.engine.begin() as c:
        c.execute(text("update loglik_vectors set logliks = :b"), {"b": np.full(6, -2.0, "<f4").tobytes()})
    with pytest.raises(UserError, match="checksum"):
        st.get_loglik_vector(mid, cid, "t")


def test_model_names_and_lookup(st):
    mid = _model(st)
    assert _model(st) == mid
    with pytest.raises(UserError, match="already taken"):
        _model(st, fp="e" * 64)
    assert st.get_model("m").id == mid and st.find_model("f" * 64).id == mid
    with pytest.raises(UserError, match="model 'x' not found"):
        st.get_model("x")


def test_weights_kl_metrics_recipes_are_upserts(st):
    cid, *_ = _corpus(st)
    mid = _model(st)
    rid = st.start_run(key="k", name="r", spec_hash="s", method="uniform")
    assert st.start_run(key="k", name="r", spec_hash="s", method="uniform") == rid
    for _ in range(2):
        st.save_weights(rid, 0, {"A": 0.5, "B": 0.5}, tau=1.0, method="uniform")
        st.save_kl(run_id=rid, step=0, model_id=mid, reference_model_id=mid, corpus_id=cid, nats_per_text=1.0,
                   bits_per_byte=0.1, gap_bits_per_byte=0.0, estimator="modelmap")
        st.save_metrics(rid, 3, {"train_loss": 2.0})
    assert st.get_weights(rid) == {0: {"A": 0.5, "B": 0.5}}
    assert len(st.get_kl(rid)) == 1 and len(st.get_metrics(rid)) == 1
    with pytest.raises(UserError, match="simplex"):
        st.save_weights(rid, 1, {"A": 0.7, "B": 0.7}, tau=1.0, method="uniform")
    st.save_recipe(name="r1", method="m", weights={"A": 0.25, "B": 0.75}, provenance={"tau": 1})
    st.save_recipe(name="r1", method="m", weights={"A": 0.5, "B": 0.5}, provenance={"tau": 2})
    assert st.get_recipe("r1")["weights"] == {"A": 0.5, "B": 0.5} and len(st.list_recipes()) == 1
    with pytest.raises(UserError, match="sum to"):
        st.save_recipe(name="bad", method="m", weights={"A": 0.5}, provenance={})


def test_claim_job_two_stores_one_job(db_url):
    upgrade(db_url)
    a, b = Store.open(db_url), Store(make_engine(db_url).execution_options())
    jid = a.enqueue(name="j", spec_yaml="x", spec_hash="h")
    first, second = a.claim_job("w1"), b.claim_job("w2")
    assert first.id == jid and second is None
    a.request_cancel(jid)
    assert a.get_job(jid).cancel_requested and a.get_job(jid).status == "running"
    q = a.enqueue(name="j2", spec_yaml="x", spec_hash="h")
    a.request_cancel(q)
    assert a.get_job(q).status == "cancelled" and b.claim_job("w2") is None


def _claimer(url, out):
    st = Store.open(url)
    got = []
    while (job := st.claim_job(f"pid{os.getpid()}")) is not None:
        got.append(job.id)
    out.put(got)


def test_claim_job_across_processes(db_url):
    upgrade(db_url)
    st = Store.open(db_url)
    ids = [st.enqueue(name=f"j{i}", spec_yaml="x", spec_hash="h") for i in range(24)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    taken = [j for _ in procs for j in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(taken) == ids  # every job taken exactly once


def test_a_resumed_run_replaces_its_stale_checkpoint(st):
    cid, *_ = _corpus(st)
    rid = st.start_run(key="k", name="r", spec_hash="s", method="uniform")
    kw = dict(kind="nanogpt", source="x", tokenizer="bytes", tokenizer_hash="t", n_params=1, config={}, run_id=rid, step=5)
    old = st.register_model(name="r@5", fingerprint="a" * 64, **kw)
    st.save_scores(model_id=old, corpus_id=cid, tokenizer_hash="t", logliks=[-1.0] * 6, n_tokens=[1] * 6)
    new = st.register_model(name="r@5", fingerprint="b" * 64, **kw)
    assert new == old and st.get_model("r@5").fingerprint == "b" * 64
    assert st.get_loglik_vector(old, cid, "t") is None  # computed from the stale checkpoint: gone
    with pytest.raises(UserError, match="already taken"):  # anything else keeps its name
        st.register_model(name="r@5", fingerprint="c" * 64, **{**kw, "step": 6})


def test_lookups_by_key_final_model_and_runs_with_last_kl(st):
    """get_run_by_key, final_model_id and runs_with_last_kl against rows written here (one query for the
    dashboard: each run with its KL at its LAST step, runs without KL included with None)."""
    cid, *_ = _corpus(st)
    target = _model(st, "t", "t" * 64)
    a = st.start_run(key="ka", name="a", spec_hash="s", method="iterative-lld", tau_setting="auto")
    b = st.start_run(key="kb", name="b", spec_hash="s", method="uniform")
    assert st.get_run_by_key("ka").id == a and st.get_run_by_key("ka").tau_setting == "auto"
    assert st.get_run_by_key("kb").tau_setting is None and st.get_run_by_key("nope") is None
    for step, kl in ((0, 5.0), (10, 2.0), (5, 3.0)):
        m = st.register_model(name=f"a@{step}", kind="nanogpt", source="x", tokenizer="bytes", tokenizer_hash="t",
                              n_params=10, fingerprint=f"{step:02d}" * 32, config={}, run_id=a, step=step)
        st.save_kl(run_id=a, step=step, model_id=m, reference_model_id=target, corpus_id=cid, nats_per_text=kl,
                   bits_per_byte=kl / 10, gap_bits_per_byte=0.0, estimator="modelmap")
    assert st.get_model(st.final_model_id(a, 10)).name == "a@10" and st.final_model_id(b, 10) is None
    rows = {r.id: last for r, last in st.runs_with_last_kl()}
    assert rows[a].step == 10 and rows[a].nats_per_text == 2.0 and rows[b] is None


def test_dashboard_reads_are_typed_rows(st):
    """kl_rows and domain_loglik_table give typed rows (RunKLRow, ModelDomainLoglikRow) holding what was
    written here: only runs under the parent, in (run, step) order; per-domain means = sum / tokens."""
    from lldmix_core.db.store import ModelDomainLoglikRow, RunKLRow

    cid, texts, domains = _corpus(st)
    target, mid = _model(st, "t", "t" * 64), _model(st)
    parent = st.start_run(key="p", name="spec", spec_hash="s", method="spec")
    a = st.start_run(key="ka", name="a", spec_hash="s", method="iterative-lld", seed=3, tau_setting="auto",
                     parent_id=parent)
    other = st.start_run(key="ko", name="o", spec_hash="s", method="uniform")
    for run, step, kl in ((a, 8, 2.0), (a, 0, 4.0), (other, 0, 9.0)):
        st.save_kl(run_id=run, step=step, model_id=mid, reference_model_id=target, corpus_id=cid, nats_per_text=kl,
                   bits_per_byte=kl / 8, gap_bits_per_byte=None, estimator="modelmap")
    assert st.kl_rows(parent) == [RunKLRow(a, "a", "iterative-lld", 3, "auto", 0, 4.0, 0.5, None, "modelmap", None, mid, cid),
                                  RunKLRow(a, "a", "iterative-lld", 3, "auto", 8, 2.0, 0.25, None, "modelmap", None, mid, cid)]
    ll = np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
    nt = np.array([1, 2, 3, 4, 5, 6])
    st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=ll, n_tokens=nt)
    rows = {r.domain: r for r in st.domain_loglik_table(cid)}
    assert all(isinstance(r, ModelDomainLoglikRow) and r.model_id == mid and r.model == "m" for r in rows.values())
    for d in "ABC":
        m = np.array(domains) == d
        assert rows[d].nats_per_token == pytest.approx(ll[m].sum() / nt[m].sum())


def test_paired_sampled_difference_from_stored_vectors(st):
    """KL(p‖a) − KL(p‖b) on shared draws equals the difference of the two separately estimated KLs
    (the target term cancels), in bits/byte with mean_bytes from the samples corpus' settings."""
    from lldmix_core.paired import paired_sampled_difference

    n, mean_bytes = 5, 40.0
    cid = st.save_corpus(name="samples:x", content_hash="s" * 64, source="drawn", settings={"mean_bytes": mean_bytes},
                         texts=[f"draw {i}" for i in range(n)], domains=["samples"] * n)
    target, a, b = _model(st, "p", "1" * 64), _model(st, "a", "2" * 64), _model(st, "b", "3" * 64)
    rng = np.random.default_rng(0)
    logs = {m: -rng.uniform(50, 80, n) for m in (target, a, b)}
    for m, v in logs.items():
        st.save_scores(model_id=m, corpus_id=cid, tokenizer_hash="t", logliks=v, n_tokens=np.full(n, 32))
    stored = {m: st.get_loglik_vector(m, cid, "t")[0].astype(np.float64) for m in logs}  # float32 as stored
    kl = {m: (stored[target] - stored[m]) / np.log(2) / mean_bytes for m in (a, b)}  # per-draw KL, bits/byte
    mean, se = paired_sampled_difference(st, cid, a, b)
    assert mean == pytest.approx(kl[a].mean() - kl[b].mean(), rel=1e-9)
    assert se == pytest.approx((kl[a] - kl[b]).std(ddof=1) / np.sqrt(n), rel=1e-9)
    assert paired_sampled_difference(st, cid, a, a) == (0.0, 0.0)
    unscored = _model(st, "c", "4" * 64)
    assert paired_sampled_difference(st, cid, unscored, b) is None


def _save_same_scores(url, start_at, out):
    import time as _t

    st = Store.open(url)
    while _t.time() < start_at:  # every process sends its first INSERT at the same moment
        pass
    try:
        st.save_scores(model_id=1, corpus_id=1, tokenizer_hash="t", logliks=[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0],
                       n_tokens=[1] * 6)
        out.put("ok")
    except Exception as e:  # noqa: BLE001 — the failure is the finding
        out.put(repr(e))


def test_many_workers_saving_the_same_scores_all_succeed(db_url):
    """Eight workers score the shared target on the shared corpus at once (every job of a spec does):
    each save must succeed (none may lose its retries to the others) and one vector remains."""
    import time as _t

    upgrade(db_url)
    st = Store.open(db_url)
    cid, _, _ = _corpus(st)
    mid = _model(st)
    assert (cid, mid) == (1, 1)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = _t.time() + 8.0
    procs = [ctx.Process(target=_save_same_scores, args=(db_url, start_at, out)) for _ in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == ["ok"] * 8, results
    ll, nt = st.get_loglik_vector(mid, cid, "t")
    assert ll.tolist() == [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0] and nt.tolist() == [1] * 6
    with st.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM loglik_vectors")).scalar() == 1
        assert s.execute(text("SELECT count(*) FROM domain_logliks")).scalar() == 3
