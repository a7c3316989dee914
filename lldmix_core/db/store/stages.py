"""Store group for the `stages` table: claims, so each unit of work (a corpus, a score, a run) is
computed once across workers, and the finished stage's result (a JSON dict) is found by its key.
The engine's side of the protocol (wait, heartbeat, give back) is lldmix_core/engine/claims.py."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from lldmix_core.db import schema as S
from lldmix_core.db.store.common import Transaction, now, retry_on_conflict, same


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
    return (now() - heartbeat_at).total_seconds() > stale_seconds


class Stages:
    def __init__(self, transaction: Transaction):
        self.transaction = transaction

    def get_stage(self, key: str) -> dict | None:
        with self.transaction() as s:
            st = s.scalars(select(S.Stage).where(S.Stage.key == key, S.Stage.status == "finished")).first()
            return dict(st.result) if st else None

    @retry_on_conflict
    def trained_weights(self, model_id: int) -> dict[str, float] | None:
        """The domain weights a model was trained with, when lldmix trained it (a target or a pretrained
        base: its finished training stage records them); None for a loaded model."""
        with self.transaction() as s:
            for st in s.scalars(select(S.Stage).where(S.Stage.status == "finished", S.Stage.kind.like("train-%"))):
                if (st.result or {}).get("model_id") == model_id and st.result.get("weights"):
                    return dict(st.result["weights"])
        return None

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
                    s.add(S.Stage(key=key, kind=kind, status="running", owner=owner, heartbeat_at=now(), result={}))
                    return "claimed"  # unless another worker's insert commits first: IntegrityError below
                if st.status == "finished":
                    return "finished"
                if st.owner != owner and not _claim_is_stale(st.owner, st.heartbeat_at, stale_seconds):
                    return "busy"
                res = s.execute(update(S.Stage).where(S.Stage.id == st.id, S.Stage.status == "running",
                                                      same(S.Stage.owner, st.owner))
                                .values(owner=owner, heartbeat_at=now()))
                return "claimed" if res.rowcount == 1 else "busy"
        except IntegrityError:
            return "busy"

    def heartbeat_stage(self, key: str, owner: str) -> None:
        with self.transaction() as s:
            s.execute(update(S.Stage).where(S.Stage.key == key, S.Stage.owner == owner, S.Stage.status == "running")
                      .values(heartbeat_at=now()))

    def release_stage(self, key: str, owner: str) -> None:
        """Give up a claim (the stage failed or was cancelled) so another worker may take it at once."""
        with self.transaction() as s:
            s.execute(delete(S.Stage).where(S.Stage.key == key, S.Stage.owner == owner, S.Stage.status == "running"))
