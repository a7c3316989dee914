"""Runs a spec as stages, each keyed by content and skipped when the database says it is done.

    prepare corpus ─► target (train / load) ─► score target
        └► per seed: uniform · iterative-lld (= aggregated pass 1) · adjusted-lld · fixed
                     └► aggregated-lld pass 2 with the geometric-mean recipe of pass 1
                          └► report: final KL to target per method, §4.2 weight recovery

This is the ONLY module that sequences stages; it and its parts are the only code writing to both the
store and the tracker.

Its parts, each handed what it uses (services.py) and never the engine: `StageClaims` (claims.py: one
worker per stage), `ModelStages` (models.py: target and bases), `LLDStages` (lld.py: Gram, aggregated
recipes), `RunStages` (run_stages.py: open, build, train, close one run) and the per-run objects of run.py
(Evaluator, Reweighter, StepLogger); the checks before training are checks.py; what a method is comes
from the registry (methods.py).
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from lldmix_core import provenance
from lldmix_core.config import Settings
from lldmix_core.db.store import Store
from lldmix_core.engine.checks import check_against_corpus, note_other_versions, units_warning
from lldmix_core.engine.claims import StageClaims
from lldmix_core.engine.found import FoundSpec, find_finished
from lldmix_core.engine.lld import LLDStages
from lldmix_core.engine.models import ModelStages
from lldmix_core.engine.run_stages import RunStages, groupable_here, train_path
from lldmix_core.engine.services import EngineServices, ProgressFn, SpecContext, StepCounter, StopFn
from lldmix_core.errors import UserError
from lldmix_core.evaluate import score_model
from lldmix_core.methods import METHODS, PARENT_ROW
from lldmix_core.noise_floor import seed_pair_kls
from lldmix_core.outcomes import Cancelled, RunOutcome, SpecOutcome
from lldmix_core.plan import RunUnit, max_group, run_plan, training_batches
from lldmix_core.prepare import PreparedCorpus, mixture, prepare_corpus
from lldmix_core.provenance import NUMERICS_VERSION
from lldmix_core.run_keys import run_key, run_name
from lldmix_core.spec import RunSpec, content_hash
from lldmix_core.stopwatch import Stopwatch
from lldmix_core.tokenizers import Tokenizer, get_tokenizer
from lldmix_core.tracking import make_tracker
from lldmix_core.train_group import TRAIN_PATH, GroupMember, can_group, train_group


class Engine:
    """Runs specs (`run`) against one store and lldmix home. Per spec it makes the services its parts are
    handed (`services`: store, settings, the spec's tracker, log, progress), the spec's step counter
    (`steps`), the run stages (`runs`) and the clock of the runs trained now (`clock`)."""

    def __init__(self, store: Store, settings: Settings, *, progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None, job_id: int | None = None, verbose: bool = True):
        self.store = store
        self.settings = settings
        self.progress = progress or (lambda frac, msg: None)
        self.should_stop = should_stop
        self.job_id = job_id
        self.verbose = verbose
        self.claims = StageClaims(store, self.log, should_stop)  # one worker per stage
        self.lld = LLDStages(store)  # Gram matrix, aggregated recipes
        self.models = ModelStages(store, settings, self.claims, self.log, self.progress, should_stop)  # target, bases

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)

    # ------------------------------------------------------------------ the spec, top to bottom
    def run(self, spec: RunSpec) -> SpecOutcome:
        tracker = make_tracker(spec.tracking.mlflow, self.settings.mlflow_uri, spec.tracking.experiment or spec.name,
                               self.settings.mlflow_artifact_root)
        self.services = EngineServices(self.store, self.settings, tracker, self.log, self.progress, self.should_stop,
                                       self.job_id)
        self.steps = StepCounter()
        self.runs = RunStages(self.services, self.models, self.lld, self.claims, self.steps)
        self.clock = Stopwatch()  # where this spec's training time went, summed over the runs trained now
        tok = get_tokenizer(spec.tokenizer)
        self.progress(0.0, "preparing corpus")
        corpus = prepare_corpus(self.store, spec.corpus, self.settings, tok, f"{spec.name}-eval")
        self.log(f"corpus: {corpus.info.n_texts} evaluation texts in {len(corpus.domains)} domains "
                 f"({corpus.info.n_bytes:,} bytes), hash {corpus.info.content_hash[:12]}")

        check_against_corpus(self.store, self.settings, spec, corpus, tok)  # refuse before anything of the run is written
        prov = provenance.collect(corpus.info.content_hash, tok.identity)
        found = find_finished(self.store, self.models, spec, corpus, tok, self.twin(spec))
        if found is not None:  # finished here or imported: reported from its rows, no model needed
            out = self._found_outcome(spec, corpus, prov, found)
            self.progress(1.0, "finished")
            return out
        parent_key = content_hash({"parent": spec.spec_hash})
        parent_id = self.store.start_run(key=parent_key, name=spec.name, spec_hash=spec.spec_hash, method=PARENT_ROW,
                                         job_id=self.job_id, config=spec.model_dump(mode="json"), corpus_id=corpus.info.id,
                                         provenance=prov)
        mlflow_parent = self._mlflow_parent(spec, corpus, parent_id, prov)
        out = SpecOutcome(spec.name, spec.spec_hash, parent_id, corpus.info.content_hash, "", mlflow_parent=mlflow_parent,
                          provenance=prov)
        try:
            tracker.log_eval_dataset(mlflow_parent, corpus.texts.texts, corpus.texts.domains,
                                     corpus.info.source, f"{spec.name}-eval")
            contexts: dict[int | None, SpecContext] = {}  # one per target: per seed for twin targets
            plan = run_plan(spec)
            note_other_versions(self.store, self.log, parent_id)
            self.steps.total = sum(spec.training.steps for _ in plan)
            if self.twin(spec) and train_path(spec, "oracle"):
                self.models.train_twins(spec, corpus, tok, spec.seeds)  # on the grouped path: all seeds' twins together
            for batch, grouped in training_batches(plan, lambda u: groupable_here(spec, u), max_group(spec)):
                ctxs = [self._context(spec, corpus, tok, parent_id, mlflow_parent, prov, u.seed, contexts, out)
                        for u in batch]
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
            tracker.end(mlflow_parent)
        except BaseException as e:
            self.store.finish_run(parent_id, status=_failed_status(e), error=str(e)[:2000])
            tracker.end(mlflow_parent, _mlflow_status(e))
            raise
        self.progress(1.0, "finished")
        return out

    def _found_outcome(self, spec: RunSpec, corpus: PreparedCorpus, prov: dict, found: FoundSpec) -> SpecOutcome:
        """The outcome of a spec finished in the database, as `run` would return it, from the stored rows."""
        parent = found.parent
        self.log(f"{spec.name}: found finished in the database (parent run {parent.id}); reported without "
                 "loading or training a model")
        out = SpecOutcome(spec.name, spec.spec_hash, parent.id, corpus.info.content_hash, "",
                          mlflow_parent=parent.mlflow_run_id, provenance=prov)
        for unit, key in found.runs:
            outcome = self._finished(key, run_name(spec, unit.seed, unit.method, unit.tau_setting), unit,
                                     spec.training.steps)
            out.runs.append(outcome)
            if METHODS[unit.method].behaviour.makes_recipe and unit.tau_setting == spec.lld.taus[0]:
                out.recipes[unit.seed] = outcome.weights
        first_id, out.truth = next(iter(found.targets.values()))
        out.target_name = (f"{len(found.targets)} twin target(s), one per seed" if self.twin(spec)
                           else self.store.get_model(first_id).name)
        self._seed_pairs(spec, out)  # stored with the finished parent: read, not computed
        return out

    def _mlflow_parent(self, spec: RunSpec, corpus: PreparedCorpus, parent_id: int, prov: dict) -> str | None:
        """The spec's MLflow parent run: the one the parent row names (a resumed spec), else a new one."""
        tracker = self.services.tracker
        parent_info = self.store.get_run(parent_id)
        mlflow_parent = tracker.start_child(None, spec.name, {"spec_hash": spec.spec_hash}, run_id=parent_info.mlflow_run_id) \
            if parent_info.mlflow_run_id else tracker.start_parent(
                spec.name, {"spec_hash": spec.spec_hash, "methods": ",".join(spec.methods),
                            "seeds": ",".join(map(str, spec.seeds)), "tokenizer": spec.tokenizer,
                            "corpus_hash": corpus.info.content_hash, "numerics_version": NUMERICS_VERSION},
                tags={"lldmix.spec": spec.name, **provenance.mlflow_tags(prov)})
        if mlflow_parent:
            self.store.set_mlflow_run_id(parent_id, mlflow_parent)
        return mlflow_parent

    @staticmethod
    def twin(spec: RunSpec) -> bool:
        """One target per seed, trained from that seed's base (spec.target.train.twin)."""
        return spec.target.train is not None and spec.target.train.twin

    def _context(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer, parent_id: int, mlflow_parent: str | None,
                 prov: dict, seed: int, contexts: dict, out: SpecOutcome) -> SpecContext:
        """The per-target state the runs of `seed` share: made once per target (per seed for twins)."""
        which = seed if self.twin(spec) else None
        if which in contexts:
            return contexts[which]
        target_lm, target_id, out.truth = self.models.target(spec, corpus, tok, seed)
        out.target_name = self.store.get_model(target_id).name
        target_scores = score_model(self.store, target_lm, target_id, corpus.info.id, corpus.texts)
        self.runs.downstream_target = self.runs.downstream(spec, target_lm, parent_id, 0, "target") \
            if spec.downstream.tasks else None
        units_warning(self.store, self.log, spec, tok, target_id)
        K = len(corpus.domains)
        prior = mixture(corpus.domains, spec.lld.prior, None, "lld.prior") if spec.lld.prior else np.full(K, 1.0 / K)
        t = spec.target.train
        truth = mixture(corpus.domains, t.weights, t.multipliers, "target.train.weights") if t is not None else None
        contexts[which] = SpecContext(spec, corpus, tok, parent_id, mlflow_parent, target_id, target_lm, target_scores,
                                      prior, prov, truth=truth)
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

    # ------------------------------------------------------------------ runs: one at a time, or grouped
    @staticmethod
    def _key_and_name(ctx: SpecContext, unit: RunUnit, path: str | None) -> tuple[str, str]:
        """The run's content key (run_keys.run_key: spec, seed, method, τ setting, target, corpus, numerics, and
        the grouped path's name `path` for a run trained in a group) and its name."""
        spec, (seed, method, tau_setting) = ctx.spec, unit
        key = run_key(spec.spec_hash, ctx.corpus.info.content_hash, seed, method, tau_setting, ctx.target_id, path)
        return key, run_name(spec, seed, method, tau_setting)

    def _finished(self, key: str, name: str, unit: RunUnit, steps: int) -> RunOutcome | None:
        existing = self.store.get_run_by_key(key)
        if existing is None or existing.status != "finished":
            return None
        self.log(f"{name}: finished earlier (run {existing.id}"
                 + (f", commit {str(existing.git_commit)[:10]}" if existing.git_commit else "") + "); nothing to do")
        self.steps.done += steps
        return self.runs.outcome(existing.id, unit, skipped=True)

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
        self.steps.done += spec.training.steps  # another worker ran it while we waited
        return self.runs.outcome(self.store.get_run_by_key(key).id, unit, skipped=True)

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
            self.steps.done += ctxs[i].spec.training.steps
            outcomes[i] = self.runs.outcome(self.store.get_run_by_key(key).id, units[i], skipped=True)
        return [outcomes[i] for i in range(len(units))]

    def _train_group(self, items) -> list[tuple[int, RunOutcome]]:
        """Open each run, build its student, train them together, close each (`_train_run`, grouped).
        `items`: (index, ctx, unit, key, name, claim); returns (index, outcome)."""
        opened = []
        done_before = self.steps.done
        try:
            for i, ctx, unit, key, name, claim in items:
                run = self.runs.open(ctx, unit, key, name, TRAIN_PATH)
                lm, _, base_id = self.runs.student(ctx, unit)
                if not can_group(lm):
                    raise UserError(f"training.group: {name} starts from a {lm.kind} model that cannot train in a group; "
                                    "set training.group: false (or run with --no-group)")
                p = self.runs.parts(ctx, run, key, claim, done_before, len(items))
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
                self.services.tracker.end(run.mlflow_id, _mlflow_status(e))
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
            self.services.tracker.log_metrics(run.mlflow_id, {f"time_s/{k}": v for k, v in run.clock.seconds.items()},
                                              ctx.spec.training.steps)
            self.clock.add(run.clock)
            self.runs.close(ctx, run, lm, base_id)
            results.append((i, self.runs.outcome(run.run_id, run.unit)))
        self.steps.done = done_before + sum(o[1].spec.training.steps for o in opened)
        return results

    def _train_run(self, ctx: SpecContext, unit: RunUnit, key: str, name: str, claim: str) -> RunOutcome:
        """Open the run, build the student (and teacher), train with an Evaluator, close the run."""
        run = self.runs.open(ctx, unit, key, name)
        lm, loss_fn, base_id = self.runs.student(ctx, unit)
        done_before = self.steps.done
        tracker = self.services.tracker
        try:
            with run.clock.part("training"):  # the evaluation and logging inside are charged to their own parts
                self.runs.train_alone(ctx, run, lm, loss_fn, key, claim, done_before)
        except BaseException as e:
            self.store.finish_run(run.run_id, status=_failed_status(e), error=str(e)[:2000])
            tracker.end(run.mlflow_id, _mlflow_status(e))
            raise
        self.log(f"  time: {run.clock.line()}")
        tracker.log_metrics(run.mlflow_id, {f"time_s/{k}": v for k, v in run.clock.seconds.items()}, ctx.spec.training.steps)
        self.clock.add(run.clock)
        self.runs.close(ctx, run, lm, base_id)
        self.steps.done = done_before + ctx.spec.training.steps
        return self.runs.outcome(run.run_id, unit)


def _failed_status(e: BaseException) -> str:
    """A run that ends on `e`: "stopped" when asked to stop (it resumes from its checkpoint), else "failed"."""
    return "stopped" if isinstance(e, Cancelled) else "failed"


def _mlflow_status(e: BaseException) -> str:
    """The MLflow status of a run that ends on `e`: KILLED when asked to stop, else FAILED."""
    return "KILLED" if isinstance(e, Cancelled) else "FAILED"
