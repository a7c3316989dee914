"""Packaging promises: the Dockerfile installs through the README's script; the README opens with the
two commands and CI runs the test one; paths from users stay inside the allowed folders."""

import re
from pathlib import Path

import pytest

from lldmix_core.config import confine_path, get_settings
from lldmix_core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_installs_with_the_setup_script_as_non_root():
    ins = _instructions((ROOT / "Dockerfile").read_text())
    ops = [op for op, _ in ins]
    assert ops[0] == "FROM"
    runs = [rest for op, rest in ins if op == "RUN"]
    assert any(r.startswith("scripts/setup.sh") for r in runs), "the image must install through scripts/setup.sh"
    user_at = ops.index("USER")
    setup_at = next(i for i, (op, rest) in enumerate(ins) if op == "RUN" and rest.startswith("scripts/setup.sh"))
    assert user_at < setup_at and dict(ins)["USER"] != "root"
    assert "/_stcore/health" in dict(ins)["HEALTHCHECK"]
    assert "--host 0.0.0.0" in dict(ins)["CMD"] and "8501" in dict(ins)["CMD"]
    assert "LLDMIX_HOME=/data" in dict(ins)["ENV"] and "/data" in dict(ins)["VOLUME"]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert main_job.startswith("scripts/setup.sh") and "lldmix run runs/quickstart.yaml" in main_job
    assert tests == "scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert readme.index(main_job) < readme.index("**lldmix**")  # the commands come first


def test_paths_are_confined_to_the_allowed_roots(home, tmp_path, monkeypatch):
    s = get_settings()
    assert confine_path("corpora/x.jsonl", s) == (home / "corpora" / "x.jsonl").resolve()
    for bad in ["../outside.jsonl", "/etc/passwd", "corpora/../../x", str(tmp_path / "elsewhere")]:
        with pytest.raises(UserError, match="outside the allowed folders"):
            confine_path(bad, s, "corpus.train")
    monkeypatch.setenv("LLDMIX_CORPUS_ROOTS", str(tmp_path))
    assert confine_path(str(tmp_path / "elsewhere"), get_settings()) == (tmp_path / "elsewhere").resolve()
    (home / "link").symlink_to("/etc")
    with pytest.raises(UserError):  # a symlink out of the home is resolved, then refused
        confine_path("link/passwd", get_settings())


def test_the_dashboards_imports_do_not_pull_in_torch():
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, 'app'); import ui_data, ui_charts, ui_worker; "
            "import lldmix_core.recipes, lldmix_core.spec, lldmix_core.mathcore, lldmix_core.db.store, lldmix_core.oneshot; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
