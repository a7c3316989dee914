"""Fault injection for the crash tests: die with SIGKILL at a named point, as a power cut would, or
fail there as a full disk would.

`LLDMIX_FAULT="<point>:<n>[:<action>]"` acts the n-th time this process reaches
`fault_point("<point>")`; several may be given, comma-separated. Actions: `kill` (SIGKILL, the
default), `enospc` (raise OSError ENOSPC, "No space left on device"), `term` (SIGTERM, as a
supervisor stopping the process would) and `pause` (sleep one second: makes a race certain).
Unset — the normal case — `fault_point` is one dict lookup. Points: `train_step` (after backward,
before the optimizer step), `score_batch` (before each scoring batch), `db_commit` (inside a
writing transaction, its writes sent, before COMMIT), `file_write` (half of a file's bytes written
to its temp name, before fsync and rename), `mlflow_init` (MLflow's SQLite store created and
migrated under its temp name, before the rename into place), `mlflow_write` (before each MLflow
client call that writes), `token_write` (after each document written to a domain's token file, in
the streams' temp folder), `migrate` (a revision's schema changes and version stamp sent, before
its COMMIT), `migrate_sql` (before each SQL statement a migration sends, SQLite or PostgreSQL).
"""

from __future__ import annotations

import errno
import os
import signal
import time

_armed: dict[str, tuple[int, str]] = {}
for _item in filter(None, os.environ.get("LLDMIX_FAULT", "").split(",")):
    _point, _n, _action = (_item.split(":") + ["1", "kill"])[:3]
    _armed[_point.strip()] = (int(_n or 1), _action or "kill")
_seen: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Count a visit to `point`; act when it is the armed visit."""
    if point not in _armed:
        return
    _seen[point] = _seen.get(point, 0) + 1
    n, action = _armed[point]
    if _seen[point] != n:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if action == "pause":
        time.sleep(1.0)
        return
    os.kill(os.getpid(), signal.SIGKILL)
