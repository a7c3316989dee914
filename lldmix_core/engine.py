"""Runs a spec as stages, each keyed by content and skipped when the database says it is done.

    prepare corpus ─► target (train / load) ─► score target
        └► per seed: uniform · iterative-lld (= aggregated pass 1) · adjusted-lld · fixed
                     └► aggregated-lld pass 2 with the geometric-mean recipe of pass 1
                          └► report: final KL to target per method, §4.2 weight recovery

This is the ONLY module that sequences stages and writes to both the store and the tracker.

Over 400 lines for now: splitting the per-run path into named calls with Evaluator/Reweighter objects
and a per-spec context (issue 11, second half) is not done yet; method behaviour already comes from
the registry (methods.py).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from lldmix_core import mathcore as mc
from lldmix_core.config import Settings, confine_path
from lldmix_core.db.store import Store
from lldmix_core.errors import UserError
from lldmix_core.evaluate import domain_means, register_model, score_model
from lldmix_core.models import LanguageModel, load_model, load_nanogpt, new_nanogpt, save_nanogpt
from lldmix_core.engine_claims import StageClaims
from lldmix_core.engine_lld import LLDStages, subsample
from lldmix_core.plan import run_plan
from lldmix_core.prepare import PreparedCorpus, mixture, nanogpt_config, prepare_corpus
from lldmix_core.distill import check_same_tokenizer, distill_loss_fn
from lldmix_core.distributed import broadcast_task, describe_task
from lldmix_core.scoring import score_texts
from lldmix_core.methods import METHODS, tau_text
from lldmix_core.outcomes import RunOutcome, SpecOutcome
from lldmix_core.spec import ModelRef, RunSpec, content_hash

from lldmix_core.tokenizers import get_tokenizer
from lldmix_core.tracking import NullTracker, flush_before_checkpoint, make_tracker
from lldmix_core.train import TrainConfig, train

ProgressFn = Callable[[float, str], None]


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Engine(StageClaims, LLDStages):
    def __init__(self, store: Store, settings: Settings, *, progress: ProgressFn | None = None,
                 should_stop: Callable[[], bool] | None = None, job_id: int | None = None, verbose: bool = True):
        self.store = store
        self.settings = settings
        self.progress = progress or (lambda frac, msg: None)
        self.should_stop = should_stop
        self.job_id = job_id
        self.verbose = verbose
        self.tracker: NullTracker = NullTracker()
        self._beats: dict[str, float] = {}  # stage key -> last heartbeat (monotonic seconds)
        self._downstream_target: dict[str, float] | None = None
        self._descs: dict[str, dict] = {}  # role -> how to rebuild that model (for torchrun followers)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)

    # ------------------------------------------------------------------ the spec, top to bottom
    def run(self, spec: RunSpec) -> SpecOutcome:
        self.tracker = make_tracker(spec.tracking.mlflow, self.settings.mlflow_uri, spec.tracking.experiment or spec.name,
                                    self.settings.mlflow_artifact_root)
        tok = get_tokenizer(spec.tokenizer)
        self.progress(0.0, "preparing corpus")
        corpus = prepare_corpus(self.store, spec.corpus, self.settings, tok, f"{spec.name}-eval")
        self.log(f"corpus: {corpus.info.n_texts} evaluation texts in {len(corpus.domains)} domains "
                 f"({corpus.info.n_bytes:,} bytes), hash {corpus.info.content_hash[:12]}")

        self._check_against_corpus(spec, corpus)  # refuse before anything of the run is written
        parent_key = content_hash({"parent": spec.spec_hash})
        parent_id = self.store.start_run(key=parent_key, name=spec.name, spec_hash=spec.spec_hash, method="spec",
                                         job_id=self.job_id, config=spec.model_dump(mode="json"), corpus_id=corpus.info.id)
        parent_info = self.store.get_run(parent_id)
        mlflow_parent = self.tracker.start_child(None, spec.name, {"spec_hash": spec.spec_hash}, run_id=parent_info.mlflow_run_id) \
            if parent_info.mlflow_run_id else self.tracker.start_parent(
                spec.name, {"spec_hash": spec.spec_hash, "methods": ",".join(spec.methods),
                            "seeds": ",".join(map(str, spec.seeds)), "tokenizer": spec.tokenizer},
                tags={"lldmix.spec": spec.name})
        if mlflow_parent:
            self.store.set_mlflow_run_id(parent_id, mlflow_parent)
        out = SpecOutcome(spec.name, spec.spec_hash, parent_id, corpus.info.content_hash, "", mlflow_parent=mlflow_parent)
        try:
            self.tracker.log_eval_dataset(mlflow_parent, corpus.texts.texts, corpus.texts.domains,
                                          corpus.info.source, f"{spec.name}-eval")
            target_lm, target_id, out.truth = self._target(spec, corpus)
            out.target_name = self.store.get_model(target_id).name
            target_scores = score_model(self.store, target_lm, target_id, corpus.info.id, corpus.texts)
            self._teacher = target_lm if any(METHODS[m].needs_teacher for m in spec.methods) else None
            self._downstream_target = self._downstream(spec, target_lm, parent_id, 0, "target") \
                if spec.downstream.tasks else None
            del target_lm
            self._units_warning(spec, target_id)

            plan = self._plan(spec)
            self._total_steps = sum(spec.training.steps for _ in plan)
            self._done_steps = 0
            for seed, method, tau in plan:
                outcome = self._run_method(spec, corpus, seed, method, tau, parent_id, mlflow_parent, target_id,
                                           target_scores)
                out.runs.append(outcome)
                if METHODS[method].mixture == "aggregate" and tau == spec.lld.taus[0]:
                    out.recipes[seed] = outcome.weights
            self.store.finish_run(parent_id, status="finished")
            self.tracker.end(mlflow_parent)
        except BaseException as e:
            self.store.finish_run(parent_id, status="failed", error=str(e)[:2000])
            self.tracker.end(mlflow_parent, "FAILED")
            raise
        self.progress(1.0, "finished")
        return out

    def _check_against_corpus(self, spec: RunSpec, corpus: PreparedCorpus) -> None:
        """Domain names and tokenizers the spec refers to, checked once the corpus's domains are known."""
        refs = [("lld.prior", spec.lld.prior, None), ("lld.recipe", spec.lld.recipe, None)]
        for role in ("target", "base"):
            t = getattr(spec, role).train
            if t is not None:
                refs.append((f"{role}.train.weights" if t.weights else f"{role}.train.multipliers", t.weights, t.multipliers))
        for field_name, weights, multipliers in refs:
            if weights is not None or multipliers is not None:
                mixture(corpus.domains, weights, multipliers, field_name)
        for role in ("target", "base"):  # models named in the spec must exist before a run row is written
            if getattr(spec, role).model is not None:
                self.store.get_model(getattr(spec, role).model)
        if any(METHODS[m].needs_teacher for m in spec.methods):
            ref, base_tok = spec.target, get_tokenizer(spec.tokenizer)
            if ref.model is not None:
                info = self.store.get_model(ref.model)
                same, other = info.tokenizer_hash == base_tok.identity, info.tokenizer
            elif ref.path is not None:
                path = confine_path(ref.path, self.settings, "target.path")
                tok = get_tokenizer(ref.tokenizer or f"hf:{path}")
                same, other = tok.identity == base_tok.identity, tok.name
            else:
                same, other = True, spec.tokenizer
            if not same:
                raise UserError(f"methods: distillation needs the same tokenizer for base and target: base uses "
                                f"{spec.tokenizer}, target uses {other}")

    @staticmethod
    def _plan(spec: RunSpec) -> list[tuple[int, str, object]]:
        return run_plan(spec)

    def _units_warning(self, spec: RunSpec, target_id: int) -> None:
        target = self.store.get_model(target_id)
        if target.tokenizer_hash != get_tokenizer(spec.tokenizer).identity and spec.lld.unit == "token":
            self.log(f"warning: base tokenizer {spec.tokenizer} and target tokenizer {target.tokenizer} differ; "
                     "Δ in nats/token mixes units — set lld.unit: byte")

    # ------------------------------------------------------------------ models
    def _train_fixed(self, spec: RunSpec, corpus: PreparedCorpus, ref: ModelRef, role: str) -> tuple[LanguageModel, int, dict]:
        """Train a NanoGPT with fixed weights (a target like CodeNanoGPT, or a pretrained base); cached by key."""
        t = ref.train
        weights = mixture(corpus.domains, t.weights, t.multipliers, f"{role}.train.weights")
        truth = dict(zip(corpus.domains, map(float, weights)))
        tok = get_tokenizer(spec.tokenizer)
        cfg = nanogpt_config(spec.arch, tok)
        key = content_hash({"role": role, "train": t.model_dump(mode="json"), "arch": cfg.to_dict(), "tok": tok.identity,
                            "data": corpus.train_identity, "optim": spec.training.model_dump(mode="json", exclude={"steps"})})
        path = self.settings.home / "models" / f"{role}-{key[:16]}.pt"
        name = f"{spec.name}.{role}.{key[:8]}"
        done = self.store.get_stage(key)
        if done is None or not path.is_file():
            with self._exclusive(key, f"train-{role}") as mine:
                if mine:
                    return self._train_fixed_now(spec, corpus, ref, role, key, path, name, weights, truth)
            done = self.store.get_stage(key)  # another worker trained it while we waited
        self.log(f"{role}: found trained model {done['model_name']} in the database (stage {key[:8]}), not retraining")
        self._descs[role] = {"kind": "nanogpt", "source": str(path)}
        return load_nanogpt(path), int(done["model_id"]), truth

    def _train_fixed_now(self, spec, corpus, ref, role, key, path, name, weights, truth) -> tuple[LanguageModel, int, dict]:
        t = ref.train
        tok = get_tokenizer(spec.tokenizer)
        cfg = nanogpt_config(spec.arch, tok)
        self.log(f"{role}: training NanoGPT ({cfg.n_layer}×{cfg.n_embd}) for {t.steps} steps with weights "
                 + ", ".join(f"{d} {w:.3f}" for d, w in truth.items()))
        self.progress(0.0, f"training {role}")
        lm = new_nanogpt(cfg, spec.tokenizer, t.seed)
        lm.module.to(_device())
        tcfg = self._train_config(spec, t.steps, t.seed, lr=t.lr, batch_size=t.batch_size)
        ckpt = self.settings.checkpoints_dir / f"{role}-{key[:16]}" / "last.pt"

        def on_step(s, loss, lr, d):
            self._heartbeat(key)
            if (s + 1) % 50 == 0:
                self.progress(0.0, f"training {role}: step {s + 1}/{t.steps}, loss {loss:.3f} nats/token")

        self._train({"init": {"config": cfg.to_dict(), "tokenizer": spec.tokenizer, "seed": t.seed}}, lm, corpus, tcfg,
                    weights, checkpoint_path=ckpt, should_stop=self.should_stop, on_step=on_step)
        lm.module.to("cpu")
        save_nanogpt(lm, path, truth=truth)
        model_id = register_model(self.store, lm, name, source=str(path))
        self._descs[role] = {"kind": "nanogpt", "source": str(path)}
        self.store.finish_stage(key, kind=f"train-{role}", spec_hash=spec.spec_hash,
                                result={"model_id": model_id, "model_name": name, "path": str(path), "weights": truth})
        return lm, model_id, truth

    def _train(self, desc: dict, lm: LanguageModel, corpus: PreparedCorpus, cfg: TrainConfig, weights, *,
               teacher: dict | None = None, objective: str | None = None, params: dict | None = None, **kw):
        """train(), after telling torchrun's other ranks (if any) how to build the same training."""
        broadcast_task(describe_task(model=desc, streams=corpus.streams.folder, domains=corpus.domains, cfg=cfg,
                                     weights=weights, eval_steps=kw.get("eval_steps", ()),
                                     checkpoint_path=kw.get("checkpoint_path"), teacher=teacher, objective=objective,
                                     params=params))
        return train(lm, corpus.streams, corpus.domains, cfg, weights, **kw)

    def _downstream(self, spec: RunSpec, lm: LanguageModel, run_id: int, step: int, who: str) -> dict[str, float]:
        """§4.6: task accuracies of `lm` (stored as run metrics `downstream/<task>`) and, for a run's
        final model, the Pearson r of its profile with the target's (`downstream_pearson`)."""
        from lldmix_core.downstream import evaluate_tasks, pearson_profile

        d = spec.downstream
        keys = [f"downstream/{t}" for t in d.tasks]
        stored = {m["key"]: m["value"] for m in self.store.get_metrics(run_id) if m["step"] == step}
        if all(k in stored for k in keys):
            scores = {t: stored[k] for t, k in zip(d.tasks, keys)}
        else:
            include = str(confine_path(d.include_path, self.settings, "downstream.include_path")) if d.include_path else None
            scores = evaluate_tasks(lm, list(d.tasks), include_path=include, limit=d.limit, num_fewshot=d.num_fewshot,
                                    include_defaults=d.include_defaults)
        metrics = {f"downstream/{t}": v for t, v in scores.items()}
        if self._downstream_target is not None and who != "target":
            try:
                metrics["downstream_pearson"] = pearson_profile(scores, self._downstream_target)
            except UserError as e:  # e.g. a flat profile: r is undefined, the accuracies still count
                self.log(f"  downstream ({who}): no Pearson r ({e})")
        self.store.save_metrics(run_id, step, metrics)
        self.tracker.log_metrics(self.store.get_run(run_id).mlflow_run_id, metrics, step)
        self.log(f"  downstream ({who}): " + ", ".join(f"{t} {v:.3f} acc" for t, v in scores.items())
                 + (f"; Pearson r with the target's profile {metrics['downstream_pearson']:+.3f}"
                    if "downstream_pearson" in metrics else ""))
        return scores

    def _target(self, spec: RunSpec, corpus: PreparedCorpus) -> tuple[LanguageModel, int, dict | None]:
        ref = spec.target
        if ref.train is not None:
            return self._train_fixed(spec, corpus, ref, "target")
        lm, model_id = self._load_ref(spec, ref, "target")
        return lm, model_id, None

    def _load_ref(self, spec: RunSpec, ref: ModelRef, role: str) -> tuple[LanguageModel, int]:
        if ref.model is not None:
            info = self.store.get_model(ref.model)
            tok = info.tokenizer if info.kind == "hf" else None
            lm = load_model(info.kind, info.source, tokenizer=tok)
            self._descs[role] = {"kind": info.kind, "source": info.source, "tokenizer": tok}
            return lm, info.id
        if ref.path is not None:
            path = confine_path(ref.path, self.settings, f"{role}.path")
            lm = load_model(ref.kind, path, tokenizer=ref.tokenizer, trust_remote_code=ref.trust_remote_code)
            self._descs[role] = {"kind": ref.kind, "source": str(path), "tokenizer": ref.tokenizer}
            fp = lm.fingerprint()
            known = self.store.find_model(fp)
            model_id = known.id if known else register_model(self.store, lm, f"{role}-{path.name}-{fp[:8]}", source=str(path), fingerprint=fp)
            return lm, model_id
        raise UserError(f"{role}: init: random is only allowed for the base")

    def _base(self, spec: RunSpec, corpus: PreparedCorpus, seed: int) -> LanguageModel:
        ref = spec.base
        if ref.init == "random":
            cfg = nanogpt_config(spec.arch, get_tokenizer(spec.tokenizer))
            self._descs["base"] = {"init": {"config": cfg.to_dict(), "tokenizer": spec.tokenizer, "seed": seed}}
            return new_nanogpt(cfg, spec.tokenizer, seed)
        if ref.train is not None:
            return self._train_fixed(spec, corpus, ref, "base")[0]
        return self._load_ref(spec, ref, "base")[0]

    # ------------------------------------------------------------------ one method × seed
    def _train_config(self, spec: RunSpec, steps: int, seed: int, lr: float | None = None, batch_size: int | None = None) -> TrainConfig:
        o = spec.training
        return TrainConfig(steps=steps, batch_size=batch_size or o.batch_size, grad_accum=o.grad_accum,
                           block_size=spec.arch.block_size, lr=lr or o.lr, min_lr=min(o.min_lr, lr or o.lr),
                           warmup_steps=min(o.warmup_steps, steps // 2), weight_decay=o.weight_decay, betas=o.betas,
                           eps=o.eps, grad_clip=o.grad_clip, checkpoint_every=o.checkpoint_every, seed=seed)

    def _run_method(self, spec, corpus: PreparedCorpus, seed: int, method: str, tau_setting, parent_id: int,
                    mlflow_parent, target_id: int, target_scores) -> RunOutcome:
        # each spec owns its runs (the Compare page groups by spec); trained targets are shared by content
        key = self._run_key(spec, corpus, seed, method, tau_setting, target_id)
        name = f"{spec.name}.{method}.seed{seed}" + (f".tau{tau_setting}" if len(spec.lld.taus) > 1 and tau_setting is not None else "")
        existing = self.store.get_run_by_key(key)
        if existing is not None and existing.status == "finished":
            self.log(f"{name}: finished earlier (run {existing.id}); nothing to do")
            self._done_steps += spec.training.steps
            return self._outcome(existing.id, method, seed, tau_setting, corpus, skipped=True)
        claim = content_hash({"run": key})
        with self._exclusive(claim, "run") as mine:
            if mine:
                outcome = self._train_run(spec, corpus, seed, method, tau_setting, parent_id, mlflow_parent, target_id,
                                          target_scores, key, name, claim)
                self.store.finish_stage(claim, kind="run", spec_hash=spec.spec_hash, result={"run_id": outcome.run_id})
                return outcome
        self._done_steps += spec.training.steps  # another worker ran it while we waited
        run_id = self.store.get_run_by_key(key).id
        return self._outcome(run_id, method, seed, tau_setting, corpus, skipped=True)

    def _run_key(self, spec: RunSpec, corpus: PreparedCorpus, seed: int, method: str, tau_setting, target_id: int) -> str:
        """The content key of one run (spec, seed, method, τ setting, target, corpus)."""
        # each spec owns its runs (the Compare page groups by spec); trained targets are shared by content
        return content_hash({"spec_hash": spec.spec_hash, "seed": seed, "method": method, "tau": str(tau_setting),
                             "target": target_id, "corpus": corpus.info.content_hash,
                             # v2: the student normalised over its padded rows (runs of v1 are not reused)
                             **({"distill_loss": 2} if METHODS[method].needs_teacher else {})})

    def _train_run(self, spec, corpus: PreparedCorpus, seed: int, method: str, tau_setting, parent_id: int, mlflow_parent,
                   target_id: int, target_scores, key: str, name: str, claim: str) -> RunOutcome:
        K = len(corpus.domains)
        prior = mixture(corpus.domains, spec.lld.prior, None, "lld.prior") if spec.lld.prior else np.full(K, 1.0 / K)
        steps = spec.training.steps
        schedule = set(mc.lld_schedule(steps))
        M = METHODS[method]
        iterative = M.iterative
        # KL is measured at `kl_steps`; iterative methods are also called at every schedule step to re-weight
        kl_steps = (schedule if spec.eval_steps == "schedule" else set(spec.eval_steps)) | {steps}
        eval_steps = sorted(kl_steps | (schedule if iterative else set()))
        sub = subsample(corpus, spec.lld.estimate_texts_per_domain, seed) if iterative else None
        tau = None
        loss_fn = None
        drawn_from = METHODS.get(spec.distill.mixture) if M.needs_teacher else None
        if M.mixture == "recipe":
            weights = mixture(corpus.domains, spec.lld.recipe, None, "lld.recipe")
        elif M.mixture == "aggregate":
            weights, tau = self._aggregate(spec, corpus, seed, tau_setting, target_id)
        elif drawn_from is not None and drawn_from.mixture == "aggregate":  # distillation on the recipe
            weights, _ = self._aggregate(spec, corpus, seed, spec.lld.taus[0], target_id)
        else:
            weights = prior  # iterative methods: replaced at step 0 by the first estimate

        run_id = self.store.start_run(key=key, name=name, spec_hash=spec.spec_hash, method=method, seed=seed,
                                      parent_id=parent_id, job_id=self.job_id,
                                      config={"eval_steps": eval_steps}, tau_setting=tau_text(tau_setting), tau=tau,
                                      target_model_id=target_id, corpus_id=corpus.info.id)
        if tau is not None:  # a recipe's run inherits pass 1's resolved τ (also when the row existed)
            self.store.update_run_tau(run_id, tau)
        info = self.store.get_run(run_id)
        params = {"method": method, "seed": seed, "steps": steps, "unit": spec.lld.unit,
                  **({"tau_setting": tau_text(tau_setting)} if tau_setting is not None else {}),
                  **({"tau": tau} if tau is not None else {}),
                  "batch_size": spec.training.batch_size, "lr": spec.training.lr, "arch": spec.arch.model_dump_json(),
                  "corpus_hash": corpus.info.content_hash, "spec_hash": spec.spec_hash}
        mlflow_id = self.tracker.start_child(mlflow_parent, name, params, tags={"lldmix.method": method},
                                             run_id=info.mlflow_run_id)
        if mlflow_id and not info.mlflow_run_id:
            self.store.set_mlflow_run_id(run_id, mlflow_id)
        self.log(f"{name}: training {steps} steps, evaluating at {len(eval_steps)} steps")

        lm = self._base(spec, corpus, seed)
        lm.module.to(_device())
        if M.needs_teacher:
            check_same_tokenizer(lm, self._teacher)
            self._teacher.module.to(_device())
            loss_fn = distill_loss_fn(self._teacher, M.distill_objective, dict(spec.distill.params))
        base_id = register_model(self.store, lm, f"{spec.name}.base.seed{seed}.{lm.fingerprint()[:8]}")
        state = {"tau": tau}
        texts = corpus.texts
        target_ll = target_scores.loglik
        target_dom = domain_means(target_ll, target_scores.n_tokens, texts.n_bytes, texts.domains, corpus.domains, spec.lld.unit)
        if sub is not None:
            target_dom_sub = domain_means(target_ll[sub], target_scores.n_tokens[sub], texts.n_bytes[sub],
                                          [texts.domains[i] for i in sub], corpus.domains, spec.lld.unit)
        done_before = self._done_steps

        def on_eval(step: int, lm: LanguageModel, current: np.ndarray):
            self.progress(self._fraction(done_before + step), f"{name}: evaluating step {step}")
            if sub is not None and step not in kl_steps:  # estimate Δ only, on the subsample
                part = score_texts(lm, [texts.texts[i] for i in sub])
                base_dom = domain_means(part.loglik, part.n_tokens, texts.n_bytes[sub], [texts.domains[i] for i in sub],
                                        corpus.domains, spec.lld.unit)
                new = reweight(step, lm, target_dom_sub - base_dom)
                used = new if new is not None else current
                self.store.save_weights(run_id, step, dict(zip(corpus.domains, map(float, used))), tau=state["tau"],
                                        method=method)
                metrics = {f"weight/{d}": float(w) for d, w in zip(corpus.domains, used)}
                metrics.update({f"loglik_per_{spec.lld.unit}/{d}": float(v) for d, v in zip(corpus.domains, base_dom)})
                self.tracker.log_metrics(mlflow_id, metrics, step)
                return new
            model_id = register_model(self.store, lm, f"{name}@{step}", source=f"run:{run_id}", run_id=run_id, step=step)
            scored = score_model(self.store, lm, model_id, corpus.info.id, texts)
            kl = mc.kl_pair(scored.loglik, target_ll, clip=spec.kl.clip)
            mean_bytes = float(texts.n_bytes.mean())
            kl_bpb = float(mc.nats_per_text_to_bits_per_byte(kl, mean_bytes))
            gap = float(mc.loglik_gap_bits_per_byte(scored.loglik, target_ll, texts.n_bytes))
            estimator = "modelmap" if spec.kl.clip == 0 else f"modelmap-clip{spec.kl.clip:g}"
            self.store.save_kl(run_id=run_id, step=step, model_id=model_id, reference_model_id=target_id,
                               corpus_id=corpus.info.id, nats_per_text=float(kl), bits_per_byte=kl_bpb,
                               gap_bits_per_byte=gap, estimator=estimator)
            base_dom = domain_means(scored.loglik, scored.n_tokens, texts.n_bytes, texts.domains, corpus.domains, spec.lld.unit)
            new = reweight(step, lm, target_dom - base_dom)
            used = new if new is not None else current
            self.store.save_weights(run_id, step, dict(zip(corpus.domains, map(float, used))), tau=state["tau"], method=method)
            metrics = {"kl_nats_per_text": kl, "kl_bits_per_byte": kl_bpb, "gap_bits_per_byte": gap}
            metrics.update({f"weight/{d}": float(w) for d, w in zip(corpus.domains, used)})
            metrics.update({f"loglik_per_{spec.lld.unit}/{d}": float(v) for d, v in zip(corpus.domains, base_dom)})
            self.tracker.log_metrics(mlflow_id, metrics, step)
            self.log(f"  step {step:>6}: KL to target {kl:10.3f} nats/text = {kl_bpb:8.4f} bits/byte, "
                     f"gap {gap:+.4f} bits/byte")
            return new

        def reweight(step: int, lm: LanguageModel, delta: np.ndarray) -> np.ndarray | None:
            """New weights from Δ = ℓ_target − ℓ_model per domain at a schedule step (iterative methods)."""
            if not iterative or step not in schedule or step >= steps:
                return None
            if state["tau"] is None:
                state["tau"] = mc.resolve_tau(tau_setting, delta)
                self.store.update_run_tau(run_id, state["tau"])
            if M.mixture == "adjusted":
                gram = self._gram(spec, lm, corpus)
                return mc.adjusted_weights(delta, gram, state["tau"], prior, ridge=spec.lld.gram.ridge)
            return mc.lld_weights(delta, state["tau"], prior)

        pending: list[tuple[int, float, float]] = []

        def on_step(step: int, loss: float, lr: float, domain: str):
            self._heartbeat(claim)
            pending.append((step, loss, lr))
            if len(pending) >= 25 or step + 1 == steps or flush_before_checkpoint(step, spec.training.checkpoint_every):
                for s, l, r in pending:
                    self.tracker.log_metrics(mlflow_id, {"train_loss": l, "lr": r}, s)
                self.store.save_metrics_many(run_id, [(s, {"train_loss": l, "lr": r}) for s, l, r in pending])
                pending.clear()
                self.progress(self._fraction(done_before + step + 1), f"{name}: step {step + 1}/{steps}")

        ckpt = self.settings.checkpoints_dir / key[:16] / "last.pt"
        try:
            distill = {"teacher": self._descs["target"], "objective": M.distill_objective,
                       "params": dict(spec.distill.params)} if M.needs_teacher else {}
            self._train(self._descs["base"], lm, corpus, self._train_config(spec, steps, seed), weights,
                        eval_steps=eval_steps, on_eval=on_eval, on_step=on_step, checkpoint_path=ckpt,
                        should_stop=self.should_stop, loss_fn=loss_fn, **distill)
        except BaseException as e:
            self.store.finish_run(run_id, status="failed", error=str(e)[:2000])
            self.tracker.end(mlflow_id, "FAILED")
            raise
        if spec.downstream.tasks:
            self._downstream(spec, lm, run_id, steps, name)
        self.store.update_run_models(run_id, base_model_id=base_id, final_model_id=self.store.final_model_id(run_id, steps))
        if M.mixture == "aggregate":
            recipe = self.store.get_recipe(self._recipe_name(spec, seed, tau_setting))
            self.tracker.log_dict(mlflow_id, _jsonable(recipe), "recipes/recipe.json")
        self.store.finish_run(run_id, status="finished")
        self.tracker.end(mlflow_id)
        self._done_steps = done_before + steps
        return self._outcome(run_id, method, seed, tau_setting, corpus, skipped=False)

    def _fraction(self, steps_done: int) -> float:
        return min(0.999, steps_done / max(1, self._total_steps))

    # ------------------------------------------------------------------ results
    def _outcome(self, run_id: int, method: str, seed: int, tau_setting, corpus: PreparedCorpus, skipped: bool) -> RunOutcome:
        rows = self.store.get_kl(run_id)
        last = max((r for r in rows if r.estimator.startswith("modelmap")), key=lambda r: r.step, default=None)
        weights = self.store.get_weights(run_id)
        # the weights that stand for the run: a fixed mixture's first (= every) step, a re-weighted run's last
        w_last = weights[(min if METHODS[method].shows == "first" else max)(weights)] if weights else {}
        nan = math.nan
        return RunOutcome(run_id, method, seed, tau_setting,
                          last.nats_per_text if last else nan, last.bits_per_byte if last else nan,
                          last.gap_bits_per_byte if last else nan, w_last, skipped)


def _jsonable(d: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
