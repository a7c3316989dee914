"""The sampled-KL stage: texts drawn once from the target per (target, seed), then every evaluated
model scored on the same draws, so differences between methods are paired.

Storage (queryable with SQL like everything else):
- the draws are a corpus named `samples:<target fingerprint>:<n>x<tokens>:seed<k>` (settings kind
  "target-samples"; its texts are the decoded samples, for reading only) and a file of drawn token
  ids under `$LLDMIX_HOME/samples/` (written atomically; the ids are what is scored);
- the target's log-probability of each draw and each model's, as `loglik_vectors` rows on that corpus;
- the estimate as a `kl_results` row with estimator "sampled": bits/byte, its standard error, n.

Estimates are always computed from the stored (float32) vectors, so a cached and a fresh result are
the same number.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.models.base import LanguageModel
from lldmix_core.sampled_kl import TargetSamples, sample_texts, score_texts, score_token_ids
from lldmix_core.spec import content_hash

SAMPLES_DOMAIN = "samples"
SAMPLES_KIND = "target-samples"


@dataclass(frozen=True)
class SampleSet:
    samples: TargetSamples
    corpus_id: int
    target_model_id: int

    @property
    def mean_bytes(self) -> float:
        return self.samples.mean_bytes if self.samples.mean_bytes > 0 else float(len(self.samples.ids[0]))


@dataclass(frozen=True)
class SampledResult:
    bits_per_byte: float  # KL(target ‖ model), mean over samples
    stderr_bits_per_byte: float  # sd/√n
    nats_per_text: float
    n_samples: int
    per_sample_bits_per_byte: np.ndarray  # [n], for paired differences


def _display_text(t: str) -> str:
    # NUL cannot be stored in a PostgreSQL text column; the stored text is for reading only
    return t.replace("\x00", "\ufffd")


def target_samples(store, home: Path, target: LanguageModel, target_model_id: int, *, n: int, n_tokens: int,
                   seed: int) -> SampleSet:
    """The draws for (target, n, n_tokens, seed): from the file and the database when made before."""
    fp = target.fingerprint()
    key = content_hash({"target-samples": fp, "n": n, "n_tokens": n_tokens, "seed": seed, "sampler": 1})
    path = Path(home) / "samples" / f"{key[:32]}.npz"
    if path.is_file():
        with np.load(path) as z:
            ids = z["ids"].tolist()
            logp, nbytes = z["logp_target"].astype(np.float64), z["text_bytes"].astype(np.int64)
        texts = [target.tokenizer.decode(t) for t in ids]
        samples = TargetSamples(fp, target.tokenizer.identity, int(seed), ids, texts, nbytes, logp)
    else:
        samples = sample_texts(target, n, n_tokens, seed)
        buf = io.BytesIO()
        np.savez(buf, ids=np.array(samples.ids, dtype=np.int64), logp_target=samples.logp_target,
                 text_bytes=samples.text_bytes)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    corpus_id = store.save_corpus(
        name=f"samples:{fp[:12]}:{n}x{n_tokens}:seed{seed}", content_hash=key,
        source=f"drawn from model {target_model_id} (ancestral, temperature 1)",
        settings={"kind": SAMPLES_KIND, "target_fingerprint": fp, "target_model_id": target_model_id, "n": n,
                  "n_tokens": n_tokens, "seed": seed, "mean_bytes": float(samples.mean_bytes), "file": path.name},
        texts=[_display_text(t) for t in samples.texts], domains=[SAMPLES_DOMAIN] * n)
    sset = SampleSet(samples, corpus_id, target_model_id)
    if store.get_loglik_vector(target_model_id, corpus_id, target.tokenizer.identity) is None:
        store.save_scores(model_id=target_model_id, corpus_id=corpus_id, tokenizer_hash=target.tokenizer.identity,
                          logliks=samples.logp_target, n_tokens=np.full(n, n_tokens))
    return sset


def model_sample_logliks(store, sset: SampleSet, lm: LanguageModel, model_id: int) -> np.ndarray:
    """log p_model of each draw (nats/text), stored once per (model, draws, tokenizer)."""
    cached = store.get_loglik_vector(model_id, sset.corpus_id, lm.tokenizer.identity)
    if cached is None and lm.fingerprint() == sset.samples.target_identity:
        # the very weights the draws came from (a twin target's oracle): its log-probabilities ARE the
        # target's, so KL is 0 exactly, not the 1e-7 by which two scoring paths round differently
        cached = store.get_loglik_vector(sset.target_model_id, sset.corpus_id, lm.tokenizer.identity)
        store.save_scores(model_id=model_id, corpus_id=sset.corpus_id, tokenizer_hash=lm.tokenizer.identity,
                          logliks=cached[0], n_tokens=cached[1])
    if cached is None:
        if lm.tokenizer.identity == sset.samples.tokenizer_identity:
            scored = score_token_ids(lm, sset.samples.ids)
        else:  # another tokenizer: the decoded text under the model's own (sampled_kl.py's caveats)
            scored = score_texts(lm, sset.samples.texts)
        store.save_scores(model_id=model_id, corpus_id=sset.corpus_id, tokenizer_hash=lm.tokenizer.identity,
                          logliks=scored.loglik, n_tokens=scored.n_tokens)
        cached = store.get_loglik_vector(model_id, sset.corpus_id, lm.tokenizer.identity)
    return cached[0].astype(np.float64)


def target_sample_logliks(store, sset: SampleSet, target: LanguageModel, other_tokenizer: str | None = None) -> np.ndarray:
    """log p_target of each draw as the model is compared with it: the drawn ids' log-probability, or
    (for a model with another tokenizer) the target's score of the decoded text."""
    if other_tokenizer is None or other_tokenizer == sset.samples.tokenizer_identity:
        return store.get_loglik_vector(sset.target_model_id, sset.corpus_id, target.tokenizer.identity)[0].astype(np.float64)
    return score_texts(target, sset.samples.texts).loglik.astype(np.float32).astype(np.float64)


def sampled_kl_of(store, sset: SampleSet, target: LanguageModel, lm: LanguageModel, model_id: int) -> SampledResult:
    """KL(target ‖ lm) on the draws: mean and standard error, bits/byte."""
    lm_ll = model_sample_logliks(store, sset, lm, model_id)
    lt = target_sample_logliks(store, sset, target, lm.tokenizer.identity)
    d_nats = mc.per_sample_log_ratio(lt, lm_ll)
    d = mc.to_bits_per_byte(d_nats, sset.mean_bytes)
    mean, se = mc.sampled_kl_estimate(d)
    return SampledResult(mean, se, float(d_nats.mean()), int(d.size), d)


def sampled_steps(n_samples: int, steps_setting, kl_steps, total_steps: int) -> set[int]:
    """The steps at which the sampled KL is measured (each is also a model-map KL step)."""
    if n_samples == 0:
        return set()
    if steps_setting == "final":
        return {total_steps}
    if steps_setting == "final-third":
        return {s for s in kl_steps if 3 * s >= 2 * total_steps} | {total_steps}
    return set(steps_setting)
