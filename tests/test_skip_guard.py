"""The skip guard (tests/skip_guard.py) fails a pytest run on a skip that is not on the allow-list,
passes one whose skips are all listed, and drops `local` entries under CI=true. Each case is a real
pytest run in a subprocess on a tiny test file in a temporary folder."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TINY = """
import pytest

def test_ok():
    assert 1 + 1 == 2

def test_skipped():
    pytest.skip("{reason}")
"""


def _run(tmp_path: Path, reason: str, allowlist: str, ci: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "test_tiny.py").write_text(TINY.format(reason=reason))
    (tmp_path / "allow.txt").write_text(allowlist)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "LLDMIX_SKIP_ALLOWLIST": str(tmp_path / "allow.txt"), "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "skip_guard", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_tiny.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_an_unlisted_skip_fails_the_run(tmp_path):
    proc = _run(tmp_path, "the moon is full", "something else  # unrelated\n")
    assert proc.returncode == 1, proc.stdout
    assert "UNLISTED SKIP test_tiny.py::test_skipped: the moon is full" in proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout


def test_a_listed_skip_passes(tmp_path):
    proc = _run(tmp_path, "the moon is full", "# comment line\nmoon is full  # reason for allowing it\n")
    assert proc.returncode == 0, proc.stdout
    assert "UNLISTED" not in proc.stdout


def test_a_local_entry_does_not_cover_ci(tmp_path):
    allow = "local moon is full  # only on developers' machines\n"
    assert _run(tmp_path, "the moon is full", allow, ci="").returncode == 0
    proc = _run(tmp_path, "the moon is full", allow, ci="true")
    assert proc.returncode == 1, proc.stdout
    assert "UNLISTED SKIP" in proc.stdout


def test_the_repository_allowlist_gives_a_reason_for_every_entry():
    for line in (TESTS / "skip_allowlist.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            entry, _, why = line.partition("#")
            assert entry.strip() and len(why.strip()) > 10, line
