"""Store group for `runs` and what a run writes: `weight_estimates`, `kl_results`, `run_metrics` and
`recipes`, with the lookups callers need (a run by its key, the model a run registered at a step,
every run with its last KL in one query, the KL rows under a spec's parent run)."""

from __future__ import annotations

from typing import Mapping, Sequence

from sqlalchemy import and_, delete, func, select, update

from lldmix_core.db import schema as S
from lldmix_core.db.store.common import Transaction, now, retry_on_conflict, same, to_row
from lldmix_core.db.store.corpora import domain_ids
from lldmix_core.db.store.rows import KLRow, RunInfo, RunKLRow
from lldmix_core.errors import UserError
from lldmix_core.recipe_check import check_weights


class Runs:
    def __init__(self, transaction: Transaction):
        self.transaction = transaction

    @retry_on_conflict
    def start_run(self, *, key: str, name: str, spec_hash: str, method: str, seed: int | None = None,
                  tau: float | None = None, tau_setting: str | None = None, parent_id: int | None = None,
                  job_id: int | None = None,
                  config: dict | None = None, base_model_id: int | None = None, target_model_id: int | None = None,
                  corpus_id: int | None = None, provenance: dict | None = None) -> int:
        with self.transaction() as s:
            r = s.scalars(select(S.Run).where(S.Run.key == key)).first()
            if r is not None:
                r.status, r.error, r.finished_at = "running", None, None
                if provenance is not None:  # resumed: the code that finishes it is the code that counts
                    r.provenance, r.git_commit = provenance, provenance.get("git_commit")
                if job_id is not None:
                    r.job_id = job_id
                return r.id
            r = S.Run(key=key, name=name, spec_hash=spec_hash, method=method, seed=seed, tau=tau, tau_setting=tau_setting,
                      parent_id=parent_id,
                      job_id=job_id, config=config or {}, base_model_id=base_model_id, target_model_id=target_model_id,
                      corpus_id=corpus_id, status="running", provenance=provenance,
                      git_commit=(provenance or {}).get("git_commit"))
            s.add(r)
            s.flush()
            return r.id

    def finish_run(self, run_id: int, *, status: str, final_model_id: int | None = None, error: str | None = None) -> None:
        with self.transaction() as s:
            values = {"status": status, "error": error, "finished_at": now()}
            if final_model_id is not None:
                values["final_model_id"] = final_model_id
            s.execute(update(S.Run).where(S.Run.id == run_id).values(**values))

    def update_run_tau(self, run_id: int, tau: float) -> None:
        with self.transaction() as s:
            s.execute(update(S.Run).where(S.Run.id == run_id).values(tau=float(tau)))

    def update_run_models(self, run_id: int, *, base_model_id: int | None = None, final_model_id: int | None = None) -> None:
        values = {k: v for k, v in {"base_model_id": base_model_id, "final_model_id": final_model_id}.items() if v is not None}
        if values:
            with self.transaction() as s:
                s.execute(update(S.Run).where(S.Run.id == run_id).values(**values))

    def set_mlflow_run_id(self, run_id: int, mlflow_run_id: str) -> None:
        with self.transaction() as s:
            s.execute(update(S.Run).where(S.Run.id == run_id).values(mlflow_run_id=mlflow_run_id))

    def get_run(self, run_id: int) -> RunInfo:
        with self.transaction() as s:
            r = s.get(S.Run, run_id)
            if r is None:
                raise UserError(f"run {run_id} not found")
            return to_row(RunInfo, r)

    def get_run_by_key(self, key: str) -> RunInfo | None:
        """The run with this content key, or None."""
        with self.transaction() as s:
            r = s.scalars(select(S.Run).where(S.Run.key == key)).first()
            return to_row(RunInfo, r) if r is not None else None

    def final_model_id(self, run_id: int, step: int) -> int | None:
        """The id of the model a run registered at `step` (its final model at its last step), or None."""
        with self.transaction() as s:
            return s.scalars(select(S.Model.id).where(S.Model.run_id == run_id, S.Model.step == step)
                             .order_by(S.Model.id)).first()

    def runs_with_last_kl(self) -> list[tuple[RunInfo, KLRow | None]]:
        """Every run with its KL row at its last evaluated step (the first stored there when several
        estimators wrote one), or None — one query, for the dashboard's runs table."""
        last = (select(S.KLResult.run_id, func.max(S.KLResult.step).label("step"))
                .group_by(S.KLResult.run_id).subquery())
        with self.transaction() as s:
            rows = s.execute(select(S.Run, S.KLResult)
                             .outerjoin(last, last.c.run_id == S.Run.id)
                             .outerjoin(S.KLResult, (S.KLResult.run_id == S.Run.id) & (S.KLResult.step == last.c.step))
                             .order_by(S.Run.id, S.KLResult.id)).all()
            out: dict[int, tuple[RunInfo, KLRow | None]] = {}
            for run, k in rows:
                if run.id not in out or (out[run.id][1] is None and k is not None):
                    out[run.id] = (to_row(RunInfo, run), None if k is None else to_row(KLRow, k))
        return list(out.values())

    def list_runs(self, *, spec_hash: str | None = None, parent_id: int | None = None, job_id: int | None = None) -> list[RunInfo]:
        q = select(S.Run)
        if spec_hash is not None:
            q = q.where(S.Run.spec_hash == spec_hash)
        if parent_id is not None:
            q = q.where(S.Run.parent_id == parent_id)
        if job_id is not None:
            q = q.where(S.Run.job_id == job_id)
        with self.transaction() as s:
            return [to_row(RunInfo, r) for r in s.scalars(q.order_by(S.Run.id))]

    @retry_on_conflict
    def save_weights(self, run_id: int, step: int, weights: Mapping[str, float], *, tau: float | None, method: str) -> None:
        w = {d: float(v) for d, v in weights.items()}
        check_weights(w, f"run {run_id} step {step}")
        with self.transaction() as s:
            ids = domain_ids(s, w)
            s.execute(delete(S.WeightEstimate).where(S.WeightEstimate.run_id == run_id, S.WeightEstimate.step == step))
            s.execute(S.WeightEstimate.__table__.insert(), [
                {"run_id": run_id, "step": int(step), "domain_id": ids[d], "weight": v, "tau": tau, "method": method}
                for d, v in w.items()])

    def get_weights(self, run_id: int) -> dict[int, dict[str, float]]:
        with self.transaction() as s:
            rows = s.execute(select(S.WeightEstimate.step, S.Domain.name, S.WeightEstimate.weight)
                             .join(S.Domain, S.Domain.id == S.WeightEstimate.domain_id)
                             .where(S.WeightEstimate.run_id == run_id).order_by(S.WeightEstimate.step, S.Domain.name)).all()
        out: dict[int, dict[str, float]] = {}
        for step, d, w in rows:
            out.setdefault(step, {})[d] = w
        return out

    @retry_on_conflict
    def save_kl(self, *, run_id: int | None, step: int | None, model_id: int, reference_model_id: int, corpus_id: int,
                nats_per_text: float, bits_per_byte: float, gap_bits_per_byte: float | None, estimator: str,
                stderr_bits_per_byte: float | None = None, n_samples: int | None = None,
                clip_threshold: float | None = None) -> None:
        with self.transaction() as s:
            s.execute(delete(S.KLResult).where(and_(
                same(S.KLResult.run_id, run_id), same(S.KLResult.step, step), S.KLResult.model_id == model_id,
                S.KLResult.reference_model_id == reference_model_id, S.KLResult.corpus_id == corpus_id,
                S.KLResult.estimator == estimator)))
            s.add(S.KLResult(run_id=run_id, step=step, model_id=model_id, reference_model_id=reference_model_id,
                             corpus_id=corpus_id, nats_per_text=float(nats_per_text), bits_per_byte=float(bits_per_byte),
                             gap_bits_per_byte=None if gap_bits_per_byte is None else float(gap_bits_per_byte),
                             estimator=estimator, n_samples=n_samples,
                             stderr_bits_per_byte=None if stderr_bits_per_byte is None else float(stderr_bits_per_byte),
                             clip_threshold=None if clip_threshold is None else float(clip_threshold)))

    def get_kl(self, run_id: int) -> list[KLRow]:
        with self.transaction() as s:
            rows = s.scalars(select(S.KLResult).where(S.KLResult.run_id == run_id).order_by(S.KLResult.step)).all()
            return [to_row(KLRow, r) for r in rows]

    def save_metrics(self, run_id: int, step: int, metrics: Mapping[str, float]) -> None:
        self.save_metrics_many(run_id, [(step, metrics)])

    @retry_on_conflict
    def save_metrics_many(self, run_id: int, items: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Per-step scalar metrics, many steps in one transaction (upsert by run, key, step)."""
        with self.transaction() as s:
            for step, metrics in items:
                for k, v in metrics.items():
                    s.execute(delete(S.RunMetric).where(S.RunMetric.run_id == run_id, S.RunMetric.key == k,
                                                        S.RunMetric.step == step))
                    s.add(S.RunMetric(run_id=run_id, key=k, step=int(step), value=float(v)))

    def get_metrics(self, run_id: int) -> list[dict]:
        with self.transaction() as s:
            rows = s.scalars(select(S.RunMetric).where(S.RunMetric.run_id == run_id)
                             .order_by(S.RunMetric.key, S.RunMetric.step)).all()
            return [{"key": r.key, "step": r.step, "value": r.value} for r in rows]

    # ---------------------------------------------------------------- recipes
    @retry_on_conflict
    def save_recipe(self, *, name: str, method: str, weights: Mapping[str, float], provenance: dict,
                    run_id: int | None = None) -> int:
        w = {d: float(v) for d, v in weights.items()}
        check_weights(w, f"recipe {name}")
        with self.transaction() as s:
            r = s.scalars(select(S.Recipe).where(S.Recipe.name == name)).first()
            if r is None:
                r = S.Recipe(name=name, method=method, weights=w, provenance=provenance, run_id=run_id)
                s.add(r)
            else:
                r.method, r.weights, r.provenance, r.run_id = method, w, provenance, run_id
            s.flush()
            return r.id

    @staticmethod
    def _recipe_dict(r: S.Recipe) -> dict:
        return {"id": r.id, "name": r.name, "method": r.method, "weights": dict(r.weights),
                "provenance": dict(r.provenance), "run_id": r.run_id, "created_at": r.created_at}

    def get_recipe(self, ref: int | str) -> dict:
        with self.transaction() as s:
            r = s.get(S.Recipe, ref) if isinstance(ref, int) else s.scalars(select(S.Recipe).where(S.Recipe.name == ref)).first()
            if r is None:
                raise UserError(f"recipe {ref!r} not found (see `lldmix recipe list`)")
            return self._recipe_dict(r)

    def list_recipes(self) -> list[dict]:
        with self.transaction() as s:
            return [self._recipe_dict(r) for r in s.scalars(select(S.Recipe).order_by(S.Recipe.id))]

    def kl_rows(self, parent_id: int) -> list[RunKLRow]:
        """KL to the target at every evaluated step of every run under a spec's parent run."""
        with self.transaction() as s:
            rows = s.execute(select(S.Run.id, S.Run.name, S.Run.method, S.Run.seed, S.Run.tau_setting, S.KLResult.step,
                                    S.KLResult.nats_per_text, S.KLResult.bits_per_byte, S.KLResult.gap_bits_per_byte,
                                    S.KLResult.estimator, S.KLResult.stderr_bits_per_byte, S.KLResult.model_id,
                                    S.KLResult.corpus_id)
                             .join(S.KLResult, S.KLResult.run_id == S.Run.id).where(S.Run.parent_id == parent_id)
                             .order_by(S.Run.id, S.KLResult.step)).all()
        return [RunKLRow(*r) for r in rows]
