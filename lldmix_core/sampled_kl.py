"""Sampled KL(target ‖ model): texts drawn from the target, scored under both (bits/byte ± se).

Estimator. Draw n token sequences x_i of fixed length T from the target by ancestral sampling
(temperature 1, seeded, from the full softmax over the model's output rows) and average
d_i = log p_target(x_i) − log p_model(x_i). Past the context, each token is drawn with exactly the
context the scorer (scoring.py's rolling windows) will give it, so the sampling distribution and the
scored log p_target are the same distribution over T-token sequences.

- Same tokenizer (identities equal): both models score the drawn ids. The estimate is unbiased for
  the KL between the two models' distributions over T-token sequences (nats/text).
- Different tokenizers: each sample is decoded to text and BOTH models score that text under their
  own tokenizer (canonical encoding, rolling windows). This estimates E_p[log p̃(text) − log q̃(text)]
  where p̃, q̃ are each model's probability of the canonical tokenisation — a lower bound of the
  model's marginal text probability. Biases: (1) non-canonical drawn token sequences and (2) lossy
  decoding (invalid UTF-8 replaced) make the target's canonical score differ from what was drawn;
  the estimate is then not guaranteed ≥ 0. It is exact when both tokenizers are canonical on the
  samples (e.g. byte-level models). Use `samples.text_bytes` for the per-byte scale.

Heads: every model's log p of the drawn (or re-encoded) tokens comes from `scoring`, i.e. the fused
head (models/fused_head.py: observed-token log-probabilities tile by tile, never the [tokens × vocab]
logits); drawing needs the whole next-token distribution, so `sample_texts` keeps the full float64
log-softmax of each step's logits and sums the drawn tokens' entries of that same distribution.

Units: per-sample values in bits/byte = nats/text ÷ ln 2 ÷ mean bytes per sample; standard error
sd/√n in the same unit. Samples are drawn once per (target, n, T, seed) and reused for every model,
so differences between models are paired (`paired_difference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lldmix_core import mathcore as mc
from lldmix_core.models.base import LanguageModel
from lldmix_core.models.nanogpt import NanoGPT
from lldmix_core.scoring import score_texts, score_token_ids


@dataclass(frozen=True)
class TargetSamples:
    """Texts drawn from a target: token ids (target tokenizer), decoded text, target scores."""

    target_identity: str  # target fingerprint the samples came from
    tokenizer_identity: str
    seed: int
    ids: list[list[int]]  # [n][T] drawn ids, target tokenizer (may include ids ≥ its vocab: padded rows)
    texts: list[str]  # decoded (lossy where ids are not valid UTF-8)
    text_bytes: np.ndarray  # int64 [n], UTF-8 bytes of each decoded text
    logp_target: np.ndarray  # float64 [n], nats/text of the drawn ids under the target

    @property
    def mean_bytes(self) -> float:
        return float(self.text_bytes.mean())


@dataclass(frozen=True)
class SampledKL:
    mean: float  # bits/byte
    se: float  # bits/byte, sd/√n
    n: int  # samples
    per_sample: np.ndarray  # float64 [n], bits/byte (for paired differences)
    mean_nats_per_text: float
    same_tokenizer: bool  # True: exact ids scored (unbiased); False: decoded text per own tokenizer
    unit: str = "bits/byte"


def context_starts(n_tokens: int, context: int) -> list[int]:
    """For each position j = 1..T of seq = [BOS] + ids, the index where the scorer's window that
    counts token j starts (its context is seq[start : j]); mirrors scoring._windows. Index 0 unused."""
    starts = [0] * (n_tokens + 1)
    if n_tokens <= context:
        return starts
    stride = max(1, context // 2)
    done = context
    while done < n_tokens:
        end = min(done + stride, n_tokens)
        for j in range(done + 1, end + 1):
            starts[j] = end - context
        done = end
    return starts


@torch.inference_mode()
def sample_texts(target: LanguageModel, n: int, n_tokens: int, seed: int, *, batch: int = 256,
                 kv_cache: bool = True) -> TargetSamples:
    """Draw `n` sequences of `n_tokens` tokens from `target` (ancestral, temperature 1, seeded by
    `seed` through a private torch.Generator on CPU), each token conditioned exactly as the scorer
    conditions it. Also returns log p_target of each drawn sequence (nats/text), summed while drawing.
    `kv_cache=False` recomputes the whole context for every token (the reference the cache is tested
    and benchmarked against)."""
    if n < 2 or n_tokens < 1:
        raise ValueError("sample_texts needs n ≥ 2 samples of n_tokens ≥ 1 tokens")
    was_training = target.module.training
    target.module.eval()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    starts = context_starts(n_tokens, target.max_context)
    bos = target.tokenizer.bos_id
    all_ids: list[list[int]] = []
    logps: list[np.ndarray] = []
    try:
        for b0 in range(0, n, batch):
            m = min(batch, n - b0)
            seq = torch.full((m, n_tokens + 1), bos, dtype=torch.long)
            lp = torch.zeros(m, dtype=torch.float64)
            step = _IncrementalHidden(target, kv_cache)
            for j in range(1, n_tokens + 1):  # draw seq[:, j] given seq[:, starts[j] : j]
                h = step(seq, starts[j], j)
                logprobs = torch.log_softmax(target.logits_from_hidden(h).double(), dim=-1).cpu()
                tok = torch.multinomial(logprobs.exp(), 1, generator=gen).squeeze(1)
                seq[:, j] = tok
                lp += logprobs.gather(1, tok[:, None]).squeeze(1)
            all_ids.extend(seq[:, 1:].tolist())
            logps.append(lp.numpy())
    finally:
        target.module.train(was_training)
    texts = [target.tokenizer.decode(t) for t in all_ids]
    return TargetSamples(
        target_identity=target.fingerprint(), tokenizer_identity=target.tokenizer.identity, seed=int(seed),
        ids=all_ids, texts=texts,
        text_bytes=_byte_counts(target, all_ids, texts),
        logp_target=np.concatenate(logps),
    )


class _IncrementalHidden:
    """Last hidden state [B, d] for context seq[:, start:j], with a key/value cache rebuilt by one full
    forward whenever the window start moves (so every token sees exactly the scorer's context, positions
    counted from the window start). NanoGPT: lldmix's own cache; Hugging Face models: their
    `past_key_values`; `kv_cache=False` (or a model without a cache): a full forward each time."""

    def __init__(self, lm: LanguageModel, kv_cache: bool = True):
        self.lm = lm
        self.nanogpt = isinstance(lm.module, NanoGPT)
        self.hf_cache = not self.nanogpt and hasattr(lm.module, "base_model")
        self.kv_cache = kv_cache
        self.start = -1
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.past = None  # a Hugging Face model's past_key_values for the current window

    def __call__(self, seq: torch.Tensor, start: int, j: int) -> torch.Tensor:
        dev = self.lm.device
        if not self.kv_cache or not (self.nanogpt or self.hf_cache):
            return self.lm.hidden(seq[:, start:j].to(dev))[:, -1]
        if not self.nanogpt:
            return self._hf(seq, start, j)
        if start != self.start:  # new window: full forward over its prefix, fill the cache
            self.start, self.cache = start, []
            return self._forward(seq[:, start:j].to(dev), pos0=0)[:, -1]
        return self._forward(seq[:, j - 1: j].to(dev), pos0=j - 1 - start)[:, -1]

    def _hf(self, seq: torch.Tensor, start: int, j: int) -> torch.Tensor:
        """The model's own cache: the window's prefix once, then one new token per call (the model counts
        positions from the cache's length, i.e. from the window start, as the scorer does)."""
        dev = self.lm.device
        if start != self.start:
            self.start, self.past = start, None
            x = seq[:, start:j]
        else:
            x = seq[:, j - 1: j]
        out = self.lm.module.base_model(input_ids=x.to(dev), past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.last_hidden_state[:, -1]

    def _forward(self, idx: torch.Tensor, pos0: int) -> torch.Tensor:
        m: NanoGPT = self.lm.module
        T = idx.shape[1]
        x = m.wte(idx) + m.wpe(torch.arange(pos0, pos0 + T, device=idx.device))
        fresh = not self.cache
        for i, block in enumerate(m.blocks):
            a = block.attn
            B, _, C = x.shape
            q, k, v = a.c_attn(block.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, a.n_head, C // a.n_head).transpose(1, 2) for t in (q, k, v))
            if fresh:  # preallocate the whole context once: appending is a write, not a copy
                kb = k.new_empty(B, a.n_head, self.lm.max_context, C // a.n_head)
                vb = torch.empty_like(kb)
                kb[:, :, :T], vb[:, :, :T] = k, v
                self.cache.append((kb, vb))
            else:
                kb, vb = self.cache[i]
                kb[:, :, pos0: pos0 + T], vb[:, :, pos0: pos0 + T] = k, v
                k, v = kb[:, :, : pos0 + T], vb[:, :, : pos0 + T]
            # a fresh prefix is causal; one new token attends to everything cached before it
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=fresh and T > 1)
            x = x + a.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            x = x + block.mlp(block.ln_2(x))
        return m.ln_f(x)


def _byte_counts(lm: LanguageModel, ids: list[list[int]], texts: list[str]) -> np.ndarray:
    """Bytes per sample: byte-level tokenizers count the drawn byte ids (invalid UTF-8 included,
    BOS/padded ids excluded); others the UTF-8 bytes of the decoded text."""
    if lm.tokenizer.name == "bytes":
        return np.array([sum(1 for i in t if i < 256) for t in ids], dtype=np.int64)
    return np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)


def sampled_kl(samples: TargetSamples, target: LanguageModel, model: LanguageModel, *,
               batch_tokens: int = 8192) -> SampledKL:
    """KL(target ‖ model) in bits/byte ± se on `samples` (drawn from `target` by `sample_texts`).
    Same tokenizer: the drawn ids are scored under `model` and the drawn log p_target is used.
    Different tokenizers: the decoded texts are scored under each model's own tokenizer (see the
    module docstring for that estimator's bias)."""
    if target.tokenizer.identity != samples.tokenizer_identity:
        raise ValueError("these samples were drawn with another tokenizer than the target's")
    same = model.tokenizer.identity == samples.tokenizer_identity
    if same:
        lt = samples.logp_target
        lm_ = score_token_ids(model, samples.ids, batch_tokens=batch_tokens).loglik
    else:
        lt = score_texts(target, samples.texts, batch_tokens=batch_tokens).loglik
        lm_ = score_texts(model, samples.texts, batch_tokens=batch_tokens).loglik
    d_nats = mc.per_sample_log_ratio(lt, lm_)
    mean_bytes = samples.mean_bytes if samples.mean_bytes > 0 else float(len(samples.ids[0]))
    d = mc.to_bits_per_byte(d_nats, mean_bytes)
    mean, se = mc.sampled_kl_estimate(d)
    return SampledKL(mean=mean, se=se, n=int(d.size), per_sample=d, mean_nats_per_text=float(d_nats.mean()),
                     same_tokenizer=same)


def paired_difference(a: SampledKL, b: SampledKL) -> tuple[float, float]:
    """(mean, se) of KL_a − KL_b on the same samples, bits/byte (the target's log p cancels)."""
    return mc.paired_difference(a.per_sample, b.per_sample)
