"""Experiment tracking: MLflow, or a null tracker with the same methods when tracking is off.

The engine calls a tracker without asking which one it has. MLflow's backend is a database URI
(never the deprecated file store) and artifacts are pinned under LLDMIX_HOME.
"""

from __future__ import annotations

import math
import os
import logging
import warnings
from pathlib import Path
from typing import Mapping

from lldmix_core.atomic import file_lock


class NullTracker:
    """Tracking off: every call does nothing and run ids are None."""

    def start_parent(self, name: str, params: Mapping, tags: Mapping | None = None) -> str | None:
        return None

    def start_child(self, parent_id: str | None, name: str, params: Mapping, tags: Mapping | None = None, run_id: str | None = None) -> str | None:
        return None

    def log_metrics(self, run_id: str | None, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_dict(self, run_id: str | None, data: dict, path: str) -> None:
        pass

    def log_artifact(self, run_id: str | None, local_path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_eval_dataset(self, run_id: str | None, texts: list[str], domains: list[str], source: str, name: str) -> None:
        pass

    def end(self, run_id: str | None, status: str = "FINISHED") -> None:
        pass

    def run_url(self, run_id: str | None) -> str | None:
        return None


class MlflowTracker(NullTracker):
    """One MLflow experiment per spec; a parent run per spec execution, a child run per method × seed."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path):
        import mlflow
        from mlflow.tracking import MlflowClient

        # after the import: mlflow sets its own loggers to INFO when imported, and its schema
        # migrations would print on the first run
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.tracking_uri = tracking_uri
        # MLflow creates and migrates a SQLite store on first contact; workers starting together
        # would race on it ("table _alembic_tmp_… already exists"), so one process at a time does it
        with file_lock(Path(artifact_root).parent / ".mlflow-init.lock"):
            self.client = MlflowClient(tracking_uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                artifact_root.mkdir(parents=True, exist_ok=True)
                exp_id = self.client.create_experiment(
                    experiment, artifact_location=(artifact_root / experiment).resolve().as_uri())
            else:
                exp_id = exp.experiment_id
        self.experiment_id = exp_id

    @staticmethod
    def _clean_params(params: Mapping) -> dict:
        return {str(k)[:250]: str(v)[:6000] for k, v in params.items()}

    def start_parent(self, name, params, tags=None):
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags or {}))
        if params:
            self.client.log_batch(run.info.run_id, params=_params(self._clean_params(params)))
        return run.info.run_id

    def start_child(self, parent_id, name, params, tags=None, run_id=None):
        if run_id is not None:  # resuming: keep logging into the same MLflow run
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = dict(tags or {})
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.client.log_batch(run.info.run_id, params=_params(self._clean_params(params)))
        return run.info.run_id

    def log_metrics(self, run_id, metrics, step):
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        ms = [Metric(_metric_key(k), float(v), now, int(step)) for k, v in metrics.items() if math.isfinite(float(v))]
        if run_id and ms:
            self.client.log_batch(run_id, metrics=ms)

    def log_dict(self, run_id, data, path):
        if run_id:
            self.client.log_dict(run_id, data, path)

    def log_artifact(self, run_id, local_path, artifact_path=None):
        if run_id:
            self.client.log_artifact(run_id, str(local_path), artifact_path)

    def log_eval_dataset(self, run_id, texts, domains, source, name):
        if not run_id:
            return
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # MLflow warns that a local path matches two equivalent source types
            warnings.simplefilter("ignore", UserWarning)
            ds = self._mlflow.data.from_pandas(pd.DataFrame({"text": texts, "domain": domains}), source=source, name=name)
        self.client.log_inputs(
            run_id, datasets=[DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "evaluation")])]
        )

    def end(self, run_id, status="FINISHED"):
        if run_id:
            self.client.set_terminated(run_id, status=status)

    def run_url(self, run_id):
        return f"{self.tracking_uri}#/experiments/{self.experiment_id}/runs/{run_id}" if run_id else None


def _params(d: dict):
    from mlflow.entities import Param

    return [Param(k, v) for k, v in d.items()]


def _metric_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / ; domain names may hold other characters
    return "".join(c if (c.isalnum() or c in "_-. /") else "_" for c in key)


def make_tracker(enabled: bool, tracking_uri: str, experiment: str, artifact_root: Path) -> NullTracker:
    if not enabled:
        return NullTracker()
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    return MlflowTracker(tracking_uri, experiment, artifact_root)
