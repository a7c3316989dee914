"""Iterative-LLD inside the Hugging Face Trainer: a mixture-aware dataset and a Trainer callback.

    data = MixtureDataset({"Python": [ex, ...], "Legal": [ex, ...]}, length=max_steps * global_batch)
    cb = LLDCallback(data, eval_texts, eval_domains, tokenizer=get_tokenizer("gpt2"),
                     target={"Python": -1.9, "Legal": -2.4}, method="iterative-lld", tau=1.0,
                     store=Store.open(), tracker=make_tracker(...))
    Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()

`MixtureDataset` draws index i's domain from (seed, i) under the weights in force when the dataloader
fetches it, so any sampler the Trainer uses (its random sampler, accelerate's sharded one, FSDP's or
DeepSpeed's) indexes it and the mixture still follows the weights. The weights live in the process that
fetches: use `dataloader_num_workers=0` (a worker process holds a copy and would never see a change).
Accelerate fetches a batch ahead, so new weights reach the batches one or two optimiser steps after
their schedule step.

`LLDCallback`, at lldmix's schedule steps (mathcore.lld_schedule of the run's max_steps; step s = after s
optimiser steps): every rank scores the model being trained on the evaluation texts (scoring.score_texts;
under FSDP or ZeRO-3 the forward passes are collective, so every rank must run them), takes per-domain
means (mathcore.domain_means), Δ = ℓ_target − ℓ_model, and asks the registry's behaviour for the weights
(METHODS[method].behaviour.reweight, τ resolved by tau.Tau at the first step). Rank 0's Δ, τ and
weights are then broadcast (torch.distributed), so every rank re-weights its dataset with the same bits.
Only rank 0 writes: a `runs` row (method, τ setting and resolved τ, corpus, config, provenance), the
weights per step (store.save_weights), Δ per step as run_metrics `delta/<domain>`, the training loss at
the Trainer's logging steps, and the same metrics to MLflow as lldmix's own runs (engine/run.py: Evaluator).

Not matched (said, not hidden): no model-map or sampled KL and no checkpoint registered per step (the
target here is per-domain log-likelihoods, not a stored model); the run key is a fresh uuid (the Trainer,
not lldmix, owns resuming), so a callback run is never found again and skipped.

transformers is never imported: the Trainer calls `on_<event>` by name and every event this callback
does not handle is a no-op. Only integrations/real_pair.py imports this module (inside a function).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from lldmix_core import mathcore as mc
from lldmix_core import procgroup, provenance
from lldmix_core.errors import UserError
from lldmix_core.gram import exact_gram
from lldmix_core.methods import METHODS
from lldmix_core.models.base import LanguageModel
from lldmix_core.models.hf import HFLanguageModel
from lldmix_core.scoring import score_texts
from lldmix_core.tau import NO_TAU, Tau, record_resolved
from lldmix_core.tracking import NullTracker


class MixtureDataset(torch.utils.data.Dataset):
    """`length` items; item i is an example of a domain drawn from (seed, i) under the weights in force.

    `examples`: {domain: examples the collator takes}; domains are kept sorted (the callback's order).
    `drawn[v]` counts the fetched items per domain while weights version v was in force (v = 0: initial)."""

    def __init__(self, examples: Mapping[str, Sequence], length: int, *, seed: int = 0,
                 weights: Mapping[str, float] | None = None):
        if not examples:
            raise UserError("examples: no domain given")
        for d, xs in examples.items():
            if len(xs) == 0:
                raise UserError(f"examples[{d!r}]: the domain has no training example")
        if length < 1:
            raise UserError(f"length: must be ≥ 1 item, got {length}")
        self.domains = tuple(sorted(examples))
        self.examples = {d: examples[d] for d in self.domains}
        self.length, self.seed = int(length), int(seed)
        k = len(self.domains)
        self.weights = np.full(k, 1.0 / k)
        self.version = 0
        self.drawn: dict[int, np.ndarray] = {0: np.zeros(k, dtype=np.int64)}
        if weights is not None:
            unknown = set(weights) - set(self.domains)
            if unknown:
                raise UserError(f"weights: unknown domain {sorted(unknown)[0]!r}")
            self._set(np.array([float(weights.get(d, 0.0)) for d in self.domains]))

    def _set(self, w: np.ndarray) -> None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (len(self.domains),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise UserError(f"weights: need {len(self.domains)} finite non-negative weights, not all 0; got {w.tolist()}")
        self.weights = w / w.sum()

    def set_weights(self, w: np.ndarray) -> None:
        """The mixture [K] (domains order) from the next fetched item on."""
        self._set(w)
        self.version += 1
        self.drawn[self.version] = np.zeros(len(self.domains), dtype=np.int64)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, int(i)])
        k = min(int(np.searchsorted(np.cumsum(self.weights), rng.random(), side="right")), len(self.domains) - 1)
        xs = self.examples[self.domains[k]]
        self.drawn[self.version][k] += 1
        return xs[int(rng.integers(len(xs)))]


@dataclass(frozen=True)
class StepRecord:
    """What one schedule step decided (identical on every rank: rank 0's, broadcast)."""

    step: int  # optimiser steps done
    model_means: np.ndarray  # [K] ℓ of the model being trained (nats/token or nats/byte)
    delta: np.ndarray  # [K] ℓ_target − ℓ_model
    tau: float  # resolved τ (same unit as Δ)
    weights: np.ndarray  # [K] the mixture from this step on


def _noop(*args, **kwargs):
    return None


class LLDCallback:
    """A Hugging Face `TrainerCallback` (duck-typed) running iterative-LLD (or adjusted-LLD) on a
    `MixtureDataset`. `target`: ℓ_target per domain ({domain: nats per unit}) or an lldmix LanguageModel
    scored once on rank 0. Pass `store` (and `tracker`) on every rank or rank 0 only: only rank 0 writes."""

    def __init__(self, dataset: MixtureDataset, eval_texts: Sequence[str], eval_domains: Sequence[str], *,
                 tokenizer, target: Mapping[str, float] | LanguageModel, method: str = "iterative-lld",
                 tau: float | str = 1.0, unit: str = "token", prior: Mapping[str, float] | None = None,
                 total_steps: int | None = None, store=None, tracker=None, name: str = "hf-trainer",
                 seed: int = 0, ridge: float = 1e-3, gram_texts: int = 8, batch_tokens: int = 8192):
        m = METHODS.get(method)
        if m is None or not m.behaviour.iterative:
            choices = ", ".join(n for n, d in METHODS.items() if d.behaviour.iterative)
            raise UserError(f"method: {method!r} does not re-weight during training (one of: {choices})")
        if unit not in ("token", "byte"):
            raise UserError(f"unit: {unit!r} is not token or byte")
        try:
            setting = Tau.of(tau)
        except ValueError:
            setting = NO_TAU
        if setting.is_none or isinstance(tau, str) and not setting.is_auto:
            raise UserError(f"tau: must be > 0 (nats per {unit}) or 'auto', got {tau!r}")
        if len(eval_texts) != len(eval_domains):
            raise UserError(f"eval_domains: {len(eval_domains)} domains for {len(eval_texts)} eval_texts")
        self.dataset, self.domains = dataset, dataset.domains
        missing = [d for d in self.domains if d not in set(eval_domains)]
        if missing:
            raise UserError(f"eval_domains: no evaluation text for domain {missing[0]!r}")
        self.texts, self.text_domains = list(eval_texts), list(eval_domains)
        self.n_bytes = np.array([len(t.encode("utf-8")) for t in self.texts], dtype=np.int64)
        self.method, self.method_name = m, method
        self.tokenizer, self.target, self.tau_setting, self.unit = tokenizer, target, setting, unit
        k = len(self.domains)
        p = np.array([float((prior or {}).get(d, 1.0 if prior is None else 0.0)) for d in self.domains])
        if prior is not None and (set(prior) - set(self.domains) or not np.all(p >= 0) or p.sum() <= 0):
            raise UserError(f"prior: need non-negative weights, not all 0, over the domains {list(self.domains)}")
        self.prior = p / p.sum() if k else p
        self.total_steps, self.name, self.seed, self.ridge = total_steps, name, seed, ridge
        self.gram_texts, self.batch_tokens = gram_texts, batch_tokens
        self.store, self.tracker = store, tracker or NullTracker()
        self.tau: float | None = None
        self.schedule: set[int] = set()
        self.target_means: np.ndarray | None = None
        self.history: list[StepRecord] = []
        self.run_id: int | None = None
        self.mlflow_id: str | None = None

    def __getattr__(self, name: str):  # every Trainer event not handled below does nothing
        if name.startswith("on_"):
            return _noop
        raise AttributeError(name)

    # ---- the Trainer's events -------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        total = int(self.total_steps or state.max_steps)
        if total < 1:
            raise UserError("total_steps: the run's length in optimiser steps is unknown (set max_steps)")
        self.total_steps, self.schedule = total, set(mc.lld_schedule(total))
        means = self._target_means() if procgroup.is_leader() else None
        self.target_means = np.asarray(self._shared(means), dtype=np.float64)
        if procgroup.is_leader() and self.store is not None:
            self._open_run()
        self._evaluate(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = int(state.global_step)
        if step in self.schedule and step < self.total_steps and all(r.step != step for r in self.history):
            self._evaluate(step, model)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not procgroup.is_leader() or not logs:
            return
        row = {k2: float(logs[k1]) for k1, k2 in (("loss", "train_loss"), ("learning_rate", "lr")) if k1 in logs}
        if row:
            if self.run_id is not None:
                self.store.save_metrics_many(self.run_id, [(int(state.global_step), row)])
            self.tracker.log_metrics(self.mlflow_id, row, int(state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        if procgroup.is_leader() and self.run_id is not None:
            self.store.finish_run(self.run_id, status="finished")
            self.tracker.end(self.mlflow_id)

    # ---- the work -------------------------------------------------------------------------------
    @staticmethod
    def _shared(obj):
        """Rank 0's `obj` on every rank (itself outside a process group)."""
        return procgroup.broadcast_object(obj) if procgroup.world()[1] > 1 else obj

    def _lm(self, model: torch.nn.Module) -> LanguageModel:
        cfg = getattr(model, "config", None)
        ctx = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048)
        return HFLanguageModel(kind="hf", module=model, tokenizer=self.tokenizer, max_context=ctx,
                               config={"arch": "hf", "tokenizer": getattr(self.tokenizer, "name", "?")})

    def _means(self, lm: LanguageModel) -> np.ndarray:
        was = lm.module.training
        lm.module.eval()
        try:
            s = score_texts(lm, self.texts, batch_tokens=self.batch_tokens)
        finally:
            lm.module.train(was)
        return mc.domain_means(s.loglik, s.n_tokens, self.n_bytes, self.text_domains, self.domains, self.unit)

    def _target_means(self) -> np.ndarray:
        if isinstance(self.target, LanguageModel):
            return self._means(self.target)
        missing = [d for d in self.domains if d not in self.target]
        if missing:
            raise UserError(f"target: no log-likelihood for domain {missing[0]!r}")
        return np.array([float(self.target[d]) for d in self.domains])

    def _gram(self, lm: LanguageModel) -> np.ndarray:
        """G [K, K] from the gradients of each domain's mean loss on its first `gram_texts` texts."""
        def loss(module, x, y):
            return torch.nn.functional.cross_entropy(lm.logits(x).flatten(0, 1).float(), y.flatten())

        batches = []
        for d in self.domains:
            texts = [t for t, td in zip(self.texts, self.text_domains) if td == d][: self.gram_texts]
            rows = []
            for t in texts:
                ids = [self.tokenizer.bos_id, *self.tokenizer.encode(t)][: lm.max_context + 1]
                ids_t = torch.tensor([ids], device=lm.device)
                rows.append((ids_t[:, :-1], ids_t[:, 1:]))
            batches.append(rows)
        return exact_gram(lm.module, batches, loss)

    def _evaluate(self, step: int, model: torch.nn.Module) -> None:
        lm = self._lm(model)
        means = self._means(lm)  # every rank: collective forward passes under FSDP / ZeRO-3
        delta = self.target_means - means
        tau = self.tau if self.tau is not None else self.tau_setting.resolve(delta)
        new = self.method.behaviour.reweight(delta, tau, self.prior, self.dataset.weights,
                                             lambda: self._gram(lm), self.ridge)
        means, delta, tau, weights = self._shared((means, delta, tau, new.weights))
        first = self.tau is None
        self.tau = float(tau)
        self.dataset.set_weights(np.asarray(weights))
        rec = StepRecord(step, np.asarray(means), np.asarray(delta), float(tau), self.dataset.weights.copy())
        self.history.append(rec)
        if procgroup.is_leader():
            self._record(rec, first)

    def _settings(self) -> dict:
        return {"method": self.method_name, "tau_setting": self.tau_setting.text,
                "unit": self.unit, "domains": list(self.domains), "prior": self.prior.tolist(), "seed": self.seed,
                "total_steps": self.total_steps, "target_means": [float(v) for v in self.target_means],
                "trainer": "hf-trainer"}

    def _open_run(self) -> None:
        h = hashlib.sha256(json.dumps({}, sort_keys=True).encode())  # as EvalCorpus.content_hash, no settings
        for d, t in zip(self.text_domains, self.texts):
            h.update(d.encode() + b"\0" + t.encode() + b"\0")
        corpus_hash = h.hexdigest()
        corpus_id = self.store.save_corpus(name=f"{self.name}-eval-{corpus_hash[:12]}", content_hash=corpus_hash, source="hf-trainer callback",
                                           settings={}, texts=self.texts, domains=self.text_domains)
        settings = self._settings()
        spec_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        prov = provenance.collect(corpus_hash, getattr(self.tokenizer, "identity", None))
        self.run_id = self.store.start_run(key=f"hf-trainer:{uuid.uuid4().hex}", name=self.name, spec_hash=spec_hash,
                                           method=settings["method"], seed=self.seed, tau_setting=self.tau_setting.text,
                                           config=settings, corpus_id=corpus_id, provenance=prov)
        params = {**settings, "lldmix_run_id": self.run_id}
        self.mlflow_id = self.tracker.start_child(None, self.name, params, provenance.mlflow_tags(prov))
        if self.mlflow_id:
            self.store.set_mlflow_run_id(self.run_id, self.mlflow_id)

    def _record(self, rec: StepRecord, first: bool) -> None:
        if first:
            record_resolved(self.store if self.run_id is not None else None, self.tracker, self.run_id, self.mlflow_id,
                            rec.tau)
        stored = {f"delta/{d}": float(v) for d, v in zip(self.domains, rec.delta)}
        if self.run_id is not None:
            self.store.save_weights(self.run_id, rec.step, dict(zip(self.domains, map(float, rec.weights))),
                                    tau=rec.tau, method=self.method_name)
            self.store.save_metrics_many(self.run_id, [(rec.step, stored)])
        metrics = {**stored, **{f"weight/{d}": float(w) for d, w in zip(self.domains, rec.weights)},
                   **{f"loglik_per_{self.unit}/{d}": float(v) for d, v in zip(self.domains, rec.model_means)}}
        self.tracker.log_metrics(self.mlflow_id, metrics, rec.step)
