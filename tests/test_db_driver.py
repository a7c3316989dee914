"""A PostgreSQL URL without the driver installed is one line naming the extra (issue 24, item 5)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_missing_psycopg_is_one_line_naming_the_extra(tmp_path):
    # a `psycopg` package that fails as an absent one does, shadowing the installed driver
    fake = tmp_path / "site" / "psycopg"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)]),
           "LLDMIX_HOME": str(tmp_path / "home"), "LLDMIX_DB_URL": "postgresql://u:secret@127.0.0.1:1/x"}
    for args in (["db", "current"], ["model", "list"]):
        proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, lines
        assert "needs the PostgreSQL driver psycopg" in lines[0] and ".[postgres]" in lines[0]
        assert "secret" not in lines[0]  # the password stays out of the message
