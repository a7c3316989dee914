"""One worker per stage: the engine claims a stage in the database before computing it (see
Store.claim_stage), waits while another worker holds it, and heartbeats while it works."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from typing import Callable

from lldmix_core.db.store import Store
from lldmix_core.outcomes import Cancelled


def worker_name() -> str:
    """host:pid — how a claim names its owner (a dead pid on this host means a stale claim)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StageClaims:
    """The engine's claims on stages: `exclusive` computes a stage at most once across workers,
    `heartbeat` keeps a long claim alive. Needs the store, a log function and the stop check."""

    def __init__(self, store: Store, log: Callable[[str], None], should_stop: Callable[[], bool] | None = None):
        self.store, self.log, self.should_stop = store, log, should_stop
        self._beats: dict[str, float] = {}  # stage key -> last heartbeat (monotonic seconds)

    @contextmanager
    def exclusive(self, key: str, kind: str):
        """Compute a stage at most once across workers. Yields True when this worker holds the claim
        (it must end with `store.finish_stage(key, …)`), False when another worker finished the stage
        while this one waited. A failure or cancellation gives the claim back."""
        me = worker_name()
        waiting_since = None
        while True:
            state = self.store.claim_stage(key, kind=kind, owner=me)
            if state != "busy":
                break
            if waiting_since is None:
                waiting_since = time.monotonic()
                self.log(f"waiting: another worker is computing stage {key[:8]} ({kind})")
            if self.should_stop is not None and self.should_stop():
                raise Cancelled(f"stopped while waiting for stage {key[:8]}")
            time.sleep(1.0)
        if state == "finished":
            yield False
            return
        self._beats[key] = time.monotonic()
        try:
            yield True
        except BaseException:
            self.store.release_stage(key, me)
            raise
        finally:
            self._beats.pop(key, None)

    def heartbeat(self, key: str, every_seconds: float = 30.0) -> None:
        last = self._beats.get(key)
        if last is not None and time.monotonic() - last >= every_seconds:
            self.store.heartbeat_stage(key, worker_name())
            self._beats[key] = time.monotonic()
