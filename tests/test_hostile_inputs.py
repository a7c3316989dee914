"""Hostile or unlucky inputs (issue 16), each through the real CLI on a fresh home: exit code 2 (or the
documented code), ONE line on stderr naming the input, and both databases and every file in the home
(and the folders the case points at) byte-for-byte unchanged. docs/ERRORS.md lists each case by the
id used here. The catalogue of ordinary bad inputs is tests/test_bad_inputs.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

GOOD = """name: probe
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target:
  train: {steps: 2, seed: 1, multipliers: {Python: 2.0}}
training: {steps: 2, batch_size: 2, warmup_steps: 1}
methods: [uniform]
"""


def _cli(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "lldmix_core.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def snapshot(*roots: Path) -> dict[str, tuple[str, str]]:
    """path -> (kind, sha256 or link target) for everything under `roots` (not following symlinks).

    SQLite's `-shm` (a shared-memory index any reader of a WAL database may create) and an empty
    `-wal` hold no data: they are left out, so "unchanged" means every byte of data."""
    out = {}
    for root in roots:
        if not root.exists() and not root.is_symlink():
            out[str(root)] = ("absent", "")
            continue
        for p in sorted([root, *root.rglob("*")]) if root.is_dir() and not root.is_symlink() else [root]:
            st = p.lstat()
            if p.name.endswith("-shm") or (p.name.endswith("-wal") and st.st_size == 0):
                continue
            if stat.S_ISLNK(st.st_mode):
                out[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                out[str(p)] = ("dir", "")
            else:
                out[str(p)] = ("special", str(stat.S_IFMT(st.st_mode)))
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated home with one recipe and one earlier spec run named `hostile` (another content)."""
    h = tmp_path_factory.mktemp("tpl") / "home"
    h.mkdir()
    env = {**os.environ, "LLDMIX_HOME": str(h), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    assert _cli(["db", "upgrade"], env).returncode == 0
    code = ("from lldmix_core.db.store import Store\n"
            "s = Store.open()\n"
            "s.save_recipe(name='r1', method='aggregated-lld', weights={'Python': 0.5, 'C++': 0.5}, provenance={})\n"
            "s.start_run(key='k-old', name='hostile', spec_hash='0' * 64, method='spec')\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, check=True)
    return h


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# Each case: (id, prepare(home, work) -> (args, extra env, extra roots to hash), fragment, exit code)
def _run_spec(text, **env):
    def prep(home, work):
        return ["run", str(_write(work / "spec.yaml", text))], env, []
    return prep


def _args(*args, **env):
    def prep(home, work):
        return [a.format(home=home, work=work) for a in args], {k: v.format(home=home, work=work) for k, v in env.items()}, []
    return prep


def _seed_too_big():
    return _run_spec(GOOD.replace("seeds: [0]", f"seeds: [{2**63}]"))


def _truncated(home, work):
    db = home / "lldmix.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    return ["recipe", "list"], {}, []


def _index_page_garbage(home, work):
    db = home / "lldmix.db"
    con = sqlite3.connect(db)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE type='index' AND tbl_name='recipes'").fetchone()[0]
    con.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes(range(256)) * (page_size // 256))
    return ["run", str(_write(work / "spec.yaml", GOOD))], {}, []


def _recipe_bit_flip(home, work):
    con = sqlite3.connect(home / "lldmix.db")
    con.execute("""UPDATE recipes SET weights = '{"Python": 0.25, "C++": 0.75}' WHERE name = 'r1'""")
    con.commit()
    con.close()
    return ["recipe", "export", "r1"], {}, []


def _export_symlink(home, work):
    target = _write(work / "precious.txt", "keep me\n")
    (work / "link.json").symlink_to(target)
    return ["recipe", "export", "r1", "--out", str(work / "link.json")], {}, [work]


def _export_fifo(home, work):
    work.mkdir(parents=True, exist_ok=True)
    os.mkfifo(work / "pipe")
    return ["recipe", "export", "r1", "--out", str(work / "pipe")], {}, [work]


def _export_folder(home, work):
    (work / "outdir").mkdir(parents=True)
    return ["recipe", "export", "r1", "--out", str(work / "outdir") + "/"], {}, [work]


def _corpus_symlink(home, work):
    outside = _write(work / "outside" / "secret.jsonl", '{"text": "' + "s" * 400 + '", "meta": {"pile_set_name": "X"}}\n')
    folder = home / "data" / "corp"
    _write(folder / "real.jsonl", '{"text": "' + "r" * 400 + '", "meta": {"pile_set_name": "Y"}}\n')
    (folder / "leak.jsonl").symlink_to(outside)
    spec = GOOD.replace("corpus: {local: true, eval_per_domain: 2}", "corpus: {train: data/corp, eval_per_domain: 1}")
    spec = spec.replace("multipliers: {Python: 2.0}", "multipliers: {Y: 2.0}")
    return ["run", str(_write(work / "spec.yaml", spec))], {}, [work]


def _home_is_file(home, work):
    f = _write(work / "afile", "x")
    return ["model", "list"], {"LLDMIX_HOME": str(f)}, [work]


def _hf_no_weights(home, work):
    _write(work / "hf" / "config.json", '{"model_type": "gpt2"}')
    return ["model", "add", "m", "--path", str(work / "hf"), "--kind", "hf"], {}, [work]


def _readonly_db(home, work):
    # root ignores file modes, so the database is opened read-only through SQLite itself
    return ["run", str(_write(work / "spec.yaml", GOOD)), "--no-mlflow"], \
        {"LLDMIX_DB_URL": f"sqlite:///file:{home / 'lldmix.db'}?mode=ro&uri=true"}, []


def _missing_sqlite_folder(home, work):
    return ["db", "upgrade"], {"LLDMIX_DB_URL": f"sqlite:///{work}/nonexistent/dir/x.db"}, [work / "nonexistent"]


CASES = [
    ("seed-2^63", _seed_too_big(), "seeds.0", 2),
    ("betas-out-of-range", _run_spec(GOOD.replace("warmup_steps: 1}", "warmup_steps: 1, betas: [2, -1]}")),
     "training.betas", 2),
    ("block-size-2e9", _run_spec(GOOD.replace("block_size: 32", "block_size: 2000000000")), "arch.block_size", 2),
    ("steps-1e12", _run_spec(GOOD.replace("training: {steps: 2,", "training: {steps: 1000000000000,")),
     "training.steps", 2),
    ("plan-terabytes", _run_spec(GOOD.replace("n_embd: 16", "n_embd: 900000")), "TB", 2),
    ("duplicate-yaml-key", _run_spec(GOOD + "methods: [uniform]\n"), "given twice", 2),
    ("eval-steps-outside", _run_spec(GOOD + "eval_steps: [0, 5]\n"), "eval_steps", 2),
    ("description-huge", _run_spec(GOOD + "description: " + "x" * 2_000_000 + "\n"), "description", 2),
    ("spec-name-reused", _run_spec(GOOD.replace("name: probe", "name: hostile")), "already used by a different spec", 2),
    ("corpus-symlink-outside", _corpus_symlink, "outside the corpus folder", 2),
    ("mlflow-unreachable", _run_spec(GOOD), "MLflow tracking server", 2),
    ("per-domain-0", _args("corpus", "build-local", "--per-domain", "0"), "--per-domain", 2),
    ("n-head-3-n-embd-32", _args("model", "init", "m", "--n-head", "3", "--n-embd", "32"), "multiple of n_head", 2),
    ("port-99999", _args("app", "--port", "99999"), "--port 99999", 2),
    ("db-upgrade-bad-revision", _args("db", "upgrade", "nosuchrev"), "nosuchrev", 2),
    ("hf-config-no-weights", _hf_no_weights, "hf", 2),
    ("postgres-unreachable", _args("model", "list", LLDMIX_DB_URL="postgresql://u:secret@127.0.0.1:1/x"),
     "unreachable", 2),
    ("home-is-a-file", _home_is_file, "is not a folder", 2),
    ("db-read-only", _readonly_db, "read-only", 2),
    ("sqlite-folder-missing", _missing_sqlite_folder, "does not exist", 2),
    ("db-truncated", _truncated, "corrupt", 2),
    ("db-index-page-garbage", _index_page_garbage, "corrupt", 2),
    ("recipe-bit-flip", _recipe_bit_flip, "fails its checksum", 2),
    ("export-over-symlink", _export_symlink, "symlink", 2),
    ("export-over-fifo", _export_fifo, "not a regular file", 2),
    ("export-to-folder", _export_folder, "is a folder", 2),
]
_ENV = {"mlflow-unreachable": {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}}


@pytest.mark.parametrize("case,prepare,fragment,code", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(case, prepare, fragment, code, template, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(template, home, symlinks=True)
    work = tmp_path / "work"
    work.mkdir()
    args, extra_env, extra_roots = prepare(home, work)
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": "",
           "PYTHONPATH": str(ROOT), **_ENV.get(case, {}), **extra_env}
    before = snapshot(home, *extra_roots)
    proc = _cli(args, env)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == code, (case, proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, proc.stderr[-3000:])
    assert fragment in lines[0], (case, lines[0])
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(home, *extra_roots) == before, case


def test_nonexistent_root_folder_never_created(template, tmp_path):
    """`sqlite:////nonexistent/dir/x.db` is refused and /nonexistent is not created."""
    assert not Path("/nonexistent").exists()
    env = {**os.environ, "LLDMIX_HOME": str(tmp_path / "h"), "LLDMIX_DB_URL": "sqlite:////nonexistent/dir/x.db"}
    proc = _cli(["db", "upgrade"], env)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not Path("/nonexistent").exists()


def test_limits_can_be_waived_for_a_dry_run(template, tmp_path):
    """--yes-i-mean-it passes the plausibility limits (a dry run then prints the plan)."""
    spec = _write(tmp_path / "spec.yaml", GOOD.replace("training: {steps: 2,", "training: {steps: 20000000,"))
    env = {**os.environ, "LLDMIX_HOME": str(tmp_path / "h"), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    assert _cli(["run", str(spec), "--dry-run"], env).returncode == 2
    proc = _cli(["run", str(spec), "--dry-run", "--yes-i-mean-it"], env)
    assert proc.returncode == 0, proc.stderr


def test_unexpected_error_is_one_line_with_a_saved_trace(tmp_path, monkeypatch, capsys):
    """A bug prints one line naming the exception and the file holding the full traceback; exit 1."""
    from lldmix_core import cli

    def boom(*a, **k):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError" in err[0] and "full trace in" in err[0]
    trace = Path(err[0].rsplit("full trace in ", 1)[1].rstrip(")"))
    assert "something nobody expected" in trace.read_text() and "Traceback" in trace.read_text()


@pytest.mark.parametrize("exc,fragment", [
    ("sqlite3.OperationalError('database is locked')", "locked"),
    ("sqlite3.OperationalError('attempt to write a readonly database')", "read-only"),
    ("sqlite3.DatabaseError('database disk image is malformed')", "corrupt"),
    ("MemoryError()", "out of memory"),
    ("RuntimeError('CUDA out of memory. Tried to allocate 2 GiB')", "out of memory"),
    ("ValueError('Invalid beta parameter at index 0: 2.0')", "optimiser"),
    ("PermissionError(13, 'Permission denied', '/home/x/.lldmix/lldmix.db')", "permission denied"),
    ("OSError(30, 'Read-only file system', '/ro/home')", "read-only file system"),
    ("OverflowError('Python int too large to convert to C long')", "too large"),
])
def test_known_exception_families_map_to_one_line(exc, fragment):
    """The top-level handler's families, each to a one-line UserError (exit 2)."""
    import sqlite3  # noqa: F401 - used by eval

    from lldmix_core.cli_errors import known_error

    err = known_error(eval(exc))
    assert err is not None and fragment in str(err) and "\n" not in str(err) and err.exit_code == 2


def test_metric_keys_and_artifact_folders_are_safe(tmp_path):
    """Domain names and experiment names are data: keys MLflow accepts, folders inside the root."""
    from mlflow.utils.validation import _validate_metric_name

    from lldmix_core.tracking import experiment_artifact_dir, metric_key

    names = ["a/../b", "x y", "C++", "C__", "日本", "..", "/abs", "a//b", "."]
    keys = [metric_key(f"kl/{n}") for n in names]
    assert len(set(keys)) == len(keys)  # distinct domains never share a key
    for k in keys:
        _validate_metric_name(k)
        assert ".." not in k.split("/") and "" not in k.split("/")
    assert metric_key("train_loss") == "train_loss" and metric_key("kl/x y") == "kl/x y"
    root = tmp_path / "mlartifacts"
    for name in ["../../escape", "/etc", "..", "a/../../b", "日本"]:
        assert experiment_artifact_dir(root, name).parent == root.resolve()
