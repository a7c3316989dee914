"""Experiment tracking: MLflow, or a null tracker with the same methods when tracking is off.

The engine calls a tracker without asking which one it has. MLflow's backend is a database URI
(never the deprecated file store) and artifacts are pinned under LLDMIX_HOME.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
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

    def log_child_eval_dataset(self, run_id: str | None) -> None:
        pass

    def log_resolved_tau(self, run_id: str | None, tau: float | None) -> None:
        pass

    def log_recipe(self, run_id: str | None, recipe: dict) -> None:
        pass

    def link_children(self, parent_id: str | None) -> None:
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
        params = parent_params(name, params)
        tags = {"lldmix.spec": name, "lldmix.code_version": params["code_version"], **(tags or {})}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags or {}))
        if params:
            self.client.log_batch(run.info.run_id, params=_params(self._clean_params(params)))
        return run.info.run_id

    def start_child(self, parent_id, name, params, tags=None, run_id=None):
        if run_id is not None:  # resuming: keep logging into the same MLflow run
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        if parent_id:
            params = child_params(self._parent_params(parent_id), params)
        all_tags = child_tags(params, tags)
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.client.log_batch(run.info.run_id, params=_params(self._clean_params(params)))
        if parent_id:
            self.log_child_eval_dataset(run.info.run_id)
            self.link_children(parent_id)
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
        self._eval_input = DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "evaluation")])
        self.client.log_inputs(run_id, datasets=[self._eval_input])

    # ---------------------------------------------------------- children as users filter them
    def _parent_params(self, parent_id: str) -> dict:
        cache = self.__dict__.setdefault("_parent_params_cache", {})
        if parent_id not in cache:
            cache[parent_id] = dict(self.client.get_run(parent_id).data.params)
        return cache[parent_id]

    def log_child_eval_dataset(self, run_id):
        """The evaluation dataset last logged with log_eval_dataset (the parent's), on a child run too;
        the dataset's digest is not recomputed."""
        ds = getattr(self, "_eval_input", None)
        if run_id and ds is not None:
            self.client.log_inputs(run_id, datasets=[ds])

    def log_resolved_tau(self, run_id, tau):
        """τ as the engine resolved it (the `tau` param is τ as set, e.g. "auto"); call once it is known."""
        if run_id and tau is not None:
            self.client.log_param(run_id, "tau_resolved", repr(float(tau)))

    def log_recipe(self, run_id, recipe):
        """A stored recipe ({name, method, weights, provenance}) as recipes/recipe.json, .csv and
        .provenance.json artifacts of the run, and its name as a param."""
        if not run_id:
            return
        from lldmix_core.recipes import render

        self.client.log_dict(run_id, _jsonable(recipe), "recipes/recipe.json")
        self.client.log_text(run_id, render(recipe, "csv"), "recipes/recipe.csv")
        self.client.log_text(run_id, render(recipe, "provenance"), "recipes/recipe.provenance.json")
        self.client.log_param(run_id, "recipe_name", str(recipe["name"]))

    def link_children(self, parent_id):
        """The parent lists its children: a `lldmix.children` tag (how many) and children.json /
        children.md artifacts with each child's run id, name, method, seed and τ."""
        if not parent_id:
            return
        kids = self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                       max_results=10_000, order_by=["attributes.start_time ASC"])
        rows = [{"run_id": r.info.run_id, "run_name": r.info.run_name, "method": r.data.params.get("method"),
                 "seed": r.data.params.get("seed"), "tau": r.data.params.get("tau")} for r in kids]
        self.client.log_dict(parent_id, {"children": rows}, "children.json")
        md = ["| run | method | seed | τ | run id |", "|---|---|---|---|---|"]
        md += [f"| {r['run_name']} | {r['method']} | {r['seed']} | {r['tau']} | [{r['run_id']}](#/experiments/"
               f"{self.experiment_id}/runs/{r['run_id']}) |" for r in rows]
        self.client.log_text(parent_id, "\n".join(md) + "\n", "children.md")
        self.client.set_tag(parent_id, "lldmix.children", str(len(rows)))

    def end(self, run_id, status="FINISHED"):
        if run_id:
            self.client.set_terminated(run_id, status=status)

    def run_url(self, run_id):
        return f"{self.tracking_uri}#/experiments/{self.experiment_id}/runs/{run_id}" if run_id else None


# Params copied from the parent onto every child: the MLflow UI hides child runs when a filter
# matches only their parent, so each child carries what users filter on.
INHERITED_PARAMS = ("spec_name", "spec_hash", "corpus_hash", "code_version", "tokenizer")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """lldmix's version, with the git commit of its source when it runs from a checkout ("0.1.0+g1a2b3c4")."""
    from lldmix_core import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha.stdout.strip()}" if sha.returncode == 0 and sha.stdout.strip() else __version__


def parent_params(name: str, params: Mapping) -> dict:
    """A parent run's params: the engine's, plus spec_name and code_version."""
    return {"spec_name": name, "code_version": code_version(), **params}


def child_params(parent: Mapping, params: Mapping) -> dict:
    """A child run's params: the filterable ones of its parent (INHERITED_PARAMS), then its own
    (method, seed, tau as set, …), which win; code_version always."""
    out = {k: parent[k] for k in INHERITED_PARAMS if k in parent}
    out.update(params)
    out.setdefault("code_version", code_version())
    return out


def child_tags(params: Mapping, tags: Mapping | None) -> dict:
    """A run's tags: lldmix.method / lldmix.seed / lldmix.spec from its params, then the caller's."""
    out = {f"lldmix.{k}": str(params[p]) for k, p in (("method", "method"), ("seed", "seed"), ("spec", "spec_name"))
           if p in params}
    return {**out, **(tags or {})}


def _jsonable(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x.isoformat() if hasattr(x, "isoformat") else x


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
