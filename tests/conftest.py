"""Shared fixtures: a fresh LLDMIX_HOME with a migrated SQLite database, and one real smoke run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the skip guard: a skip whose reason is not on tests/skip_allowlist.txt fails the run
from skip_guard import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh LLDMIX_HOME (database and MLflow inside it) for one test."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("LLDMIX_HOME", str(h))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return h


@pytest.fixture
def store(home):
    from lldmix_core.config import get_settings
    from lldmix_core.db.engine import upgrade
    from lldmix_core.db.store import Store

    url = get_settings().db_url
    upgrade(url)
    return Store.open(url)


def run_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `lldmix ARGS` in a subprocess (the real entry point, exit codes included)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"lldmix {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def smoke_home(tmp_path_factory) -> Path:
    """LLDMIX_HOME holding one finished real smoke run (runs/smoke.yaml), shared by the session's tests."""
    h = tmp_path_factory.mktemp("smoke") / "home"
    env = {"LLDMIX_HOME": str(h)}
    for var in ("LLDMIX_DB_URL", "MLFLOW_TRACKING_URI"):
        env[var] = ""
    run_cli("db", "upgrade", env=env)
    run_cli("run", "runs/smoke.yaml", env=env)
    return h


def _finished_home(tmp_path_factory, name: str) -> Path:
    """A fresh LLDMIX_HOME (embedded default) in which `lldmix run runs/<name>.yaml` has finished."""
    h = tmp_path_factory.mktemp(name) / "home"
    env = {"LLDMIX_HOME": str(h), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    run_cli("run", f"runs/{name}.yaml", env=env)
    return h


@pytest.fixture(scope="session")
def recovery_smoke_home(tmp_path_factory) -> Path:
    """LLDMIX_HOME holding the finished smoke-size recovery benchmark (runs/recovery-smoke.yaml)."""
    return _finished_home(tmp_path_factory, "recovery-smoke")


@pytest.fixture(scope="session")
def ladder_smoke_home(tmp_path_factory) -> Path:
    """LLDMIX_HOME holding the finished smoke-size headroom ladder (runs/ladder-smoke.yaml)."""
    return _finished_home(tmp_path_factory, "ladder-smoke")


@contextlib.contextmanager
def fresh_home(home: Path):
    """LLDMIX_HOME set to `home` (database migrated, no DB or MLflow URL overrides) for the block, for
    module-scoped fixtures that cannot use monkeypatch; yields (settings, store); the environment is
    restored after."""
    from lldmix_core.config import get_settings
    from lldmix_core.db.engine import upgrade
    from lldmix_core.db.store import Store

    names = ("LLDMIX_HOME", "LLDMIX_DB_URL", "MLFLOW_TRACKING_URI")
    old = {k: os.environ.get(k) for k in names}
    os.environ["LLDMIX_HOME"] = str(home)
    os.environ.pop("LLDMIX_DB_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        settings = get_settings()
        upgrade(settings.db_url)
        yield settings, Store.open(settings.db_url)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
