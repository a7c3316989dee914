"""Configuration from the environment, with defaults that work on a fresh machine.

LLDMIX_HOME          working folder for databases, checkpoints, token files, artifacts (default ./.lldmix)
LLDMIX_DB_URL        SQLAlchemy URL of the lldmix database (default sqlite:///$LLDMIX_HOME/lldmix.db)
MLFLOW_TRACKING_URI  MLflow backend (default sqlite:///$LLDMIX_HOME/mlflow.db, a separate file;
                     artifacts pinned under $LLDMIX_HOME/mlartifacts)
LLDMIX_CORPUS_ROOTS  extra folders (os.pathsep-separated) that specs and the app may read corpora from
LLDMIX_MODEL_ROOTS   extra folders that specs and the app may load model folders from
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lldmix_core.errors import UserError


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    mlflow_uri: str
    mlflow_artifact_root: Path
    corpus_roots: tuple[Path, ...]
    model_roots: tuple[Path, ...]

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def tokens_dir(self) -> Path:
        return self.home / "tokens"

    @property
    def corpora_dir(self) -> Path:
        return self.home / "corpora"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        return (self.home, *self.corpus_roots, *self.model_roots)


def _roots(var: str) -> tuple[Path, ...]:
    raw = os.environ.get(var, "")
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())


def get_settings() -> Settings:
    home = Path(os.environ.get("LLDMIX_HOME") or ".lldmix").expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise UserError(f"LLDMIX_HOME={home} is not a folder: point it at a folder (it is created if missing)")
    db_url = os.environ.get("LLDMIX_DB_URL") or f"sqlite:///{home / 'lldmix.db'}"
    mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    if mlflow_uri.startswith("sqlite:") and mlflow_uri == db_url:
        raise UserError("MLFLOW_TRACKING_URI must not be the same database as LLDMIX_DB_URL")
    if not mlflow_uri.startswith(("sqlite:", "postgresql", "mysql", "http:", "https:", "databricks")):
        raise UserError(
            f"MLFLOW_TRACKING_URI={mlflow_uri!r}: use a database URI (sqlite:///… or postgresql://…) "
            "or a tracking server; the file store is deprecated"
        )
    return Settings(
        home=home,
        db_url=db_url,
        mlflow_uri=mlflow_uri,
        mlflow_artifact_root=home / "mlartifacts",
        corpus_roots=_roots("LLDMIX_CORPUS_ROOTS"),
        model_roots=_roots("LLDMIX_MODEL_ROOTS"),
    )


def confine_path(path: str | Path, settings: Settings, what: str = "path") -> Path:
    """Resolve `path` (relative to LLDMIX_HOME) and refuse anything outside the allowed roots.

    Used for every path that comes from the UI or a spec, so that `../` and absolute paths cannot
    reach files the user did not configure.
    """
    p = Path(path).expanduser()
    resolved = (p if p.is_absolute() else settings.home / p).resolve()
    for root in settings.allowed_roots:
        if resolved == root or root in resolved.parents:
            return resolved
    roots = ", ".join(str(r) for r in settings.allowed_roots)
    raise UserError(f"{what} {str(path)!r} is outside the allowed folders ({roots})")
