"""One run's stages, in the order the engine calls them: its mixture and row (`open`), its student
(`student`), what trains it besides its model (`parts`), its close (`close`) and what it came to
(`outcome`); and the §4.6 downstream accuracies of a model (`downstream`).

`RunStages` is handed the spec's services (services.EngineServices) and the parts it uses — ModelStages,
LLDStages, StageClaims, the spec's StepCounter — never the engine.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core import provenance
from lldmix_core.behaviours import MixtureInputs
from lldmix_core.config import confine_path
from lldmix_core.distill import check_same_tokenizer, distill_loss_fn
from lldmix_core.engine.claims import StageClaims
from lldmix_core.engine.lld import LLDStages, subsample
from lldmix_core.engine.models import ModelStages, _device
from lldmix_core.engine.run import Evaluator, Reweighter, RunHandle, StepLogger
from lldmix_core.engine.services import EngineServices, RunServices, SpecContext, StepCounter
from lldmix_core.errors import UserError
from lldmix_core.evaluate import register_model
from lldmix_core.kl_rows import MODELMAP, SAMPLED, last_kl
from lldmix_core.methods import METHODS
from lldmix_core.models import LanguageModel
from lldmix_core.outcomes import RunOutcome
from lldmix_core.plan import RunUnit, groupable
from lldmix_core.prepare import mixture
from lldmix_core.procgroup import world
from lldmix_core.provenance import NUMERICS_VERSION
from lldmix_core.repetition import epoch_capped, format_cap
from lldmix_core.sampled_eval import sampled_steps
from lldmix_core.spec import RunSpec
from lldmix_core.tau import record_resolved
from lldmix_core.tracking import flush_before_checkpoint
from lldmix_core.train import TrainConfig
from lldmix_core.train_group import TRAIN_PATH


class RunParts(NamedTuple):
    """What trains a run besides its model (RunStages.parts)."""

    cfg: TrainConfig
    on_eval: Evaluator
    on_step: StepLogger
    checkpoint_path: object  # pathlib.Path


def groupable_here(spec: RunSpec, unit: RunUnit) -> bool:
    """Whether `unit` trains in a group: the spec allows it (plan.groupable) and this is one process."""
    return world()[1] == 1 and groupable(spec, unit.method)


def train_path(spec: RunSpec, method: str | None) -> str | None:
    """The path `method`'s runs of this spec train on: the grouped path's name, or None (one at a time)."""
    return TRAIN_PATH if method is not None and groupable_here(spec, RunUnit(0, method, None)) else None


class RunStages:
    def __init__(self, services: EngineServices, models: ModelStages, lld: LLDStages, claims: StageClaims,
                 steps: StepCounter):
        self.services, self.models, self.lld, self.claims, self.steps = services, models, lld, claims, steps
        self.store, self.tracker, self.log = services.store, services.tracker, services.log
        self.downstream_target: dict[str, float] | None = None  # the target's task accuracies (§4.6)

    # ------------------------------------------------------------------ the run's mixture
    def _mixture_inputs(self, ctx: SpecContext, seed: int, method: str, tau_setting) -> MixtureInputs:
        """What `method`'s behaviour may read to choose this run's mixture (the store reached through callables)."""
        spec, corpus = ctx.spec, ctx.corpus
        name = self.lld.recipe_name(spec, seed, tau_setting, method)
        return MixtureInputs(
            spec=spec, domains=corpus.domains, prior=ctx.prior, truth=ctx.truth, seed=seed, tau_setting=tau_setting,
            method=method, as_weights=lambda w, field: mixture(corpus.domains, w, None, field),
            aggregate=lambda: self.lld.aggregate(spec, corpus, seed, tau_setting, ctx.target_id, method,
                                                 train_path(spec, METHODS[method].aggregates)),
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

    # ------------------------------------------------------------------ open, build, train, close
    def open(self, ctx: SpecContext, unit: RunUnit, key: str, name: str, path: str | None = None) -> RunHandle:
        """The run's row and MLflow child, with the steps it evaluates at. `path`: the grouped path's
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
                                      parent_id=ctx.parent_id, job_id=self.services.job_id,
                                      config={"eval_steps": eval_steps, **({"epoch_cap": cap} if cap else {}),
                                              "train_path": path or "single"},
                                      tau_setting=unit.tau_setting.text, target_model_id=ctx.target_id,
                                      corpus_id=ctx.corpus.info.id,
                                      provenance={**ctx.provenance, "train_path": path or "single"})
        info = self.store.get_run(run_id)
        # the resolved τ where known before training: a recipe's run inherits pass 1's, a number is itself,
        # a resumed "auto" run keeps the one it resolved (else the Reweighter resolves it at its first estimate)
        tau = next((t for t in (tau, unit.tau_setting.number, info.tau) if t is not None), None)
        params = {"method": unit.method, "seed": unit.seed, "steps": steps, "unit": spec.lld.unit,
                  **({"tau_setting": unit.tau_setting.text} if not unit.tau_setting.is_none else {}),
                  "batch_size": spec.training.batch_size, "lr": spec.training.lr, "arch": spec.arch.model_dump_json(),
                  "corpus_hash": ctx.corpus.info.content_hash, "spec_hash": spec.spec_hash,
                  "numerics_version": NUMERICS_VERSION, "train_path": path or "single"}
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

    def student(self, ctx: SpecContext, unit: RunUnit) -> tuple[LanguageModel, object, int]:
        """The base for this seed (on the device), the distillation loss if the method has a teacher,
        and the base's model id."""
        M = METHODS[unit.method]
        lm = self.models.base(ctx.spec, ctx.corpus, ctx.tokenizer, unit.seed)
        lm.module.to(_device())
        loss_fn = None
        if M.needs_teacher:
            check_same_tokenizer(lm, ctx.target_lm)
            ctx.target_lm.module.to(_device())
            loss_fn = distill_loss_fn(ctx.target_lm, M.distill_objective, dict(ctx.spec.distill.params))
        base_id = register_model(self.store, lm, f"{ctx.spec.name}.base.seed{unit.seed}.{lm.fingerprint()[:8]}")
        return lm, loss_fn, base_id

    def parts(self, ctx: SpecContext, run: RunHandle, key: str, claim: str, done_before: int,
              group_size: int = 1) -> RunParts:
        """What trains a run besides its model: its training settings, the Evaluator (with its Reweighter)
        called at its evaluation steps, the StepLogger, its checkpoint. In a group of `group_size` runs
        progress counts every member's steps."""
        spec, unit = ctx.spec, run.unit
        steps = spec.training.steps

        def on_tau(tau: float) -> None:
            record_resolved(self.store, self.tracker, run.run_id, run.mlflow_id, tau)

        reweighter = Reweighter(run.method, unit.tau_setting, run.tau, ctx.prior, set(mc.lld_schedule(steps)), steps,
                                lambda m: self.lld.gram(spec, m, ctx.corpus), spec.lld.gram.ridge, on_tau, run.switches)
        sub = subsample(ctx.corpus, spec.lld.estimate_texts_per_domain, unit.seed) if run.method.iterative else None
        fraction = self.steps.fraction if group_size == 1 else \
            (lambda done: self.steps.fraction(done_before + (done - done_before) * group_size))
        services = RunServices(self.store, self.tracker, self.log, self.services.progress, fraction, self.claims.heartbeat,
                               self.services.settings.home)
        on_step = StepLogger(services, run, claim, steps, spec.training.checkpoint_every, done_before, flush_before_checkpoint,
                             ctx.corpus.domains, spec.training.batch_size * spec.training.grad_accum * spec.arch.block_size,
                             {d: ctx.corpus.streams.n_tokens(d) for d in ctx.corpus.domains})
        return RunParts(self.models.train_config(spec, steps, unit.seed), Evaluator(services, ctx, run, reweighter, sub, done_before),
                        on_step, self.services.settings.checkpoints_dir / key[:16] / "last.pt")

    def train_alone(self, ctx: SpecContext, run: RunHandle, lm: LanguageModel, loss_fn, key: str, claim: str,
                    done_before: int) -> None:
        """Train one run's student alone (`train.train`, via ModelStages for torchrun's other ranks)."""
        p = self.parts(ctx, run, key, claim, done_before)
        distill = {"teacher": self.models.recipes["target"], "objective": run.method.distill_objective,
                   "params": dict(ctx.spec.distill.params)} if run.method.needs_teacher else {}
        self.models.train(self.models.recipes["base"], lm, ctx.corpus, p.cfg, run.weights,
                          eval_steps=run.eval_steps, on_eval=p.on_eval, on_step=p.on_step, checkpoint_path=p.checkpoint_path,
                          should_stop=self.services.should_stop, loss_fn=loss_fn, **distill)

    def close(self, ctx: SpecContext, run: RunHandle, lm: LanguageModel, base_id: int) -> None:
        spec, steps = ctx.spec, ctx.spec.training.steps
        if spec.downstream.tasks:
            self.downstream(spec, lm, run.run_id, steps, run.name)
        self.store.update_run_models(run.run_id, base_model_id=base_id,
                                     final_model_id=self.store.final_model_id(run.run_id, steps))
        if run.method.behaviour.makes_recipe:
            self.tracker.log_recipe(run.mlflow_id, self.store.get_recipe(
                self.lld.recipe_name(spec, run.unit.seed, run.unit.tau_setting, run.unit.method)))
        self.store.finish_run(run.run_id, status="finished")
        self.tracker.end(run.mlflow_id)

    # ------------------------------------------------------------------ results
    def outcome(self, run_id: int, unit: RunUnit, skipped: bool = False) -> RunOutcome:
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

    def downstream(self, spec: RunSpec, lm: LanguageModel, run_id: int, step: int, who: str) -> dict[str, float]:
        """§4.6: task accuracies of `lm` (stored as run metrics `downstream/<task>`) and, for a run's
        final model, the Pearson r of its profile with the target's (`downstream_pearson`)."""
        from lldmix_core.downstream import evaluate_tasks, pearson_profile

        d = spec.downstream
        keys = [f"downstream/{t}" for t in d.tasks]
        stored = {m["key"]: m["value"] for m in self.store.get_metrics(run_id) if m["step"] == step}
        if all(k in stored for k in keys):
            scores = {t: stored[k] for t, k in zip(d.tasks, keys)}
        else:
            include = str(confine_path(d.include_path, self.services.settings, "downstream.include_path")) \
                if d.include_path else None
            scores = evaluate_tasks(lm, list(d.tasks), include_path=include, limit=d.limit, num_fewshot=d.num_fewshot,
                                    include_defaults=d.include_defaults)
        metrics = {f"downstream/{t}": v for t, v in scores.items()}
        if self.downstream_target is not None and who != "target":
            try:
                metrics["downstream_pearson"] = pearson_profile(scores, self.downstream_target)
            except UserError as e:  # e.g. a flat profile: r is undefined, the accuracies still count
                self.log(f"  downstream ({who}): no Pearson r ({e})")
        self.store.save_metrics(run_id, step, metrics)
        self.tracker.log_metrics(self.store.get_run(run_id).mlflow_run_id, metrics, step)
        self.log(f"  downstream ({who}): " + ", ".join(f"{t} {v:.3f} acc" for t, v in scores.items())
                 + (f"; Pearson r with the target's profile {metrics['downstream_pearson']:+.3f}"
                    if "downstream_pearson" in metrics else ""))
        return scores
