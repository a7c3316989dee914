"""The run queue: the dashboard enqueues specs in the `jobs` table; `lldmix worker` claims and runs them.

Claiming is one atomic update in the store, so two workers never take the same job. A worker
reports progress and a heartbeat while it runs, and stops at the next step when cancelled.
"""

from __future__ import annotations

import time
import traceback

from lldmix_core.config import get_settings
from lldmix_core.db.store import Store
from lldmix_core.engine import Engine
from lldmix_core.engine.claims import worker_name
from lldmix_core.enqueue import checked_spec, enqueue_spec  # noqa: F401 (enqueue_spec: the one way in)
from lldmix_core.errors import UserError
from lldmix_core.outcomes import Cancelled


def run_job(store: Store, job) -> str:
    """Run one claimed job to the end; returns its final status."""
    last = {"t": 0.0}

    def progress(frac: float, msg: str) -> None:
        now = time.monotonic()
        if now - last["t"] >= 1.0 or frac >= 1.0:  # at most one write a second
            store.update_job(job.id, progress=frac, message=msg)
            last["t"] = now

    checked = {"t": 0.0, "stop": False}

    def should_stop() -> bool:  # asked every training step; the database is read at most once a second
        now = time.monotonic()
        if now - checked["t"] >= 1.0:
            checked["t"], checked["stop"] = now, bool(store.get_job(job.id).cancel_requested)
        return checked["stop"]

    try:
        spec = checked_spec(store, job.spec_yaml, f"job {job.id}")  # every check again: the queue is a table
        engine = Engine(store, get_settings(), progress=progress, should_stop=should_stop, job_id=job.id, verbose=False)
        engine.run(spec)
    except Cancelled:
        _mark_runs_cancelled(store, job.id)
        store.finish_job(job.id, status="cancelled")
        return "cancelled"
    except UserError as e:
        store.finish_job(job.id, status="failed", error=str(e))
        return "failed"
    except Exception as e:  # a bug: keep the traceback for the Runs page
        store.finish_job(job.id, status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}")
        return "failed"
    store.update_job(job.id, progress=1.0, message="finished")
    store.finish_job(job.id, status="finished")
    return "finished"


def _mark_runs_cancelled(store: Store, job_id: int) -> None:
    """The runs a cancelled job stopped read "cancelled" like the job (the engine records them as failed
    with the stop message), so the dashboard speaks one status vocabulary."""
    for r in store.list_runs(job_id=job_id):
        if r.status in ("running", "stopped") or (r.status == "failed" and (r.error or "").startswith("stopped")):
            store.finish_run(r.id, status="cancelled", error=r.error)


def work(store: Store, *, once: bool = False, poll_seconds: float = 2.0, idle_exit_seconds: float | None = None) -> int:
    """Claim and run jobs until none is left (`once`) or forever; returns the number of jobs run."""
    me = worker_name()
    ran = 0
    idle_since = time.monotonic()
    while True:
        job = store.claim_job(me)
        if job is None:
            if once or (idle_exit_seconds is not None and time.monotonic() - idle_since > idle_exit_seconds):
                return ran
            time.sleep(poll_seconds)
            continue
        run_job(store, job)
        ran += 1
        idle_since = time.monotonic()
