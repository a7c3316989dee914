"""The CLI's last line of defence: every exception that reaches the top becomes ONE line on stderr.

Known families (database unreachable, locked, read-only or corrupt; out of memory; invalid optimiser
settings; validation errors from CLI options; permissions; full disks) get a message that names the
input and exit code 2. Anything else is a bug: one line naming the exception and the file where the
full traceback was saved, exit code 1.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import traceback
from pathlib import Path

from lldmix_core.errors import UserError


# spec fields whose CLI option has another name
CLI_OPTION_NAMES = {"eval_per_domain": "per-domain", "eval_seed": "seed"}


def known_error(e: BaseException) -> UserError | None:
    """The one-line UserError for a known exception family, or None."""
    if isinstance(e, UserError):
        return e
    name = type(e).__name__
    module = type(e).__module__ or ""
    text = " ".join(str(e).split())
    if module.startswith("pydantic") and name == "ValidationError":
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        got = first.get("input")
        got = "" if isinstance(got, dict) else f" (got {got!r})"
        option = CLI_OPTION_NAMES.get(field, field.replace("_", "-"))
        where = f"{field} (option --{option}): " if field else ""
        return UserError(f"invalid value: {where}{first['msg'].removeprefix('Value error, ')}{got}")
    if module.startswith("sqlalchemy"):
        return _database_error(e, text)
    if module.startswith("sqlite3"):
        return _database_error(e, text)
    if module.startswith("alembic") and name == "CommandError":
        return UserError(f"database migration: {text}")
    if isinstance(e, MemoryError) or "out of memory" in text.lower() or name == "OutOfMemoryError":
        return UserError("out of memory: the model or batch is too large for this machine "
                         "(lower arch sizes, block_size or training.batch_size)")
    if isinstance(e, ValueError) and text.startswith("Invalid ") and "parameter" in text:
        return UserError(f"invalid optimiser setting: {text}")
    if isinstance(e, OverflowError):
        return UserError(f"a number is too large: {text}")
    if isinstance(e, PermissionError):
        return UserError(f"permission denied: {e.filename or text} (the home or database is read-only?)")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"no space left on the device writing {e.filename or 'a file'}")
    if module.startswith("mlflow") and "database or disk is full" in text.lower():  # outside the tracker's guard
        return UserError("could not write to the MLflow store: no space left on the device (nothing was changed "
                         "by that write; free space, then rerun to resume)")
    if isinstance(e, OSError) and e.errno == errno.EROFS:
        return UserError(f"read-only file system: {e.filename or text}")
    if isinstance(e, OSError) and e.errno is None and text:  # a library's own message (e.g. a model folder)
        return UserError(text)
    if isinstance(e, (NotADirectoryError, IsADirectoryError)):
        return UserError(f"{e.filename}: {e.strerror}")
    return None


def _database_error(e: BaseException, text: str) -> UserError:
    low = text.lower()
    where = _redacted_url(e)
    if "database or disk is full" in low:
        return UserError(f"could not write to the database {where}: no space left on the device (the transaction "
                         "was rolled back: nothing was changed)")
    if "database is locked" in low or "could not obtain lock" in low:
        return UserError(f"database {where} is locked by another process (retry when it finishes)")
    if "readonly" in low or "read-only" in low or "attempt to write a readonly database" in low:
        return UserError(f"database {where} is read-only: make the file and its folder writable")
    if "malformed" in low or "not a database" in low or "file is encrypted" in low or "disk i/o error" in low:
        return UserError(f"database {where} is corrupt ({_short(text)}): restore it from a backup or move it "
                         "away and run `lldmix db upgrade`")
    if "unable to open database" in low:
        return UserError(f"database {where} cannot be opened: its folder must exist and be writable")
    if "connection" in low or "could not translate host" in low or "timeout" in low or "refused" in low:
        return UserError(f"database {where} is unreachable ({_short(text)})")
    return UserError(f"database error ({_short(text)})")


def _short(text: str, n: int = 160) -> str:
    text = text.split("[SQL:")[0].split("(Background on this error")[0].strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def _redacted_url(e: BaseException) -> str:
    try:
        from lldmix_core.config import get_settings
        from lldmix_core.db.engine import redact

        return redact(get_settings().db_url)
    except Exception:  # noqa: BLE001 - best effort, for a message only
        return "(LLDMIX_DB_URL)"


def save_trace(e: BaseException) -> Path:
    """Write the full traceback to a file in the temp folder (the home stays untouched); its path."""
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in (Path(tempfile.gettempdir()), Path.cwd()):
        try:
            path = folder / f"lldmix-trace-{stamp}-{os.getpid()}.txt"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(trace not saved)")

