"""Helpers shared by the store's table groups: the retry-on-conflict decorator for idempotent writes,
the loglik-blob checksum, the ORM-row-to-dataclass copy and the NULL-aware equality used in keys.

Every group receives a `transaction` callable (the facade's `Store.transaction`): calling it yields
a `Session` inside one all-or-nothing transaction. That is the whole contract between a group and
the facade."""

from __future__ import annotations

import functools
import hashlib
import random
import time
from dataclasses import fields
from datetime import datetime
from typing import Callable, ContextManager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lldmix_core.db import schema as S

Transaction = Callable[[], ContextManager[Session]]


def retry_on_conflict(method):
    """Re-run an idempotent write when a concurrent writer inserted the same unique key first
    (PostgreSQL raises IntegrityError at commit; the retry finds that row and updates it)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        for attempt in range(6):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == 5:
                    raise
                # jittered back-off: writers that collided once must not collide again in lockstep
                time.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))

    return wrapper


def blob_checksum(logliks: bytes, n_tokens: bytes) -> str:
    """sha256 (hex) of a loglik vector's two blobs, as stored in `loglik_vectors.checksum`."""
    return hashlib.sha256(logliks + n_tokens).hexdigest()


def to_row(cls, orm_row):
    """The frozen dataclass `cls` filled from the same-named attributes of an ORM row."""
    return cls(**{f.name: getattr(orm_row, f.name) for f in fields(cls)})


def same(col, v):
    """`col = v`, or `col IS NULL` when v is None (SQL's `= NULL` is never true)."""
    return col.is_(None) if v is None else col == v


def now() -> datetime:
    return S.utcnow()
