"""Bootstrap standard errors of the model-map KL over texts (mathcore.bootstrap) against closed
forms, and `lldmix corpus noise` on stored scores."""

import math

import numpy as np
import pytest

from lldmix_core.mathcore.bootstrap import kl_bootstrap, kl_difference_bootstrap
from lldmix_core.mathcore.modelmap import kl_pair, nats_per_text_to_bits_per_byte


def test_estimate_is_the_model_map_kl_and_se_matches_the_normal_theory():
    rng = np.random.default_rng(5)
    n, sigma = 4000, 2.0
    ref = rng.normal(-700, 30, n)
    model = ref + rng.normal(0, sigma, n)  # d ~ N(0, σ²): 0.5·var(d) has SE 0.5·σ²·√(2/n)
    n_bytes = np.full(n, 1000.0)
    b = kl_bootstrap(model, ref, n_bytes, n_boot=1500, seed=1)
    assert b.nats_per_text == pytest.approx(kl_pair(model, ref))
    assert b.bits_per_byte == pytest.approx(nats_per_text_to_bits_per_byte(kl_pair(model, ref), 1000.0))
    expected_se = 0.5 * sigma**2 * math.sqrt(2 / n)
    assert b.se_nats_per_text == pytest.approx(expected_se, rel=0.12)
    assert b.se_bits_per_byte == pytest.approx(expected_se / math.log(2) / 1000, rel=0.12)
    quarter = kl_bootstrap(model[:1000], ref[:1000], n_bytes[:1000], n_boot=1500, seed=1)
    assert quarter.se_nats_per_text / b.se_nats_per_text == pytest.approx(2.0, rel=0.2)  # SE ∝ 1/√n


def test_paired_difference_closed_cases():
    rng = np.random.default_rng(0)
    ref, a = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    n_bytes = rng.integers(257, 1025, 300).astype(float)
    assert kl_difference_bootstrap(a, a, ref, n_bytes, n_boot=200) == (0.0, 0.0)
    est, se = kl_difference_bootstrap(a, ref, ref, n_bytes, n_boot=200, seed=4)  # KL(ref, ref) = 0 on every resample
    alone = kl_bootstrap(a, ref, n_bytes, n_boot=200, seed=4)
    assert est == pytest.approx(alone.bits_per_byte) and se == pytest.approx(alone.se_bits_per_byte)
    with pytest.raises(ValueError):
        kl_bootstrap(a, ref[:10], n_bytes)


def test_cli_noise_reports_se_from_stored_scores(store, home):
    from conftest import run_cli

    texts = [f"text {i} " * 40 for i in range(60)]
    cid = store.save_corpus(name="c", content_hash="h" * 64, source="s", settings={}, texts=texts,
                            domains=["A", "B"] * 30)
    rng = np.random.default_rng(2)
    ref = rng.normal(-500, 20, 60)
    m1 = ref + rng.normal(0, 3, 60)
    for name, ll in (("ref", ref), ("m1", m1), ("m2", ref + rng.normal(0, 1, 60))):
        mid = store.register_model(name=name, kind="nanogpt", source="x", tokenizer="bytes", tokenizer_hash="t",
                                   n_params=1, fingerprint=name, config={})
        store.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=ll, n_tokens=np.full(60, 300))
    out = run_cli("corpus", "noise", "--corpus", "c", "--reference", "ref", "--model", "m1", "--model", "m2",
                  "--n-boot", "300").stdout
    n_bytes = np.array([len(t.encode()) for t in texts], float)
    expected = nats_per_text_to_bits_per_byte(kl_pair(m1.astype("<f4"), ref.astype("<f4")), n_bytes.mean())
    assert f"KL(m1, ref) model-map = {expected:.4f} ± " in out  # stored as float32
    assert out.count("bits/byte") == 3 and "KL(m1) − KL(m2)" in out and "60 texts" in out
    missing = run_cli("corpus", "noise", "--corpus", "c", "--reference", "ref", "--model", "nope", check=False)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_first_per_domain_is_what_a_smaller_eval_per_domain_draws():
    from lldmix_core.corpus.eval import build_eval_corpus
    from lldmix_core.corpus.local import frozen_paths
    from lldmix_core.corpus.noise import first_per_domain
    from lldmix_core.corpus.records import iter_records

    recs = list(iter_records(frozen_paths()[1]))
    big = build_eval_corpus(iter(recs), per_domain=1000, seed=42, name="big", source="x")
    small = build_eval_corpus(iter(recs), per_domain=24, seed=42, name="small", source="x")
    keep = first_per_domain(list(big.text_domains), 24)
    assert [big.texts[i] for i in keep] == list(small.texts)
    assert [big.text_domains[i] for i in keep] == list(small.text_domains)
