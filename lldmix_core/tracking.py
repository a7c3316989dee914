"""Experiment tracking: MLflow, or a null tracker with the same methods when tracking is off.

The engine calls a tracker without asking which one it has. MLflow's backend is a database URI
(never the deprecated file store) and artifacts are pinned under LLDMIX_HOME.

Just over 400 lines: the tracker, its kill-safe first contact with MLflow's store, and the key
sanitising that keeps domain names data all have to agree on MLflow's rules, so they stay together.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import math
import os
import subprocess
import logging
import warnings
from pathlib import Path
from typing import Mapping

from lldmix_core.atomic import file_lock
from lldmix_core.errors import UserError
from lldmix_core.faults import fault_point


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
        # MLflow's store logs a full traceback before it raises; the raised error is reported (in
        # one line) by the caller, so the log would only bury that line under 40 more
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.tracking_uri = tracking_uri
        self._logged: dict[str, set[tuple[str, int]]] = {}  # resumed run -> (key, step) already in MLflow
        # MLflow creates and migrates a SQLite store on first contact; workers starting together
        # would race on it ("table _alembic_tmp_… already exists"), so one process at a time does it
        local = tracking_uri.startswith("sqlite:")
        with file_lock(Path(artifact_root).parent / ".mlflow-init.lock") if local else contextlib.nullcontext():
            if local:
                ensure_sqlite_store(tracking_uri, artifact_root)
            try:
                self.client = FullDiskGuard(MlflowClient(tracking_uri), tracking_uri)
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    artifact_root.mkdir(parents=True, exist_ok=True)
                    exp_id = self.client.create_experiment(
                        experiment, artifact_location=experiment_artifact_dir(artifact_root, experiment).as_uri())
                else:
                    exp_id = exp.experiment_id
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001 - unreachable server, refused connection, bad store
                if tracking_uri.startswith(("http:", "https:")):
                    raise UserError(f"MLflow tracking server {tracking_uri} did not answer "
                                    f"({type(e).__name__}, within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s "
                                    "per try): start it, fix MLFLOW_TRACKING_URI, or run with --no-mlflow") from None
                raise
        self.experiment_id = exp_id

    @staticmethod
    def _clean_params(params: Mapping) -> dict:
        return {metric_key(str(k))[:250]: str(v)[:6000] for k, v in params.items()}

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
            self._logged[run_id] = self._history(run_id)
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
        done = self._logged.get(run_id, set())
        ms = [Metric(metric_key(k), float(v), now, int(step)) for k, v in metrics.items()
              if math.isfinite(float(v)) and (metric_key(k), int(step)) not in done]
        if run_id and ms:
            self.client.log_batch(run_id, metrics=ms)

    def _history(self, run_id: str) -> set[tuple[str, int]]:
        """(key, step) pairs a resumed run already holds, so a re-done step is not logged twice."""
        run = self.client.get_run(run_id)
        out: set[tuple[str, int]] = set()
        for key in run.data.metrics:
            out.update((key, m.step) for m in self.client.get_metric_history(run_id, key))
        return out

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
        """The resolved τ as the param `tau_resolved` (the param `tau_setting` is τ as set, tau.Tau.text, e.g.
        "auto"); called by tau.record_resolved only."""
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
        children.md artifacts with each child's run id, name, method, seed and τ setting."""
        if not parent_id:
            return
        kids = self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                       max_results=10_000, order_by=["attributes.start_time ASC"])
        rows = [{"run_id": r.info.run_id, "run_name": r.info.run_name, "method": r.data.params.get("method"),
                 "seed": r.data.params.get("seed"), "tau_setting": r.data.params.get("tau_setting")} for r in kids]
        self.client.log_dict(parent_id, {"children": rows}, "children.json")
        md = ["| run | method | seed | τ setting | run id |", "|---|---|---|---|---|"]
        md += [f"| {r['run_name']} | {r['method']} | {r['seed']} | {r['tau_setting'] or '—'} | [{r['run_id']}](#/experiments/"
               f"{self.experiment_id}/runs/{r['run_id']}) |" for r in rows]
        self.client.log_text(parent_id, "\n".join(md) + "\n", "children.md")
        self.client.set_tag(parent_id, "lldmix.children", str(len(rows)))

    def end(self, run_id, status="FINISHED"):
        if run_id:
            self.client.set_terminated(run_id, status=status)

    def run_url(self, run_id):
        return f"{self.tracking_uri}#/experiments/{self.experiment_id}/runs/{run_id}" if run_id else None


class FullDiskGuard:
    """An MLflow client whose calls turn a full disk into one line naming the store and the write.

    MLflow reports it as `MlflowException: (sqlite3.OperationalError) database or disk is full`
    (or an OSError ENOSPC for artifacts), which the CLI would call a bug. Each of MLflow's SQL
    writes is one transaction, so the failed write changed nothing; the run resumes on a rerun."""

    def __init__(self, client, tracking_uri: str):
        self._client = client
        self._uri = tracking_uri

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        @functools.wraps(method)
        def guarded(*args, **kwargs):
            try:
                if name.startswith(_WRITES):
                    fault_point("mlflow_write")
                return method(*args, **kwargs)
            except Exception as e:
                if not is_full_disk(e):
                    raise
                raise UserError(f"could not write to the MLflow store {_redact_uri(self._uri)} ({name}): no space "
                                "left on the device (nothing was changed by that write; free space, then rerun "
                                "to resume)") from None

        return guarded


_WRITES = ("log_", "set_", "create_", "update_", "delete_")  # MlflowClient methods that write


def is_full_disk(e: BaseException | None) -> bool:
    """True when `e` (or an exception it was raised from) says the disk or the database is full."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _redact_uri(uri: str) -> str:
    if "@" not in uri:
        return uri
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


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


def metric_key(key: str) -> str:
    """An MLflow-safe key for `key` (which may embed domain names, i.e. data): ASCII alphanumerics and
    `_ - . /` and space only, no empty, `.` or `..` path segment. A key that had to change gets a
    short hash of the original, so two domains never share a key ("C++" and "C__" stay apart)."""
    cleaned = "".join(c if (c.isascii() and (c.isalnum() or c in "_-. /")) else "_" for c in key)
    segments = [seg if seg.strip(".") and seg.strip() else seg.replace(".", "_") or "_" for seg in cleaned.split("/")]
    cleaned = "/".join(segments)
    if cleaned == key:
        return key
    return f"{cleaned}~{hashlib.sha256(key.encode()).hexdigest()[:8]}".replace("~", "-")


def experiment_artifact_dir(artifact_root: Path, experiment: str) -> Path:
    """The folder of an experiment's artifacts: always a direct child of `artifact_root`, whatever
    the name holds (`../../x`, `/abs`, non-ASCII)."""
    from lldmix_core.recipes import safe_filename

    root = Path(artifact_root).resolve()
    folder = safe_filename(experiment)
    if folder != experiment:
        folder = f"{folder}-{hashlib.sha256(experiment.encode()).hexdigest()[:8]}"
    path = (root / folder).resolve()
    if path.parent != root:
        raise UserError(f"tracking.experiment {experiment!r}: its artifact folder would leave {root}")
    return path


def ensure_sqlite_store(uri: str, artifact_root: Path) -> None:
    """Make MLflow's first contact with a SQLite store safe to kill: the store is created and migrated
    under a temp name in the same folder and renamed into place, so `mlflow.db` is either absent or
    complete. A store left half-created by an older version (tables but no finished migration, and no
    runs) is moved aside with a message and created afresh. Call under the init lock."""
    import sqlite3
    import sys
    import time

    from sqlalchemy.engine import make_url

    db = make_url(uri).database
    if not db or db == ":memory:":
        return
    path = Path(db).absolute()
    if path.is_file() and _half_created(path):
        aside = path.with_name(f"{path.name}.half-created-{int(time.time())}")
        os.replace(path, aside)
        print(f"MLflow store {path} was left half-created by a killed run (no runs in it): moved to {aside.name}, "
              "creating it again", file=sys.stderr)
    if path.is_file():
        return
    if not path.parent.is_dir():
        raise UserError(f"MLFLOW_TRACKING_URI {uri}: folder {path.parent} does not exist (create it first)")
    for stale in path.parent.glob(f".{path.name}.init-*"):
        stale.unlink(missing_ok=True)  # a temp store of a killed first contact (we hold the lock)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{tmp}", Path(artifact_root).resolve().as_uri())
    store.engine.dispose()
    fault_point("mlflow_init")  # the store exists under its temp name only
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    for extra in ("-wal", "-shm", "-journal"):
        Path(f"{tmp}{extra}").unlink(missing_ok=True)


def _half_created(path: Path) -> bool:
    """True for an MLflow SQLite file whose creation was interrupted: some tables, no completed
    migration record, and no runs."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = conn.execute("SELECT version_num FROM alembic_version").fetchall() \
                if "alembic_version" in tables else []
            has_runs = "runs" in tables and conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False  # not ours to judge: MLflow reports it
    if has_runs:
        return False
    if not tables:
        return True  # an empty file (killed before the first table)
    if not version:
        return True
    head = _mlflow_head()
    return head is not None and version[0][0] != head and "experiments" in tables


def _mlflow_head() -> str | None:
    try:
        from alembic.script import ScriptDirectory
        from mlflow.store.db.utils import _get_alembic_config

        return ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()
    except Exception:  # noqa: BLE001 - then only the missing-version test applies
        return None


def flush_before_checkpoint(step: int, checkpoint_every: int) -> bool:
    """True at the step a resumable checkpoint follows: buffered per-step metrics must reach the
    database and MLflow before it, or a kill after the checkpoint loses them for good (the resumed
    run starts after them)."""
    return (step + 1) % checkpoint_every == 0


def make_tracker(enabled: bool, tracking_uri: str, experiment: str, artifact_root: Path) -> NullTracker:
    if not enabled:
        return NullTracker()
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    # an unreachable tracking server fails within about a minute instead of hanging (the user may override)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return MlflowTracker(tracking_uri, experiment, artifact_root)
