"""Runs a spec as stages, each keyed by content and skipped when the database says it is done.

    prepare corpus ─► target (train / load) ─► score target
        └► per seed: uniform · iterative-lld (= aggregated pass 1) · adjusted-lld · fixed
                     └► aggregated-lld pass 2 with the geometric-mean recipe of pass 1
                          └► report: final KL to target per method, §4.2 weight recovery

This is the ONLY module that sequences stages and writes to both the store and the tracker.

Its collaborators: `ModelStages` (engine_models: target and bases), `StageClaims` (engine_claims: one
worker per stage), `LLDStages` (engine_lld: Gram, aggregated recipes) and the per-run objects of
engine_run (Evaluator, Reweighter, StepLogger); what a method is comes from the registry (methods.py).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import Callable, NamedTuple

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.config import Settings, confine_path
from lldmix_core.db.store import Store
from lldmix_core.errors import UserError
from lldmix_core.evaluate import register_model, score_model
from lldmix_core.models import LanguageModel
from lldmix_core.engine_claims import StageClaims
from lldmix_core.engine_found import finished_outcome
from lldmix_core.domain_mapping import check_run_domains
from lldmix_core.engine_lld import LLDStages, corpus_manifest, subsample
from lldmix_core.engine_models import ModelStages, _device
from lldmix_core.plan import RunUnit, groupable, max_group, run_plan, training_batches
from lldmix_core.procgroup import world
from lldmix_core.train import TrainConfig
from lldmix_core.train_group import TRAIN_PATH, GroupMember, can_group, train_group
from lldmix_core.prepare import PreparedCorpus, mixture, prepare_corpus
from lldmix_core.distill import check_same_tokenizer, distill_loss_fn
from lldmix_core import provenance
from lldmix_core.engine_run import Evaluator, Reweighter, RunHandle, RunServices, SpecContext, StepLogger
from lldmix_core.kl_rows import MODELMAP, SAMPLED, last_kl
from lldmix_core.behaviours import MixtureInputs
from lldmix_core.methods import METHODS, PARENT_ROW
from lldmix_core.outcomes import Cancelled, RunOutcome, SpecOutcome
from lldmix_core.provenance import NUMERICS_VERSION
from lldmix_core.sampled_eval import SampleSet, sampled_steps, target_samples
from lldmix_core.noise_floor import seed_pair_kls
from lldmix_core.run_keys import run_key
from lldmix_core.spec import RunSpec, content_hash
from lldmix_core.stopwatch import Stopwatch
from lldmix_core.tau import record_resolved

from lldmix_core.tokenizers import get_tokenizer, refuse_custom_code
from lldmix_core.repetition import epoch_capped, format_cap
from lldmix_core.tracking import NullTracker, flush_before_checkpoint, make_tracker

ProgressFn = Callable[[float, str], None]


class RunParts(NamedTuple):
    """What trains a run besides its model (Engine._run_parts)."""

    cfg: TrainConfig
    on_eval: Evaluator
    on_step: StepLogger
    checkpoint_path: object  # pathlib.Path


class Engine:
    def __init__(self, store: Store, settings: Settings, *, progress: ProgressFn | None = None,
                 should_stop: Callable[[], bool] | None = None, job_id: int | None = None, verbose: bool = True):
        self.store = store
        self.settings = settings
        self.progress = progress or (lambda frac, msg: None)
        self.should_stop = should_stop
        self.job_id = job_id
        self.verbose = verbose
        self.tracker: NullTracker = NullTracker()
        self.claims = StageClaims(store, self.log, should_stop)  # one worker per stage
        self.lld = LLDStages(store)  # Gram matrix, aggregated recipes
        self._downstream_target: dict[str, float] | None = None
        self.models = ModelStages(store, settings, self.claims, self.log, self.progress, should_stop)  # target, bases

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
        prov = provenance.collect(corpus.info.content_hash, tok.identity)
        found = finished_outcome(self, spec, corpus, prov)  # finished here or imported: no model is needed
        if found is not None:
            self.progress(1.0, "finished")
            return found
        parent_key = content_hash({"parent": spec.spec_hash})
        parent_id = self.store.start_run(key=parent_key, name=spec.name, spec_hash=spec.spec_hash, method=PARENT_ROW,
                                         job_id=self.job_id, config=spec.model_dump(mode="json"), corpus_id=corpus.info.id,
                                         provenance=prov)
        parent_info = self.store.get_run(parent_id)
        mlflow_parent = self.tracker.start_child(None, spec.name, {"spec_hash": spec.spec_hash}, run_id=parent_info.mlflow_run_id) \
            if parent_info.mlflow_run_id else self.tracker.start_parent(
                spec.name, {"spec_hash": spec.spec_hash, "methods": ",".join(spec.methods),
                            "seeds": ",".join(map(str, spec.seeds)), "tokenizer": spec.tokenizer,
                            "corpus_hash": corpus.info.content_hash, "numerics_version": NUMERICS_VERSION},
                tags={"lldmix.spec": spec.name, **provenance.mlflow_tags(prov)})
        if mlflow_parent:
            self.store.set_mlflow_run_id(parent_id, mlflow_parent)
        out = SpecOutcome(spec.name, spec.spec_hash, parent_id, corpus.info.content_hash, "", mlflow_parent=mlflow_parent,
                          provenance=prov)
        try:
            self.tracker.log_eval_dataset(mlflow_parent, corpus.texts.texts, corpus.texts.domains,
                                          corpus.info.source, f"{spec.name}-eval")
            contexts: dict[int | None, SpecContext] = {}  # one per target: per seed for twin targets
            plan = self._plan(spec)
            self._note_other_versions(parent_id)
            self._total_steps = sum(spec.training.steps for _ in plan)
            self._done_steps = 0
            self.clock = Stopwatch()  # where this spec's training time went, summed over the runs trained now
            if self.twin(spec) and self._train_path(spec, "oracle"):
                self.models.train_twins(spec, corpus, spec.seeds)  # on the grouped path: all seeds' twins together
            for batch, grouped in training_batches(plan, lambda u: self._groupable(spec, u), max_group(spec)):
                ctxs = [self._context(spec, corpus, parent_id, mlflow_parent, prov, u.seed, contexts, out) for u in batch]
                outcomes = self._run_grouped(ctxs, batch) if grouped else [self._run_unit(ctxs[0], batch[0])]
                for unit, outcome in zip(batch, outcomes):
                    out.runs.append(outcome)
                    if METHODS[unit.method].behaviour.makes_recipe and unit.tau_setting == spec.lld.taus[0]:
                        out.recipes[unit.seed] = outcome.weights
            position = {(u.seed, u.method, u.tau_setting): i for i, u in enumerate(plan)}
            out.runs.sort(key=lambda o: position[(o.seed, o.method, o.tau_setting)])  # the report reads plan order
            if self.twin(spec):
                out.target_name = f"{len(contexts)} twin target(s), one per seed"
            self._seed_pairs(spec, out)
            if self.clock.seconds:
                self.log(f"time of the runs trained now (wall seconds): {self.clock.line()}")
            self.store.finish_run(parent_id, status="finished")
            self.tracker.end(mlflow_parent)
        except BaseException as e:
            self.store.finish_run(parent_id, status=_failed_status(e), error=str(e)[:2000])
            self.tracker.end(mlflow_parent, _mlflow_status(e))
            raise
        self.progress(1.0, "finished")
        return out

    @staticmethod
    def twin(spec: RunSpec) -> bool:
        """One target per seed, trained from that seed's base (spec.target.train.twin)."""
        return spec.target.train is not None and spec.target.train.twin

    def _context(self, spec: RunSpec, corpus: PreparedCorpus, parent_id: int, mlflow_parent: str | None, prov: dict,
                 seed: int, contexts: dict, out: SpecOutcome) -> SpecContext:
        """The per-target state the runs of `seed` share: made once per target (per seed for twins)."""
        which = seed if self.twin(spec) else None
        if which in contexts:
            return contexts[which]
        target_lm, target_id, out.truth = self.models.target(spec, corpus, seed)
        out.target_name = self.store.get_model(target_id).name
        target_scores = score_model(self.store, target_lm, target_id, corpus.info.id, corpus.texts)
        self._downstream_target = self._downstream(spec, target_lm, parent_id, 0, "target") \
            if spec.downstream.tasks else None
        self._units_warning(spec, target_id)
        K = len(corpus.domains)
        prior = mixture(corpus.domains, spec.lld.prior, None, "lld.prior") if spec.lld.prior else np.full(K, 1.0 / K)
        t = spec.target.train
        truth = mixture(corpus.domains, t.weights, t.multipliers, "target.train.weights") if t is not None else None
        contexts[which] = SpecContext(spec, corpus, parent_id, mlflow_parent, target_id, target_lm, target_scores, prior,
                                      prov, truth=truth)
        return contexts[which]

    def _seed_pairs(self, spec: RunSpec, out: SpecOutcome) -> None:
        """The training-noise floor: sampled KL between two models trained alike from consecutive seeds."""
        s = spec.kl.sampled
        if s.n_samples == 0 or len(spec.seeds) < 2:
            return
        floor = seed_pair_kls(self.store, self.settings.home, self.settings.checkpoints_dir, out,
                              n=s.n_samples, n_tokens=s.n_tokens, step=spec.training.steps)
        for p in floor:
            self.log(f"noise floor: sampled KL({p.method} seed {p.seed_a} ‖ {p.method} seed {p.seed_b}) "
                     f"{p.bits_per_byte:.4f} ± {p.stderr_bits_per_byte:.4f} bits/byte")

    def _check_against_corpus(self, spec: RunSpec, corpus: PreparedCorpus) -> None:
        """Domain names and tokenizers the spec refers to, checked once the corpus's domains are known."""
        if spec.lld.domain_manifest is not None:  # versioned domains: the recipe's data, not only its names
            check_run_domains(spec.lld.domain_manifest, corpus_manifest(corpus), corpus_label=corpus.info.name)
        refs = [("lld.prior", spec.lld.prior, None), ("lld.recipe", spec.lld.recipe, None),
                *((f"lld.phases[{i}].weights", p.weights, None) for i, p in enumerate(spec.lld.phases or ()))]
        for role in ("target", "base"):
            t = getattr(spec, role).train
            if t is not None:
                refs.append((f"{role}.train.weights" if t.weights else f"{role}.train.multipliers", t.weights, t.multipliers))
        for field_name, weights, multipliers in refs:
            if weights is not None or multipliers is not None:
                mixture(corpus.domains, weights, multipliers, field_name)
        for role in ("target", "base"):  # models named in the spec must exist before a run row is written
            ref = getattr(spec, role)
            if ref.model is not None:
                self.store.get_model(ref.model)
            if ref.path is not None and ref.kind == "hf":  # a folder with its own code: refused up front
                refuse_custom_code(confine_path(ref.path, self.settings, f"{role}.path"), ref.trust_remote_code)
        if any(METHODS[m].needs_teacher for m in spec.methods):
            ref, base_tok = spec.target, get_tokenizer(spec.tokenizer)
            if ref.model is not None:
                info = self.store.get_model(ref.model)
                same, other = info.tokenizer_hash == base_tok.identity, info.tokenizer
            elif ref.path is not None:
                path = confine_path(ref.path, self.settings, "target.path")
                tok = get_tokenizer(ref.tokenizer or f"hf:{path}", ref.trust_remote_code)
                same, other = tok.identity == base_tok.identity, tok.name
            else:
                same, other = True, spec.tokenizer
            if not same:
                raise UserError(f"methods: distillation needs the same tokenizer for base and target: base uses "
                                f"{spec.tokenizer}, target uses {other}")

    @staticmethod
    def _plan(spec: RunSpec) -> list[RunUnit]:
        return run_plan(spec)

    def _note_other_versions(self, parent_id: int) -> None:
        """Say when finished runs of this spec in the database came from code whose numbers differ:
        their keys differ, so they are not reused, and the user should know why work is redone."""
        other: dict[str, int] = {}
        for r in self.store.list_runs(parent_id=parent_id):
            v = (r.provenance or {}).get("numerics_version", 1)
            if r.status == "finished" and v != NUMERICS_VERSION:
                label = f"numerics v{v}" + (f" (commit {str(r.git_commit)[:10]})" if r.git_commit else "")
                other[label] = other.get(label, 0) + 1
        for label, n in other.items():
            self.log(f"note: {n} finished run(s) of this spec in the database came from {label}; this code is "
                     f"numerics v{NUMERICS_VERSION}, so they are not reused")

    def _units_warning(self, spec: RunSpec, target_id: int) -> None:
        target = self.store.get_model(target_id)
        if target.tokenizer_hash != get_tokenizer(spec.tokenizer).identity and spec.lld.unit == "token":
            self.log(f"warning: base tokenizer {spec.tokenizer} and target tokenizer {target.tokenizer} differ; "
                     "Δ in nats/token mixes units — set lld.unit: byte")

    # ------------------------------------------------------------------ models
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

    # ------------------------------------------------------------------ runs: one at a time, or grouped
    @staticmethod
    def _groupable(spec: RunSpec, unit: RunUnit) -> bool:
        """Whether `unit` trains in a group: the spec allows it (plan.groupable) and this is one process."""
        return world()[1] == 1 and groupable(spec, unit.method)

    def _train_path(self, spec: RunSpec, method: str | None) -> str | None:
        """The path `method`'s runs of this spec train on: the grouped path's name, or None (one at a time)."""
        return TRAIN_PATH if method is not None and self._groupable(spec, RunUnit(0, method, None)) else None

    def _key_and_name(self, ctx: SpecContext, unit: RunUnit, train_path: str | None) -> tuple[str, str]:
        spec, (seed, method, tau_setting) = ctx.spec, unit
        key = self._run_key(spec, ctx.corpus, seed, method, tau_setting, ctx.target_id, train_path)
        name = f"{spec.name}.{method}.seed{seed}" + tau_setting.name_suffix(len(spec.lld.taus) > 1)
        return key, name

    def _finished(self, key: str, name: str, unit: RunUnit, steps: int) -> RunOutcome | None:
        existing = self.store.get_run_by_key(key)
        if existing is None or existing.status != "finished":
            return None
        self.log(f"{name}: finished earlier (run {existing.id}"
                 + (f", commit {str(existing.git_commit)[:10]}" if existing.git_commit else "") + "); nothing to do")
        self._done_steps += steps
        return self._outcome(existing.id, unit, skipped=True)

    def _run_unit(self, ctx: SpecContext, unit: RunUnit) -> RunOutcome:
        """One run of the plan: found finished in the database, or claimed and computed here."""
        spec = ctx.spec
        key, name = self._key_and_name(ctx, unit, None)
        done = self._finished(key, name, unit, spec.training.steps)
        if done is not None:
            return done
        claim = content_hash({"run": key})
        with self.claims.exclusive(claim, "run") as mine:
            if mine:
                outcome = self._train_run(ctx, unit, key, name, claim)
                self.store.finish_stage(claim, kind="run", spec_hash=spec.spec_hash, result={"run_id": outcome.run_id})
                return outcome
        self._done_steps += spec.training.steps  # another worker ran it while we waited
        return self._outcome(self.store.get_run_by_key(key).id, unit, skipped=True)

    def _run_grouped(self, ctxs: list[SpecContext], units: list[RunUnit]) -> list[RunOutcome]:
        """Runs that train together (train_group.py): each found finished, or claimed, opened, trained in
        the group and closed as its own run. Results in the units' order."""
        outcomes: dict[int, RunOutcome] = {}
        waited: list[tuple[int, str]] = []
        with ExitStack() as claims:
            mine = []
            for i, (ctx, unit) in enumerate(zip(ctxs, units)):
                key, name = self._key_and_name(ctx, unit, TRAIN_PATH)
                done = self._finished(key, name, unit, ctx.spec.training.steps)
                if done is not None:
                    outcomes[i] = done
                    continue
                claim = content_hash({"run": key})
                if claims.enter_context(self.claims.exclusive(claim, "run")):
                    mine.append((i, key, name, claim))
                else:
                    waited.append((i, key))
            if mine:
                for i, outcome in self._train_group([(i, ctxs[i], units[i], key, name, claim) for i, key, name, claim in mine]):
                    outcomes[i] = outcome
                for i, key, _, claim in mine:
                    self.store.finish_stage(claim, kind="run", spec_hash=ctxs[i].spec.spec_hash,
                                            result={"run_id": outcomes[i].run_id})
        for i, key in waited:  # another worker ran these while we waited
            self._done_steps += ctxs[i].spec.training.steps
            outcomes[i] = self._outcome(self.store.get_run_by_key(key).id, units[i], skipped=True)
        return [outcomes[i] for i in range(len(units))]

    def _train_group(self, items) -> list[tuple[int, RunOutcome]]:
        """Open each run, build its student, train them together, close each (`_train_run`, grouped).
        `items`: (index, ctx, unit, key, name, claim); returns (index, outcome)."""
        opened = []
        done_before = self._done_steps
        try:
            for i, ctx, unit, key, name, claim in items:
                run = self._open_run(ctx, unit, key, name, TRAIN_PATH)
                lm, _, base_id = self._build_student(ctx, unit)
                if not can_group(lm):
                    raise UserError(f"training.group: {name} starts from a {lm.kind} model that cannot train in a group; "
                                    "set training.group: false (or run with --no-group)")
                p = self._run_parts(ctx, run, key, claim, done_before, len(items))
                member = GroupMember(lm, p.cfg, run.weights, run.eval_steps, p.on_eval, p.on_step, p.checkpoint_path)
                opened.append((i, ctx, run, lm, base_id, member))
            self.log(f"training {len(opened)} run(s) together ({TRAIN_PATH})")
            clock = Stopwatch()
            with clock.part("training"):
                first = items[0][1].corpus
                train_group([o[-1] for o in opened], first.streams, first.domains, should_stop=self.should_stop)
        except BaseException as e:
            for _, _, run, *_ in opened:
                self.store.finish_run(run.run_id, status=_failed_status(e), error=str(e)[:2000])
                self.tracker.end(run.mlflow_id, _mlflow_status(e))
            raise
        # the group's wall time less every member's evaluation and logging (timed on the runs' own
        # clocks inside it), shared equally: what each run's training cost
        runs = [o[2] for o in opened]
        spent = sum(v for r in runs for k, v in r.clock.seconds.items() if k != "training")
        share = max(0.0, clock.seconds["training"] - spent) / len(runs)
        results = []
        for i, ctx, run, lm, base_id, _ in opened:
            run.clock.seconds["training"] = share
            self.log(f"{run.name}: time: {run.clock.line()}")
            self.tracker.log_metrics(run.mlflow_id, {f"time_s/{k}": v for k, v in run.clock.seconds.items()},
                                     ctx.spec.training.steps)
            self.clock.add(run.clock)
            self._close_run(ctx, run, lm, base_id)
            results.append((i, self._outcome(run.run_id, run.unit)))
        self._done_steps = done_before + sum(o[1].spec.training.steps for o in opened)
        return results

    def _run_key(self, spec: RunSpec, corpus: PreparedCorpus, seed: int, method: str, tau_setting, target_id: int,
                 train_path: str | None = None) -> str:
        """The content key of one run (run_keys.run_key: spec, seed, method, τ setting, target, corpus, numerics,
        and the grouped path's name for a run trained in a group)."""
        return run_key(spec.spec_hash, corpus.info.content_hash, seed, method, tau_setting, target_id, train_path)

    def _train_run(self, ctx: SpecContext, unit: RunUnit, key: str, name: str, claim: str) -> RunOutcome:
        """Open the run, build the student (and teacher), train with an Evaluator, close the run."""
        run = self._open_run(ctx, unit, key, name)
        lm, loss_fn, base_id = self._build_student(ctx, unit)
        done_before = self._done_steps
        try:
            with run.clock.part("training"):  # the evaluation and logging inside are charged to their own parts
                self._train_student(ctx, run, lm, loss_fn, key, claim, done_before)
        except BaseException as e:
            self.store.finish_run(run.run_id, status=_failed_status(e), error=str(e)[:2000])
            self.tracker.end(run.mlflow_id, _mlflow_status(e))
            raise
        self.log(f"  time: {run.clock.line()}")
        self.tracker.log_metrics(run.mlflow_id, {f"time_s/{k}": v for k, v in run.clock.seconds.items()},
                                 ctx.spec.training.steps)
        self.clock.add(run.clock)
        self._close_run(ctx, run, lm, base_id)
        self._done_steps = done_before + ctx.spec.training.steps
        return self._outcome(run.run_id, unit)

    def _mixture_inputs(self, ctx: SpecContext, seed: int, method: str, tau_setting) -> MixtureInputs:
        """What `method`'s behaviour may read to choose this run's mixture (the store reached through callables)."""
        spec, corpus = ctx.spec, ctx.corpus
        name = self.lld.recipe_name(spec, seed, tau_setting, method)
        return MixtureInputs(
            spec=spec, domains=corpus.domains, prior=ctx.prior, truth=ctx.truth, seed=seed, tau_setting=tau_setting,
            method=method, as_weights=lambda w, field: mixture(corpus.domains, w, None, field),
            aggregate=lambda: self.lld.aggregate(spec, corpus, seed, tau_setting, ctx.target_id, method,
                                                 self._train_path(spec, METHODS[method].aggregates)),
            stored_phases=lambda: self.store.get_recipe(name).get("provenance", {}).get("phases") or [])

    def _initial_mixture(self, ctx: SpecContext, unit: RunUnit) -> tuple[np.ndarray, float | None]:
        """The run's mixture at step 0 (for a fixed-mixture method, the whole run's) and its τ if known.
        Distillation draws its batches from the mixture of spec.distill.mixture's method at the first τ."""
        spec, M = ctx.spec, METHODS[unit.method]
        if M.needs_teacher:
            source = spec.distill.mixture
            return METHODS[source].behaviour.initial(self._mixture_inputs(ctx, unit.seed, source, spec.lld.taus[0]))[0], None
        return M.behaviour.initial(self._mixture_inputs(ctx, unit.seed, unit.method, unit.tau_setting))

    def _phase_switches(self, ctx: SpecContext, unit: RunUnit) -> dict[int, np.ndarray]:
        """The run's phased recipe as {first step of the phase: its weights [K]}: method `fixed` with
        lld.phases, or aggregated-LLD whose estimator is phased (two-stage); empty for any other run."""
        spec = ctx.spec
        phases = METHODS[unit.method].behaviour.phases(self._mixture_inputs(ctx, unit.seed, unit.method, unit.tau_setting))
        if not phases:
            return {}
        return {start: mixture(ctx.corpus.domains, phases[i][1], None, phases[i][2])
                for start, i in mc.phase_starts([p[0] for p in phases], spec.training.steps)}

    def _open_run(self, ctx: SpecContext, unit: RunUnit, key: str, name: str, train_path: str | None = None) -> RunHandle:
        """The run's row and MLflow child, with the steps it evaluates at. `train_path`: the grouped path's
        name for a run trained in a group (recorded in its config, provenance and MLflow params)."""
        spec, M = ctx.spec, METHODS[unit.method]
        steps = spec.training.steps
        schedule = set(mc.lld_schedule(steps))
        # KL is measured at `kl_steps`; iterative methods are also called at every schedule step to re-weight
        kl_steps = (schedule if spec.eval_steps == "schedule" else set(spec.eval_steps)) | {steps}
        s = spec.kl.sampled
        sampled = sampled_steps(s.n_samples, s.steps, kl_steps, steps)
        kl_steps |= sampled
        weights, tau = self._initial_mixture(ctx, unit)  # (aggregated-LLD: builds and stores the recipe first)
        weights, cap = epoch_capped(spec, ctx.corpus, M.behaviour, weights)  # lld.max_epochs on a fixed recipe
        if cap is None and spec.lld.max_epochs is not None and M.behaviour.makes_recipe:  # capped when it was stored
            cap = self.store.get_recipe(self.lld.recipe_name(spec, unit.seed, unit.tau_setting, unit.method))["provenance"].get("epoch_cap")
        # a phased recipe starts on its first kept phase and switches at each later phase's first step; a
        # phased run is evaluated where each phase starts, step 0 included, so every phase's weights are
        # stored where they come into force
        phases = self._phase_switches(ctx, unit)
        if phases:
            weights = phases[0]
        switches = {s: w for s, w in phases.items() if s > 0}
        eval_steps = sorted(kl_steps | (schedule if M.iterative else set()) | (set(phases) if switches else set()))
        run_id = self.store.start_run(key=key, name=name, spec_hash=spec.spec_hash, method=unit.method, seed=unit.seed,
                                      parent_id=ctx.parent_id, job_id=self.job_id,
                                      config={"eval_steps": eval_steps, **({"epoch_cap": cap} if cap else {}),
                                              "train_path": train_path or "single"},
                                      tau_setting=unit.tau_setting.text, target_model_id=ctx.target_id,
                                      corpus_id=ctx.corpus.info.id,
                                      provenance={**ctx.provenance, "train_path": train_path or "single"})
        info = self.store.get_run(run_id)
        # the resolved τ where known before training: a recipe's run inherits pass 1's, a number is itself,
        # a resumed "auto" run keeps the one it resolved (else the Reweighter resolves it at its first estimate)
        tau = next((t for t in (tau, unit.tau_setting.number, info.tau) if t is not None), None)
        params = {"method": unit.method, "seed": unit.seed, "steps": steps, "unit": spec.lld.unit,
                  **({"tau_setting": unit.tau_setting.text} if not unit.tau_setting.is_none else {}),
                  "batch_size": spec.training.batch_size, "lr": spec.training.lr, "arch": spec.arch.model_dump_json(),
                  "corpus_hash": ctx.corpus.info.content_hash, "spec_hash": spec.spec_hash,
                  "numerics_version": NUMERICS_VERSION, "train_path": train_path or "single"}
        mlflow_id = self.tracker.start_child(ctx.mlflow_parent, name, params,
                                             tags={"lldmix.method": unit.method, **provenance.mlflow_tags(ctx.provenance)},
                                             run_id=info.mlflow_run_id)
        if mlflow_id and not info.mlflow_run_id:
            self.store.set_mlflow_run_id(run_id, mlflow_id)
        if tau is not None:
            record_resolved(self.store, self.tracker, run_id, mlflow_id, tau)
        if cap:
            self.tracker.log_dict(mlflow_id, cap, "epoch_cap.json")
            self.log(f"{name}: {format_cap(cap)}")
        self.log(f"{name}: training {steps} steps, evaluating at {len(eval_steps)} steps")
        return RunHandle(run_id, mlflow_id, name, unit, M, weights, tau, kl_steps, sampled, eval_steps, switches)

    def _build_student(self, ctx: SpecContext, unit: RunUnit) -> tuple[LanguageModel, object, int]:
        """The base for this seed (on the device), the distillation loss if the method has a teacher,
        and the base's model id."""
        M = METHODS[unit.method]
        lm = self.models.base(ctx.spec, ctx.corpus, unit.seed)
        lm.module.to(_device())
        loss_fn = None
        if M.needs_teacher:
            check_same_tokenizer(lm, ctx.target_lm)
            ctx.target_lm.module.to(_device())
            loss_fn = distill_loss_fn(ctx.target_lm, M.distill_objective, dict(ctx.spec.distill.params))
        base_id = register_model(self.store, lm, f"{ctx.spec.name}.base.seed{unit.seed}.{lm.fingerprint()[:8]}")
        return lm, loss_fn, base_id

    def _run_parts(self, ctx: SpecContext, run: RunHandle, key: str, claim: str, done_before: int,
                   group_size: int = 1) -> RunParts:
        """What trains a run besides its model: its training settings, the Evaluator (with its Reweighter)
        called at its evaluation steps, the StepLogger, its checkpoint. In a group of `group_size` runs
        progress counts every member's steps."""
        spec, unit = ctx.spec, run.unit
        steps = spec.training.steps

        def on_tau(tau: float) -> None:
            record_resolved(self.store, self.tracker, run.run_id, run.mlflow_id, tau)

        reweighter = Reweighter(run.method, unit.tau_setting, run.tau, ctx.prior, set(mc.lld_schedule(steps)), steps,
                                lambda m: self._gram(spec, m, ctx.corpus), spec.lld.gram.ridge, on_tau, run.switches)
        sub = subsample(ctx.corpus, spec.lld.estimate_texts_per_domain, unit.seed) if run.method.iterative else None
        fraction = self.fraction if group_size == 1 else \
            (lambda done: self.fraction(done_before + (done - done_before) * group_size))
        services = RunServices(self.store, self.tracker, self.log, self.progress, fraction, self.heartbeat,
                               self.samples_for)
        on_step = StepLogger(services, run, claim, steps, spec.training.checkpoint_every, done_before, flush_before_checkpoint,
                             ctx.corpus.domains, spec.training.batch_size * spec.training.grad_accum * spec.arch.block_size,
                             {d: ctx.corpus.streams.n_tokens(d) for d in ctx.corpus.domains})
        return RunParts(self.models.train_config(spec, steps, unit.seed), Evaluator(services, ctx, run, reweighter, sub, done_before),
                        on_step, self.settings.checkpoints_dir / key[:16] / "last.pt")

    def _train_student(self, ctx: SpecContext, run: RunHandle, lm: LanguageModel, loss_fn, key: str, claim: str,
                       done_before: int) -> None:
        """Train one run's student alone (`train.train`, via ModelStages for torchrun's other ranks)."""
        p = self._run_parts(ctx, run, key, claim, done_before)
        distill = {"teacher": self.models.recipes["target"], "objective": run.method.distill_objective,
                   "params": dict(ctx.spec.distill.params)} if run.method.needs_teacher else {}
        self.models.train(self.models.recipes["base"], lm, ctx.corpus, p.cfg, run.weights,
                          eval_steps=run.eval_steps, on_eval=p.on_eval, on_step=p.on_step, checkpoint_path=p.checkpoint_path,
                          should_stop=self.should_stop, loss_fn=loss_fn, **distill)

    def _close_run(self, ctx: SpecContext, run: RunHandle, lm: LanguageModel, base_id: int) -> None:
        spec, steps = ctx.spec, ctx.spec.training.steps
        if spec.downstream.tasks:
            self._downstream(spec, lm, run.run_id, steps, run.name)
        self.store.update_run_models(run.run_id, base_model_id=base_id,
                                     final_model_id=self.store.final_model_id(run.run_id, steps))
        if run.method.behaviour.makes_recipe:
            self.tracker.log_recipe(run.mlflow_id, self.store.get_recipe(
                self.lld.recipe_name(spec, run.unit.seed, run.unit.tau_setting, run.unit.method)))
        self.store.finish_run(run.run_id, status="finished")
        self.tracker.end(run.mlflow_id)

    def samples_for(self, ctx: SpecContext, seed: int) -> SampleSet:
        """The draws from the target for this seed (made once, then found in the database)."""
        if seed not in ctx.samples:
            s = ctx.spec.kl.sampled
            ctx.samples[seed] = target_samples(self.store, self.settings.home, ctx.target_lm, ctx.target_id,
                                               n=s.n_samples, n_tokens=s.n_tokens, seed=seed)
        return ctx.samples[seed]

    def heartbeat(self, key: str) -> None:
        self.claims.heartbeat(key)

    def _gram(self, spec: RunSpec, lm: LanguageModel, corpus: PreparedCorpus) -> np.ndarray:
        """The domain Gram matrix for adjusted-LLD (a method of its own so tests can observe it)."""
        return self.lld.gram(spec, lm, corpus)

    def fraction(self, steps_done: int) -> float:
        return self._fraction(steps_done)

    def _fraction(self, steps_done: int) -> float:
        return min(0.999, steps_done / max(1, self._total_steps))

    # ------------------------------------------------------------------ results
    def _outcome(self, run_id: int, unit: RunUnit, skipped: bool = False) -> RunOutcome:
        """The run's final model-map and sampled KL, and the weights that stand for it."""
        rows = self.store.get_kl(run_id)
        last, sampled = last_kl(rows, MODELMAP), last_kl(rows, SAMPLED)
        weights = self.store.get_weights(run_id)
        # the weights that stand for the run: a fixed mixture's first (= every) step, a re-weighted run's last
        w_last = weights[(min if METHODS[unit.method].shows == "first" else max)(weights)] if weights else {}
        nan = math.nan
        return RunOutcome(run_id, unit.method, unit.seed, unit.tau_setting,
                          last.nats_per_text if last else nan, last.bits_per_byte if last else nan,
                          last.gap_bits_per_byte if last else nan, w_last, skipped=skipped,
                          sampled_bits_per_byte=sampled.bits_per_byte if sampled else nan,
                          sampled_se_bits_per_byte=sampled.stderr_bits_per_byte if sampled else nan,
                          final_model_id=sampled.model_id if sampled else (last.model_id if last else None),
                          sampled_corpus_id=sampled.corpus_id if sampled else None)


def _failed_status(e: BaseException) -> str:
    """A run that ends on `e`: "stopped" when asked to stop (it resumes from its checkpoint), else "failed"."""
    return "stopped" if isinstance(e, Cancelled) else "failed"


def _mlflow_status(e: BaseException) -> str:
    """The MLflow status of a run that ends on `e`: KILLED when asked to stop, else FAILED."""
    return "KILLED" if isinstance(e, Cancelled) else "FAILED"
