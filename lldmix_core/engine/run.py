"""One run (a method × seed × τ of a spec), as small objects the engine calls in order:

    open the run (mixture, row, MLflow child) → build the student (and teacher) → train, with
    `Evaluator` called at every evaluation step (model-map KL, sampled KL, weights, metrics) and
    `Reweighter` asked for new weights at the LLD schedule steps → close the run.

They are handed what they use (services.py: `RunServices`, the per-target `SpecContext`), never the
engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.engine.services import RunServices, SpecContext
from lldmix_core.eval_memo import GRAM, MODEL_MAP, SUBSAMPLE_SCORES
from lldmix_core.eval_memo import SAMPLED as MEMO_SAMPLED
from lldmix_core.evaluate import ScoredModel, domain_means, register_model, score_model
from lldmix_core.kl_rows import SAMPLED, modelmap_name
from lldmix_core.methods import MethodDef
from lldmix_core.models import LanguageModel
from lldmix_core.plan import RunUnit
from lldmix_core.realized import DOMAIN_KEY, UNIQUE_PREFIX, totals_as_metrics, totals_from_history
from lldmix_core.sampled_eval import SampleSet, sampled_kl_of, target_samples
from lldmix_core.scoring import score_texts
from lldmix_core.stopwatch import Stopwatch
from lldmix_core.tau import Tau


@dataclass
class RunHandle:
    """What an open run is known by: its row, its MLflow run, its name and the steps it evaluates."""

    run_id: int
    mlflow_id: str | None
    name: str
    unit: RunUnit
    method: MethodDef
    weights: np.ndarray  # [K] the initial (or the whole run's fixed) mixture
    tau: float | None  # the resolved τ where known at the start (None: no τ, or "auto" until its first estimate)
    kl_steps: set[int]
    sampled_steps: set[int]
    eval_steps: list[int]
    switches: dict[int, np.ndarray] = field(default_factory=dict)  # a phased recipe: step -> weights [K] from then on
    clock: Stopwatch = field(default_factory=Stopwatch)  # where the run's time goes (printed when it closes)


class Reweighter:
    """New domain weights at the LLD schedule steps: softmax(Δ/τ)·prior, or with G⁻¹Δ for adjusted-LLD.
    Resolves τ ("auto" from the spread of Δ) at its first estimate when the engine did not know it
    (`tau` None) and reports it once through `on_tau` (tau.record_resolved). A phased recipe's run gets
    its next phase's weights at the phase's first step (`switches`) instead."""

    def __init__(self, method: MethodDef, tau_setting: Tau, tau: float | None, prior: np.ndarray, schedule: set[int],
                 total_steps: int, gram: Callable[[LanguageModel], np.ndarray], ridge: float,
                 on_tau: Callable[[float], None], switches: dict[int, np.ndarray] | None = None):
        self.method, self.tau_setting, self.tau, self.prior = method, tau_setting, tau, prior
        self.schedule, self.total_steps, self.gram, self.ridge, self.on_tau = schedule, total_steps, gram, ridge, on_tau
        self.switches = dict(switches or {})
        self.last_gram: np.ndarray | None = None  # [K, K] the Gram the last estimate used (None: it used none)

    def wants(self, step: int) -> bool:
        return self.method.iterative and step in self.schedule and step < self.total_steps

    def __call__(self, step: int, lm: LanguageModel, delta: np.ndarray, current: np.ndarray,
                 gram: Callable[[], np.ndarray] | None = None) -> np.ndarray | None:
        """Weights [K] from Δ = ℓ_target − ℓ_model per domain (and the weights in force), or None when this
        step keeps the mixture. The method's behaviour computes them; `gram` (default: `self.gram(lm)`)
        makes the Gram matrix [K, K] if the behaviour asks for it."""
        if step in self.switches:
            return self.switches[step]
        if not self.wants(step):
            return None
        if self.tau is None:
            self.tau = self.tau_setting.resolve(delta)
            self.on_tau(self.tau)
        new = self.method.behaviour.reweight(delta, self.tau, self.prior, current, gram or (lambda: self.gram(lm)), self.ridge)
        self.last_gram = new.gram
        return new.weights


class Evaluator:
    """Called by train() at every evaluation step with the current model and weights; returns new
    weights (iterative methods at schedule steps) or None. At KL steps: registers the checkpoint,
    stores the model-map KL (and at sampled steps the sampled KL), the weights and the metrics.

    A model whose fingerprint was evaluated before in this spec (the seed's base at step 0, a run that
    trains exactly like another, a twin's oracle at the last step) is not evaluated again: its scores
    and Gram matrix come from `ctx.memo` (eval_memo.py), the same numbers the computation gives."""

    def __init__(self, services: RunServices, ctx: SpecContext, run: RunHandle, reweighter: Reweighter,
                 subsample: np.ndarray | None, done_before: int):
        self.services, self.ctx, self.run, self.reweighter = services, ctx, run, reweighter
        self.sub, self.done_before = subsample, done_before
        unit = ctx.spec.lld.unit
        t, texts = ctx.target_scores, ctx.corpus.texts
        self.target_dom = domain_means(t.loglik, t.n_tokens, texts.n_bytes, texts.domains, ctx.corpus.domains, unit)
        if subsample is not None:
            self.target_dom_sub = self._domain_means(t.loglik[subsample], t.n_tokens[subsample], subsample)
            self.sub_key = (ctx.corpus.info.content_hash, hashlib.sha256(np.asarray(subsample, np.int64).tobytes()).hexdigest())
        # the target is a model like the others: a run's model with its very weights (a twin's oracle) finds its scores
        target_fp = services.store.get_model(ctx.target_id).fingerprint
        ctx.memo.keep(MODEL_MAP, target_fp, self._map_key(ctx.target_lm), (t.loglik, t.n_tokens))

    def _domain_means(self, loglik, n_tokens, idx) -> np.ndarray:
        texts = self.ctx.corpus.texts
        return domain_means(loglik, n_tokens, texts.n_bytes[idx], [texts.domains[i] for i in idx],
                            self.ctx.corpus.domains, self.ctx.spec.lld.unit)

    def _map_key(self, lm: LanguageModel) -> tuple:
        """What a model-map vector depends on besides the model: corpus, tokenizer, device."""
        return (self.ctx.corpus.info.id, lm.tokenizer.identity, str(lm.device))

    def _reuse(self, kind: str, fp: str, key, step: int, compute: Callable[[], object]):
        """`compute()` once per identical model (fingerprint `fp`) and `key`; says so when it is reused."""
        found = self.ctx.memo.find(kind, fp, key)
        if found is not None:
            self.services.log(f"  step {step:>6}: {kind} of an identical model ({fp[:12]}) reused")
            return found
        return self.ctx.memo.get(kind, fp, key, compute)

    def __call__(self, step: int, lm: LanguageModel, current: np.ndarray) -> np.ndarray | None:
        self.services.progress(self.services.fraction(self.done_before + step), f"{self.run.name}: evaluating step {step}")
        if self.sub is not None and step not in self.run.kl_steps:
            return self.estimate_only(step, lm, current)
        clock = self.run.clock
        with clock.part("model map"):
            fp = lm.fingerprint()
            model_id = register_model(self.services.store, lm, f"{self.run.name}@{step}", source=f"run:{self.run.run_id}",
                                      run_id=self.run.run_id, step=step, fingerprint=fp)
            metrics, scored = self.model_map(step, model_id, lm, fp)
        if step in self.run.sampled_steps:
            with clock.part("sampled KL"):
                metrics.update(self.sampled(step, model_id, lm, fp))
        base_dom = domain_means(scored.loglik, scored.n_tokens, self.ctx.corpus.texts.n_bytes,
                                self.ctx.corpus.texts.domains, self.ctx.corpus.domains, self.ctx.spec.lld.unit)
        delta = self.target_dom - base_dom
        with clock.part("Δ estimates"):
            new = self.reweighter(step, lm, delta, current, gram=lambda: self.gram(step, lm, fp))
        with clock.part("store + MLflow"):
            self.record(step, new if new is not None else current, base_dom, metrics, delta, lm, fp)
        return new

    def estimate_only(self, step: int, lm: LanguageModel, current: np.ndarray) -> np.ndarray | None:
        """Δ on the seeded subsample only (a schedule step where no KL is measured)."""
        texts = self.ctx.corpus.texts
        with self.run.clock.part("Δ estimates"):
            fp = lm.fingerprint()
            part = self._reuse(SUBSAMPLE_SCORES, fp, (*self.sub_key, lm.tokenizer.identity, str(lm.device)), step,
                               lambda: _read_only(score_texts(lm, [texts.texts[i] for i in self.sub])))
            base_dom = self._domain_means(part.loglik, part.n_tokens, self.sub)
            delta = self.target_dom_sub - base_dom
            new = self.reweighter(step, lm, delta, current, gram=lambda: self.gram(step, lm, fp))
        with self.run.clock.part("store + MLflow"):
            self.record(step, new if new is not None else current, base_dom, {}, delta, lm, fp)
        return new

    def gram(self, step: int, lm: LanguageModel, fp: str) -> np.ndarray:
        """The domain Gram matrix [K, K] of `lm` (the reweighter's `gram`), once per identical model."""
        spec = self.ctx.spec
        key = (self.ctx.corpus.info.content_hash, spec.lld.gram.model_dump_json(), spec.arch.block_size, str(lm.device))
        return self._reuse(GRAM, fp, key, step, lambda: _read_only(np.asarray(self.reweighter.gram(lm))))

    def model_map(self, step: int, model_id: int, lm: LanguageModel, fp: str) -> tuple[dict, ScoredModel]:
        """The model map's KL estimate over the evaluation corpus, and the log-likelihood gap."""
        ctx, store = self.ctx, self.services.store
        texts, target_ll = ctx.corpus.texts, ctx.target_scores.loglik
        self._store_reused(MODEL_MAP, fp, self._map_key(lm), step, model_id, ctx.corpus.info.id, lm)
        scored = score_model(store, lm, model_id, ctx.corpus.info.id, texts)
        ctx.memo.keep(MODEL_MAP, fp, self._map_key(lm), (scored.loglik, scored.n_tokens))
        kl = mc.kl_pair(scored.loglik, target_ll, clip=ctx.spec.kl.clip)
        kl_bpb = float(mc.nats_per_text_to_bits_per_byte(kl, float(texts.n_bytes.mean())))
        gap = float(mc.loglik_gap_bits_per_byte(scored.loglik, target_ll, texts.n_bytes))
        estimator = modelmap_name(ctx.spec.kl.clip)
        store.save_kl(run_id=self.run.run_id, step=step, model_id=model_id, reference_model_id=ctx.target_id,
                      corpus_id=ctx.corpus.info.id, nats_per_text=float(kl), bits_per_byte=kl_bpb,
                      gap_bits_per_byte=gap, estimator=estimator)
        self.services.log(f"  step {step:>6}: model-map KL to target {kl:10.3f} nats/text = {kl_bpb:8.4f} bits/byte, "
                        f"gap {gap:+.4f} bits/byte")
        return {"kl_nats_per_text": kl, "kl_bits_per_byte": kl_bpb, "gap_bits_per_byte": gap}, scored

    def _store_reused(self, kind: str, fp: str, key, step: int, model_id: int, corpus_id: int, lm: LanguageModel) -> None:
        """Store, as `model_id`'s, the vector an identical model got on `corpus_id` (when it has none yet):
        the scoring that follows then finds it (the stored float32 values, so the same numbers)."""
        store = self.services.store
        found = self.ctx.memo.find(kind, fp, key)
        if found is None or store.get_loglik_vector(model_id, corpus_id, lm.tokenizer.identity) is not None:
            return
        store.save_scores(model_id=model_id, corpus_id=corpus_id, tokenizer_hash=lm.tokenizer.identity,
                          logliks=found[0], n_tokens=found[1])
        self.services.log(f"  step {step:>6}: {kind} scores of an identical model ({fp[:12]}) reused")

    def sampled(self, step: int, model_id: int, lm: LanguageModel, fp: str) -> dict:
        """KL(target ‖ model) on texts drawn from the target (the same draws for every run of the seed)."""
        ctx, store = self.ctx, self.services.store
        sset = target_draws(store, self.services.home, ctx, self.run.unit.seed)
        key = (sset.corpus_id, lm.tokenizer.identity, str(lm.device))
        self._store_reused(MEMO_SAMPLED, fp, key, step, model_id, sset.corpus_id, lm)
        res = sampled_kl_of(store, sset, ctx.target_lm, lm, model_id)
        ctx.memo.keep(MEMO_SAMPLED, fp, key, store.get_loglik_vector(model_id, sset.corpus_id, lm.tokenizer.identity))
        store.save_kl(run_id=self.run.run_id, step=step, model_id=model_id, reference_model_id=ctx.target_id,
                      corpus_id=sset.corpus_id, nats_per_text=res.nats_per_text, bits_per_byte=res.bits_per_byte,
                      gap_bits_per_byte=None, estimator=SAMPLED, stderr_bits_per_byte=res.stderr_bits_per_byte,
                      n_samples=res.n_samples)
        self.services.log(f"  step {step:>6}: sampled KL to target {res.bits_per_byte:.4f} ± {res.stderr_bits_per_byte:.4f} "
                        f"bits/byte ({res.n_samples} draws)")
        return {"sampled_kl_bits_per_byte": res.bits_per_byte, "sampled_kl_se_bits_per_byte": res.stderr_bits_per_byte}

    def record(self, step: int, used: np.ndarray, base_dom: np.ndarray, metrics: dict, delta: np.ndarray,
               lm: LanguageModel, fp: str) -> None:
        """The weights in force from `step` on, the model's per-domain log-likelihoods, the metrics.
        At an iterative run's schedule steps also Δ_t (and G_t under lld.record_gram) in the store's
        run_metrics: the benchmark's estimator variants are functions of them (lldmix_core/estimators.py)."""
        ctx, run = self.ctx, self.run
        domains = ctx.corpus.domains
        self.services.store.save_weights(run.run_id, step, dict(zip(domains, map(float, used))),
                                       tau=self.reweighter.tau, method=run.unit.method)
        metrics = {**metrics, **{f"weight/{d}": float(w) for d, w in zip(domains, used)},
                   **{f"loglik_per_{ctx.spec.lld.unit}/{d}": float(v) for d, v in zip(domains, base_dom)}}
        if self.reweighter.wants(step):
            stored = {f"delta/{d}": float(v) for d, v in zip(domains, delta)}
            if ctx.spec.lld.record_gram:
                G = self.reweighter.last_gram
                if G is None:  # (lld.record_gram on a plain LLD run: the Gram is an estimate's cost, not logging)
                    with run.clock.part("Δ estimates"):
                        G = self.gram(step, lm, fp)
                stored.update({f"gram/{i}/{j}": float(G[i, j]) for i in range(len(domains)) for j in range(len(domains))})
            self.services.store.save_metrics_many(run.run_id, [(step, stored)])
            metrics.update({k: v for k, v in stored.items() if k.startswith("delta/")})
        self.services.tracker.log_metrics(run.mlflow_id, metrics, step)


def target_draws(store, home: Path, ctx: SpecContext, seed: int) -> SampleSet:
    """The draws from the target for this seed (made once, then found in the database), kept in `ctx`."""
    if seed not in ctx.samples:
        s = ctx.spec.kl.sampled
        ctx.samples[seed] = target_samples(store, home, ctx.target_lm, ctx.target_id,
                                           n=s.n_samples, n_tokens=s.n_tokens, seed=seed)
    return ctx.samples[seed]


def _read_only(x):
    """`x` (an array, or a dataclass of arrays) with its arrays made read-only: a value handed to
    several runs must not be changed by one of them."""
    arrays = [x] if isinstance(x, np.ndarray) else [v for v in vars(x).values() if isinstance(v, np.ndarray)]
    for a in arrays:
        a.setflags(write=False)
    return x


class StepLogger:
    """Training loss, learning rate and the drawn domain per step, to the store and MLflow in batches
    (flushed before every checkpoint, so a resumed run's history has no gap). At the last step it adds the
    tokens trained per domain (and per phase), counted from the stored history (lldmix_core/realized.py)."""

    def __init__(self, services: RunServices, run: RunHandle, claim: str, total_steps: int, checkpoint_every: int,
                 done_before: int, flush_before_checkpoint: Callable[[int, int], bool], domains: tuple[str, ...] = (),
                 tokens_per_step: int = 0, unique_tokens: dict[str, int] | None = None):
        self.services, self.run, self.claim = services, run, claim
        self.total_steps, self.checkpoint_every, self.done_before = total_steps, checkpoint_every, done_before
        self.flush_before_checkpoint = flush_before_checkpoint
        self.domains, self.tokens_per_step = tuple(domains), tokens_per_step
        self.unique_tokens = dict(unique_tokens or {})  # {domain: unique training tokens}, stored beside the totals
        self.pending: list[tuple[int, float, float, str]] = []

    def __call__(self, step: int, loss: float, lr: float, domain: str) -> None:
        self.services.heartbeat(self.claim)
        self.pending.append((step, loss, lr, domain))
        if (len(self.pending) >= 25 or step + 1 == self.total_steps
                or self.flush_before_checkpoint(step, self.checkpoint_every)):
            self.flush()
            if step + 1 == self.total_steps and self.domains:
                with self.run.clock.part("store + MLflow"):
                    self.record_realized()
            self.services.progress(self.services.fraction(self.done_before + step + 1),
                                 f"{self.run.name}: step {step + 1}/{self.total_steps}")

    def _row(self, loss: float, lr: float, domain: str) -> dict[str, float]:
        row = {"train_loss": loss, "lr": lr}
        if domain in self.domains:
            row[DOMAIN_KEY] = float(self.domains.index(domain))
        return row

    def flush(self) -> None:
        with self.run.clock.part("store + MLflow"):
            self._flush()

    def _flush(self) -> None:
        for s, loss, lr, d in self.pending:
            self.services.tracker.log_metrics(self.run.mlflow_id, self._row(loss, lr, d), s)
        self.services.store.save_metrics_many(self.run.run_id, [(s, self._row(loss, lr, d)) for s, loss, lr, d in self.pending])
        self.pending.clear()

    def record_realized(self) -> None:
        """Tokens per domain (and phase) over the whole run, from every step's stored draw — the steps
        trained before a resume included — at the last step, to the store and MLflow."""
        history = {m["step"]: m["value"] for m in self.services.store.get_metrics(self.run.run_id) if m["key"] == DOMAIN_KEY}
        totals = totals_from_history(history, self.total_steps, len(self.domains), self.tokens_per_step,
                                     list(self.run.switches))
        if totals is None:
            self.services.log(f"{self.run.name}: the stored domain history has gaps; realized weights not recorded")
            return
        metrics = {**totals_as_metrics(totals, self.domains),
                   **{f"{UNIQUE_PREFIX}{d}": float(n) for d, n in self.unique_tokens.items()}}
        self.services.store.save_metrics_many(self.run.run_id, [(self.total_steps, metrics)])
        self.services.tracker.log_metrics(self.run.mlflow_id, metrics, self.total_steps)
