"""A pytest plugin that fails the run when a test was skipped for a reason not on the allow-list.

The allow-list (tests/skip_allowlist.txt, or the file named by LLDMIX_SKIP_ALLOWLIST) holds one entry
a line: `[local] REASON-SUBSTRING  # why this skip is acceptable`. A skip is allowed when its reason
contains an entry's substring; entries marked `local` are allowed only outside CI (CI not "true"), so a
CI run cannot pass with PostgreSQL or the browser silently missing. xfails are not skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).with_name("skip_allowlist.txt")


def load_allowlist(path: Path, in_ci: bool) -> list[str]:
    """Reason substrings allowed to skip in this environment."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        local = line.startswith("local ")
        if local:
            line = line[len("local "):].strip()
        if local and in_ci:
            continue
        out.append(line)
    return out


def _reason(report) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


_skips: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _reason(report)))


def _unlisted() -> list[tuple[str, str]]:
    path = Path(os.environ.get("LLDMIX_SKIP_ALLOWLIST") or DEFAULT_LIST)
    allowed = load_allowlist(path, os.environ.get("CI", "").lower() == "true")
    return [(n, r) for n, r in _skips if not any(a in r for a in allowed)]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _unlisted() and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    bad = _unlisted()
    if bad:
        terminalreporter.section("skips not on the allow-list (tests/skip_allowlist.txt)", red=True)
        for nodeid, reason in bad:
            terminalreporter.line(f"UNLISTED SKIP {nodeid}: {reason}", red=True)
        terminalreporter.line(f"skip guard: {len(bad)} unlisted skip(s): the run fails", red=True)
