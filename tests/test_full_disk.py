"""A full disk while writing token files or MLflow records is one line naming what could not be
written, and leaves nothing half written (issue 24, item 4)."""

from __future__ import annotations

import sqlite3

import pytest

from lldmix_core import faults
from lldmix_core.corpus.streams import DomainStreams
from lldmix_core.errors import UserError
from lldmix_core.tokenizers import get_tokenizer
from lldmix_core.tracking import FullDiskGuard, is_full_disk

RECORDS = [("A", "alpha " * 50), ("B", "beta " * 50), ("A", "again " * 50), ("B", "more " * 50)]


@pytest.fixture
def full_disk_at(monkeypatch):
    """Arm a fault point to fail as a full disk on its n-th visit (this process only)."""
    def arm(point: str, n: int) -> None:
        monkeypatch.setitem(faults._armed, point, (n, "enospc"))
        monkeypatch.setitem(faults._seen, point, 0)
    return arm


def test_full_disk_while_building_token_files(tmp_path, full_disk_at):
    out = tmp_path / "tokens" / "abc123"
    full_disk_at("token_write", 3)  # two documents are on disk in the temp folder when it fails
    with pytest.raises(UserError) as info:
        DomainStreams.build(iter(RECORDS), get_tokenizer("bytes"), out)
    msg = str(info.value)
    assert msg == (f"could not write the token files {out}: no space left on the device "
                   "(nothing was changed; the partial files were removed)")
    assert sorted(p.name for p in out.parent.iterdir()) == [".abc123.lock"]  # no .abc123.tmp-PID, no abc123
    full_disk_at("token_write", 10**9)  # space again: the same call builds it
    streams = DomainStreams.build(iter(RECORDS), get_tokenizer("bytes"), out)
    assert tuple(streams.domains) == ("A", "B") and streams.n_tokens("A") == 2 * 301  # BOS + 300 bytes each


def test_other_failures_also_remove_the_temp_folder(tmp_path):
    out = tmp_path / "tokens" / "abc123"

    def records():
        yield RECORDS[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DomainStreams.build(records(), get_tokenizer("bytes"), out)
    assert sorted(p.name for p in out.parent.iterdir()) == [".abc123.lock"]


def test_a_killed_builders_temp_folder_is_removed_by_the_next_build(tmp_path):
    import subprocess

    out = tmp_path / "tokens" / "abc123"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has ended
    stale = out.parent / f".abc123.tmp-{dead.pid}"
    stale.mkdir(parents=True)
    (stale / "A.bin").write_bytes(b"\0" * 1000)
    DomainStreams.build(iter(RECORDS), get_tokenizer("bytes"), out)
    assert sorted(p.name for p in out.parent.iterdir()) == [".abc123.lock", "abc123"]


def _mlflow_full_disk_error() -> Exception:
    """What MLflow's SQL store raises on a full disk: an MlflowException from SQLAlchemy's error."""
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    low = sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise low
        except sqlalchemy.exc.OperationalError as e:
            raise MlflowException(f"{e}") from e
    except MlflowException as e:
        return e


class _Client:
    def __init__(self, error):
        self.error = error
        self.calls = []

    def log_batch(self, run_id, metrics=()):
        self.calls.append(run_id)
        raise self.error

    def get_run(self, run_id):
        raise self.error


def test_mlflow_full_disk_is_one_line_naming_the_store_and_the_write():
    guarded = FullDiskGuard(_Client(_mlflow_full_disk_error()), "sqlite:////home/u/lldmix/mlflow.db")
    with pytest.raises(UserError) as info:
        guarded.log_batch("run1", metrics=[])
    assert str(info.value) == ("could not write to the MLflow store sqlite:////home/u/lldmix/mlflow.db (log_batch): "
                               "no space left on the device (nothing was changed by that write; free space, "
                               "then rerun to resume)")
    assert info.value.__cause__ is None and "\n" not in str(info.value)


def test_mlflow_other_errors_pass_through_and_the_fault_point_fires(full_disk_at):
    from mlflow.exceptions import MlflowException

    other = MlflowException("RESOURCE_DOES_NOT_EXIST: run 'x' not found")
    guarded = FullDiskGuard(_Client(other), "http://u:pw@mlflow.example:5000")
    with pytest.raises(MlflowException, match="not found"):
        guarded.get_run("x")
    full_disk_at("mlflow_write", 1)  # a write: the fault point comes before the client is called
    client = _Client(other)
    with pytest.raises(UserError, match=r"MLflow store http://\*\*\*@mlflow.example:5000 \(log_batch\)"):
        FullDiskGuard(client, "http://u:pw@mlflow.example:5000").log_batch("r")
    assert client.calls == []


def test_is_full_disk_follows_the_cause_chain():
    assert is_full_disk(_mlflow_full_disk_error())
    assert is_full_disk(OSError(28, "No space left on device"))
    assert not is_full_disk(ValueError("disk is fine"))


def test_full_disk_errors_reaching_the_cli_are_one_line():
    import sqlalchemy.exc

    from lldmix_core.cli_errors import known_error

    sql = sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
    assert str(known_error(sql)).startswith("could not write to the database ")
    assert str(known_error(sql)).endswith(": no space left on the device (the transaction was rolled back: "
                                          "nothing was changed)")
    assert str(known_error(_mlflow_full_disk_error())).startswith("could not write to the MLflow store: no space left")
