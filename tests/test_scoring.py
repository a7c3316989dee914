"""Scoring: the batched scorer equals a slow one-text-at-a-time reference; windows count every token once."""

import numpy as np
import pytest
import torch

from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.scoring import _windows, score_texts, score_texts_naive

TEXTS = [
    "def f(x):\n    return x * 2\n",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "ünïcödé — ok? 🙂",
    "a",
    "Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file.",
]


def _rel(a, b):
    return np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))


@pytest.mark.parametrize("tokenizer", ["gpt2", "bytes"])
def test_nanogpt_batched_equals_naive(tokenizer):
    lm = new_nanogpt(NanoGPTConfig(vocab_size=50304 if tokenizer == "gpt2" else 320, block_size=256, n_layer=2,
                                   n_head=2, n_embd=32), tokenizer, seed=3)
    fast = score_texts(lm, TEXTS, batch_tokens=300, row_chunk=7)
    slow = score_texts_naive(lm, TEXTS)
    assert _rel(fast.loglik, slow.loglik) < 1e-4
    assert np.array_equal(fast.n_tokens, slow.n_tokens)
    assert np.all(fast.loglik < 0)


def test_batching_does_not_change_results():
    lm = new_nanogpt(NanoGPTConfig(vocab_size=320, block_size=64, n_layer=1, n_head=2, n_embd=16), "bytes", seed=0)
    texts = TEXTS * 3
    a = score_texts(lm, texts, batch_tokens=64)  # one window per batch
    b = score_texts(lm, texts, batch_tokens=100_000)  # everything in one batch
    assert _rel(a.loglik, b.loglik) < 1e-5


def test_first_token_is_conditioned_on_bos():
    # A one-byte text has exactly one scored token: log p(byte | BOS), which the logits at BOS give.
    lm = new_nanogpt(NanoGPTConfig(vocab_size=320, block_size=16, n_layer=1, n_head=2, n_embd=16), "bytes", seed=1)
    s = score_texts(lm, ["a"])
    with torch.no_grad():
        logits = lm.logits(torch.tensor([[lm.tokenizer.bos_id]]))[0, 0]
    expected = float(torch.log_softmax(logits.double(), -1)[ord("a")])
    assert s.n_tokens[0] == 1
    assert abs(s.loglik[0] - expected) < 1e-5


@pytest.mark.parametrize("n,context", [(1, 8), (8, 8), (9, 8), (50, 8), (51, 7), (300, 64)])
def test_windows_count_every_token_once(n, context):
    ids = list(range(1, n + 1))
    wins = _windows(0, ids, bos=0, context=context)
    seq = [0, *ids]
    counted = []
    for w in wins:
        assert len(w.inputs) == len(w.targets) <= context
        start = seq.index(w.inputs[0]) if w.inputs[0] != 0 else 0
        assert w.inputs == seq[start : start + len(w.inputs)]
        assert w.targets == seq[start + 1 : start + 1 + len(w.targets)]
        counted += w.targets[w.count_from :]
        if w is not wins[0]:
            assert w.count_from >= context // 2 - 1  # every counted token sees at least half a context
    assert counted == ids


def test_long_texts_use_windows_and_stay_close_to_full_context():
    # A model with a long context scores a long text exactly; limiting its context to 32 forces windows
    # whose result is a (different, but same-order) log-likelihood with identical token counts.
    lm = new_nanogpt(NanoGPTConfig(vocab_size=320, block_size=256, n_layer=1, n_head=2, n_embd=16), "bytes", seed=2)
    text = "x = 1\n" * 30
    full = score_texts(lm, [text])
    lm.max_context = 32
    windowed = score_texts(lm, [text])
    assert windowed.n_tokens[0] == full.n_tokens[0] == len(text)
    assert abs(windowed.loglik[0] - full.loglik[0]) / abs(full.loglik[0]) < 0.05


def test_hf_model_batched_equals_naive(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=50257, n_embd=32, n_layer=2, n_head=2, n_positions=128)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    from lldmix_core.models.hf import load_hf_model

    lm = load_hf_model(tmp_path, tokenizer="gpt2")
    fast = score_texts(lm, TEXTS, batch_tokens=200, row_chunk=5)
    slow = score_texts_naive(lm, TEXTS)
    assert _rel(fast.loglik, slow.loglik) < 1e-4
    # the HF model's own full forward agrees with our hidden → output split
    ids = torch.tensor([[lm.tokenizer.bos_id, *lm.tokenizer.encode(TEXTS[0])]])
    with torch.no_grad():
        ref = lm.module(ids[:, :-1]).logits
    assert torch.allclose(lm.logits(ids[:, :-1]), ref, atol=1e-5)
    assert lm.fingerprint() == load_hf_model(tmp_path, tokenizer="gpt2").fingerprint()


@pytest.mark.parametrize("tokenizer", ["gpt2", "bytes"])
def test_fused_head_scores_equal_the_plain_head(tokenizer):
    # the scorer's default (fused tiles, never the [tokens × vocabulary] logits) against its plain path
    # (full float32 logits + log-softmax) on the same windows: the 1e-6 relative per text
    lm = new_nanogpt(NanoGPTConfig(vocab_size=50304 if tokenizer == "gpt2" else 320, block_size=32, n_layer=1,
                                   n_head=2, n_embd=32), tokenizer, seed=4)
    assert lm.head() is not None
    texts = TEXTS * 2 + ["x = 1\n" * 20]  # the last one is scored in rolling windows
    fused = score_texts(lm, texts, batch_tokens=100)
    plain = score_texts(lm, texts, batch_tokens=100, fused=False, row_chunk=13)
    assert np.max(np.abs(fused.loglik - plain.loglik) / np.abs(plain.loglik)) < 1e-6
    assert np.array_equal(fused.n_tokens, plain.n_tokens)


def test_fused_head_on_hf_gpt2_equals_plain_and_naive(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=50257, n_embd=32, n_layer=1, n_head=2, n_positions=128)
    torch.manual_seed(1)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    from lldmix_core.models.hf import load_hf_model

    lm = load_hf_model(tmp_path, tokenizer="gpt2")
    assert lm.head() is not None and lm.head().weight.shape == (50257, 32)
    fused = score_texts(lm, TEXTS)
    plain = score_texts(lm, TEXTS, fused=False)
    assert np.max(np.abs(fused.loglik - plain.loglik) / np.abs(plain.loglik)) < 1e-6
    assert _rel(fused.loglik, score_texts_naive(lm, TEXTS).loglik) < 1e-6
