"""The store's coordination tables: `stages` (claims, so each unit of work is computed once) and
`jobs` (the queue between the dashboard and workers). Mixed into `Store`."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

import functools
import time
from dataclasses import dataclass, fields

from lldmix_core.db import schema as S
from lldmix_core.errors import UserError


@dataclass(frozen=True)
class JobInfo:
    id: int
    name: str
    spec_yaml: str
    spec_hash: str
    status: str
    progress: float
    message: str | None
    error: str | None
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


def _info(cls, row):
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def _retry_on_conflict(method):
    """Re-run an idempotent write when a concurrent writer inserted the same unique key first
    (PostgreSQL raises IntegrityError at commit; the retry finds that row and updates it)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        for attempt in range(4):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == 3:
                    raise
                time.sleep(0.05 * (attempt + 1))

    return wrapper


def _now() -> datetime:
    return S.utcnow()


def _same(col, v):
    return col.is_(None) if v is None else col == v


def _claim_is_stale(owner: str | None, heartbeat_at: datetime | None, stale_seconds: float) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True  # the owner died on this host: no need to wait for its heartbeat to age
        except PermissionError:
            pass
    if heartbeat_at is None:
        return True
    if heartbeat_at.tzinfo is None:  # SQLite hands datetimes back naive (they are stored as UTC)
        heartbeat_at = heartbeat_at.replace(tzinfo=timezone.utc)
    return (_now() - heartbeat_at).total_seconds() > stale_seconds



class CoordinationMixin:
    # ------------------------------------------------------------------ stages
    def get_stage(self, key: str) -> dict | None:
        with self.transaction() as s:
            st = s.scalars(select(S.Stage).where(S.Stage.key == key, S.Stage.status == "finished")).first()
            return dict(st.result) if st else None

    @_retry_on_conflict
    def finish_stage(self, key: str, *, kind: str, spec_hash: str | None, result: dict) -> None:
        with self.transaction() as s:
            st = s.scalars(select(S.Stage).where(S.Stage.key == key)).first()
            if st is None:
                s.add(S.Stage(key=key, kind=kind, spec_hash=spec_hash, status="finished", result=result))
            else:
                st.kind, st.spec_hash, st.status, st.result, st.owner = kind, spec_hash, "finished", result, None

    def claim_stage(self, key: str, *, kind: str, owner: str, stale_seconds: float = 600.0) -> str:
        """Claim a stage before computing it: "finished" (done already), "claimed" (ours now) or "busy".

        A claim is taken over when its owner is a dead process on this host or its heartbeat is
        older than `stale_seconds` (a worker on another host that died)."""
        try:
            with self.transaction() as s:
                st = s.scalars(select(S.Stage).where(S.Stage.key == key)).first()
                if st is None:
                    s.add(S.Stage(key=key, kind=kind, status="running", owner=owner, heartbeat_at=_now(), result={}))
                    return "claimed"  # unless another worker's insert commits first: IntegrityError below
                if st.status == "finished":
                    return "finished"
                if st.owner != owner and not _claim_is_stale(st.owner, st.heartbeat_at, stale_seconds):
                    return "busy"
                res = s.execute(update(S.Stage).where(S.Stage.id == st.id, S.Stage.status == "running",
                                                      _same(S.Stage.owner, st.owner))
                                .values(owner=owner, heartbeat_at=_now()))
                return "claimed" if res.rowcount == 1 else "busy"
        except IntegrityError:
            return "busy"

    def heartbeat_stage(self, key: str, owner: str) -> None:
        with self.transaction() as s:
            s.execute(update(S.Stage).where(S.Stage.key == key, S.Stage.owner == owner, S.Stage.status == "running")
                      .values(heartbeat_at=_now()))

    def release_stage(self, key: str, owner: str) -> None:
        """Give up a claim (the stage failed or was cancelled) so another worker may take it at once."""
        with self.transaction() as s:
            s.execute(delete(S.Stage).where(S.Stage.key == key, S.Stage.owner == owner, S.Stage.status == "running"))

    # ------------------------------------------------------------------ jobs (the queue)
    def enqueue(self, *, name: str, spec_yaml: str, spec_hash: str) -> int:
        with self.transaction() as s:
            j = S.Job(name=name, spec_yaml=spec_yaml, spec_hash=spec_hash, status="queued", progress=0.0, cancel_requested=0)
            s.add(j)
            s.flush()
            return j.id

    def claim_job(self, worker: str) -> JobInfo | None:
        """Take the oldest queued job atomically: the conditional UPDATE succeeds for one worker only."""
        for _ in range(20):
            with self.transaction() as s:
                job_id = s.scalar(select(S.Job.id).where(S.Job.status == "queued").order_by(S.Job.id).limit(1))
                if job_id is None:
                    return None
                res = s.execute(update(S.Job).where(S.Job.id == job_id, S.Job.status == "queued").values(
                    status="running", worker=worker, started_at=_now(), heartbeat_at=_now()))
                if res.rowcount == 1:
                    return _info(JobInfo, s.get(S.Job, job_id))
        return None

    def update_job(self, job_id: int, *, progress: float | None = None, message: str | None = None) -> None:
        values = {"heartbeat_at": _now()}
        if progress is not None:
            values["progress"] = float(progress)
        if message is not None:
            values["message"] = message[:2000]
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id).values(**values))

    def finish_job(self, job_id: int, *, status: str, error: str | None = None) -> None:
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id).values(status=status, error=error, finished_at=_now()))

    def request_cancel(self, job_id: int) -> None:
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id, S.Job.status == "queued")
                      .values(status="cancelled", cancel_requested=1, finished_at=_now()))
            s.execute(update(S.Job).where(S.Job.id == job_id, S.Job.status == "running").values(cancel_requested=1))

    def get_job(self, job_id: int) -> JobInfo:
        with self.transaction() as s:
            j = s.get(S.Job, job_id)
            if j is None:
                raise UserError(f"job {job_id} not found")
            return _info(JobInfo, j)

    def list_jobs(self) -> list[JobInfo]:
        with self.transaction() as s:
            return [_info(JobInfo, j) for j in s.scalars(select(S.Job).order_by(S.Job.id.desc()))]

