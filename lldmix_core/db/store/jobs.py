"""Store group for the `jobs` table: the queue between the dashboard (enqueue, cancel) and workers
(claim atomically, report progress, finish)."""

from __future__ import annotations

from sqlalchemy import select, update

from lldmix_core.db import schema as S
from lldmix_core.db.store.common import Transaction, now, to_row
from lldmix_core.db.store.rows import JobInfo
from lldmix_core.errors import UserError


class Jobs:
    def __init__(self, transaction: Transaction):
        self.transaction = transaction

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
                    status="running", worker=worker, started_at=now(), heartbeat_at=now()))
                if res.rowcount == 1:
                    return to_row(JobInfo, s.get(S.Job, job_id))
        return None

    def update_job(self, job_id: int, *, progress: float | None = None, message: str | None = None) -> None:
        values = {"heartbeat_at": now()}
        if progress is not None:
            values["progress"] = float(progress)
        if message is not None:
            values["message"] = message[:2000]
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id).values(**values))

    def finish_job(self, job_id: int, *, status: str, error: str | None = None) -> None:
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id).values(status=status, error=error, finished_at=now()))

    def request_cancel(self, job_id: int) -> None:
        with self.transaction() as s:
            s.execute(update(S.Job).where(S.Job.id == job_id, S.Job.status == "queued")
                      .values(status="cancelled", cancel_requested=1, finished_at=now()))
            s.execute(update(S.Job).where(S.Job.id == job_id, S.Job.status == "running").values(cancel_requested=1))

    def get_job(self, job_id: int) -> JobInfo:
        with self.transaction() as s:
            j = s.get(S.Job, job_id)
            if j is None:
                raise UserError(f"job {job_id} not found")
            return to_row(JobInfo, j)

    def list_jobs(self) -> list[JobInfo]:
        with self.transaction() as s:
            return [to_row(JobInfo, j) for j in s.scalars(select(S.Job).order_by(S.Job.id.desc()))]
