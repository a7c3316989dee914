"""Evaluation corpus sampled in proportion to the corpus (eval_total) instead of per domain."""

import pytest

from lldmix_core.corpus.eval import build_eval_corpus
from lldmix_core.errors import UserError


def _records():
    # domain A: 30 docs, B: 10 docs, each one chunk of 300 bytes
    return [("A", f"a{i:03d} " + "x" * 295) for i in range(30)] + [("B", f"b{i:03d} " + "y" * 295) for i in range(10)]


def test_total_draws_without_replacement_from_the_pool():
    c = build_eval_corpus(_records(), per_domain=1, total=40, seed=1, name="t", source="s")
    assert sorted(c.texts) == sorted(t for _, t in _records())  # all 40, each once
    c = build_eval_corpus(_records(), per_domain=1, total=20, seed=1, name="t", source="s")
    assert len(c.texts) == 20 and len(set(c.texts)) == 20
    assert list(c.text_domains) == sorted(c.text_domains)  # grouped by domain
    assert all(t.startswith(d.lower()) for d, t in zip(c.text_domains, c.texts))
    assert c.settings["total"] == 20 and "per_domain" not in c.settings


def test_total_is_proportional_on_average_and_seeded():
    shares = []
    for seed in range(200):
        c = build_eval_corpus(_records(), per_domain=1, total=8, seed=seed, name="t", source="s")
        shares.append(c.text_domains.count("A") / 8)
    assert sum(shares) / len(shares) == pytest.approx(0.75, abs=0.03)  # A holds 30/40 of the chunks
    a = build_eval_corpus(_records(), per_domain=1, total=8, seed=5, name="t", source="s")
    b = build_eval_corpus(_records(), per_domain=1, total=8, seed=5, name="t", source="s")
    assert a.texts == b.texts and a.content_hash == b.content_hash


def test_per_domain_path_unchanged_and_total_too_large_refused():
    c = build_eval_corpus(_records(), per_domain=3, seed=1, name="t", source="s")
    assert c.settings == {"max_bytes": 1024, "min_bytes": 256, "per_domain": 3, "seed": 1}
    with pytest.raises(UserError, match="eval_total 41"):
        build_eval_corpus(_records(), per_domain=1, total=41, seed=1, name="t", source="s")
