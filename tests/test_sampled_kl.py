"""Sampled KL(target ‖ model) against the exact KL by enumeration of every sequence (tiny models)."""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import pytest
import torch

from lldmix_core.models.base import nanogpt_model
from lldmix_core.models.nanogpt import NanoGPT, NanoGPTConfig
from lldmix_core.sampled_kl import context_starts, paired_difference, sample_texts, sampled_kl
from lldmix_core.scoring import _windows, score_token_ids
from lldmix_core.tokenizers import ByteTokenizer

T = 5  # tokens per sequence; the context (3) is shorter, so rolling windows are exercised


class AbcTokenizer:
    """Three symbols a, b, c (ids 0–2) and BOS = 3 (decoded as 'd'): one byte per id."""

    name = "abc-test"
    vocab_size = 4
    bos_id = 3
    identity = hashlib.sha256(b"abc-test").hexdigest()

    def encode(self, text):
        return ["abcd".index(ch) for ch in text]

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def decode(self, ids):
        return "".join("abcd"[i] for i in ids)


def tiny(seed: int, tokenizer=None, vocab=4, block=3):
    torch.manual_seed(seed)
    m = NanoGPT(NanoGPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=1, n_embd=8))
    with torch.no_grad():  # sharpen: default init gives near-uniform outputs and a KL ≈ 0
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 1.0)
    return nanogpt_model(m, tokenizer or AbcTokenizer())


def exact_kl_nats(p, q) -> float:
    """Σ_x p(x)(log p(x) − log q(x)) over all 4^T sequences, both scored by the production scorer."""
    seqs = [list(s) for s in itertools.product(range(4), repeat=T)]
    lp = score_token_ids(p, seqs).loglik
    lq = score_token_ids(q, seqs).loglik
    assert abs(np.exp(lp).sum() - 1) < 1e-6 and abs(np.exp(lq).sum() - 1) < 1e-6  # a distribution (float32 model)
    return float(np.sum(np.exp(lp) * (lp - lq)))


def test_context_starts_mirror_the_scorer_windows():
    for n, c in [(5, 3), (10, 4), (7, 7), (9, 2), (1, 1)]:
        starts = context_starts(n, c)
        seen = {}
        for w in _windows(0, list(range(n)), -1, c):
            start = 0 if w.inputs[0] == -1 else w.inputs[0] + 1  # seq = [BOS] + ids, ids = 0..n-1
            for k in range(w.count_from, len(w.targets)):
                seen[start + k + 1] = start
        assert seen == {j: starts[j] for j in range(1, n + 1)}


def test_drawn_log_probability_is_what_the_scorer_gives():
    p = tiny(0)
    s = sample_texts(p, 32, T, seed=1)
    again = score_token_ids(p, s.ids).loglik
    np.testing.assert_allclose(s.logp_target, again, rtol=0, atol=1e-5)  # float32 model, different batch shapes


def test_sampling_is_seeded():
    p = tiny(0)
    assert sample_texts(p, 8, T, seed=3).ids == sample_texts(p, 8, T, seed=3).ids
    assert sample_texts(p, 8, T, seed=3).ids != sample_texts(p, 8, T, seed=4).ids


def test_sampled_kl_within_three_standard_errors_of_the_exact_kl():
    p, q = tiny(0), tiny(1)
    exact_bpb = exact_kl_nats(p, q) / math.log(2) / T  # one byte per token
    assert exact_bpb > 0.05  # the models differ: the test would catch a wrong sign or scale
    s = sample_texts(p, 2000, T, seed=0)
    est = sampled_kl(s, p, q)
    assert est.n == 2000 and est.same_tokenizer and est.unit == "bits/byte"
    assert abs(est.mean - exact_bpb) < 3 * est.se, (est.mean, est.se, exact_bpb)
    assert est.se < 0.2 * exact_bpb  # the test has power


def test_paired_difference_cancels_the_target_term():
    p, q, r = tiny(0), tiny(1), tiny(2)
    s = sample_texts(p, 500, T, seed=0)
    a, b = sampled_kl(s, p, q), sampled_kl(s, p, r)
    mean, se = paired_difference(a, b)
    exact = (exact_kl_nats(p, q) - exact_kl_nats(p, r)) / math.log(2) / T
    assert mean == pytest.approx(a.mean - b.mean, abs=1e-12)
    assert abs(mean - exact) < 3 * se + 1e-12


def test_across_tokenizers_scores_decoded_text_per_own_tokenizer():
    """A byte-level model and a model on the abc tokenizer: the abc samples decode to ASCII, both
    tokenizers are canonical on them, so the text-level estimator is exact up to sampling noise."""
    p = tiny(0)
    torch.manual_seed(5)
    qb = nanogpt_model(NanoGPT(NanoGPTConfig(vocab_size=257, block_size=3, n_layer=1, n_head=1, n_embd=8)),
                       ByteTokenizer())
    s = sample_texts(p, 200, T, seed=0)
    est = sampled_kl(s, p, qb)
    assert not est.same_tokenizer
    # independent expectation: per sample, drawn log p minus the byte model's log q of the text
    from lldmix_core.scoring import score_texts

    d = (s.logp_target - score_texts(qb, s.texts).loglik) / math.log(2) / T
    np.testing.assert_allclose(est.per_sample, d, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_hf_draws_with_the_models_kv_cache_match_the_full_recompute(tmp_path, arch):
    """A Hugging Face target draws with its own past_key_values: the same ids and the same log p_target
    as recomputing the whole context per token, and that log p is what the scorer gives the ids (a
    context of 16 with 40-token draws: the window moves, so the cache is rebuilt where it starts)."""
    import transformers

    from lldmix_core.models.hf import load_hf_model

    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=50257, n_embd=32, n_layer=2, n_head=2, n_positions=16)
        module = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16)
        module = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():  # sharpen the outputs so draws depend on the context
        for p in module.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    module.save_pretrained(tmp_path / arch)
    lm = load_hf_model(tmp_path / arch, tokenizer="gpt2")
    assert lm.max_context == 16
    cached = sample_texts(lm, 6, 40, seed=3, batch=3)
    full = sample_texts(lm, 6, 40, seed=3, batch=3, kv_cache=False)
    assert cached.ids == full.ids
    np.testing.assert_allclose(cached.logp_target, full.logp_target, rtol=1e-5)
    np.testing.assert_allclose(cached.logp_target, score_token_ids(lm, cached.ids).loglik, rtol=1e-4)
    assert len({tuple(x) for x in cached.ids}) == 6  # draws differ: the test is not trivially passed
