"""The bad-input catalogue (docs/ERRORS.md) end to end: each bad input through the real CLI gives exit
code 2 and ONE line naming the input, and leaves the database and the files exactly as they were."""

import hashlib
import os
import json
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

GOOD = """name: bad
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target:
  train: {steps: 2, seed: 1, multipliers: {Python: 2.0}}
training: {steps: 2, batch_size: 2, warmup_steps: 1}
methods: [uniform]
kl: {sampled: {n_samples: 16, n_tokens: 32}}
"""


def _spec(**edits) -> str:
    """GOOD with top-level keys replaced (values are YAML text)."""
    lines = GOOD.splitlines()
    out, skip = [], False
    for line in lines:
        key = line.split(":")[0]
        if not line.startswith(" ") and key in edits:
            out.append(f"{key}: {edits.pop(key)}")
            skip = True
            continue
        if skip and line.startswith(" "):
            continue
        skip = False
        out.append(line)
    out += [f"{k}: {v}" for k, v in edits.items()]
    return "\n".join(out) + "\n"


# (case, files to write {name: text or bytes}, CLI args with {home}/{data}, fragment of the message)
SPEC_CASES = [
    ("malformed YAML", "name: s\n  bad: [\n", "not valid YAML"),
    ("unknown key", _spec(training="{steps: 2, stepz: 3}"), "training.stepz"),
    ("τ = 0", _spec(lld="{tau: 0}"), "lld.tau"),
    ("τ < 0 in a sweep", _spec(lld="{tau: [1.0, -2.0]}"), "lld.tau"),
    ("unknown method", _spec(methods="[uniform, magic]"), "methods.1"),
    ("seeds repeated", _spec(seeds="[1, 1]"), "seeds"),
    ("negative multiplier", _spec(target="{train: {steps: 2, multipliers: {Python: -1}}}"), "target.train.multipliers"),
    ("two model sources", _spec(target="{model: m, init: random}"), "target"),
    ("fixed without a recipe", _spec(methods="[fixed]"), "lld.recipe"),
    ("recipe not on the simplex", _spec(methods="[fixed]", lld="{recipe: {Python: 0.7, C++: 0.7}}"), "lld.recipe"),
    ("negative learning rate", _spec(training="{steps: 2, lr: -1}"), "training.lr"),
    ("n_embd not a multiple of n_head", _spec(arch="{n_layer: 1, n_head: 3, n_embd: 16, block_size: 32}"), "arch"),
    ("unknown domain in the target's weights", _spec(target="{train: {steps: 2, multipliers: {Klingon: 2}}}"),
     "unknown domains ['Klingon']"),
    ("recipe domains not the corpus's", _spec(methods="[fixed]", lld="{recipe: {Python: 0.5, Klingon: 0.5}}"),
     "lld.recipe: unknown domains"),
    ("prior domains not the corpus's", _spec(lld="{prior: {Python: 0.5, Vulcan: 0.5}}"), "lld.prior"),
    ("corpus path outside the allowed folders", _spec(corpus="{train: /etc/passwd}"), "outside the allowed folders"),
    ("corpus path escaping with ../", _spec(corpus="{train: ../../outside.jsonl}"), "outside the allowed folders"),
    ("corpus both local and files", _spec(corpus="{local: true, train: data/x.jsonl}"), "not both"),
    ("base model unknown", _spec(base="{model: nobody}"), "model 'nobody' not found"),
    ("distillation with another tokenizer", _spec(target="{model: tiny-gpt2}", methods="[distill-kl]"),
     "same tokenizer"),
    ("target model unknown", _spec(target="{model: ghost}"), "model 'ghost' not found"),
]

OTHER_CASES = [
    ("spec file missing", ["run", "{data}/missing.yaml"], "does not exist"),
    ("corpus line not JSON", ["corpus", "import", "{data}/notjson.jsonl", "--name", "x"], "notjson.jsonl:2"),
    ("corpus not UTF-8", ["corpus", "import", "{data}/latin1.jsonl", "--name", "x"], "invalid UTF-8"),
    ("corpus record without text", ["corpus", "import", "{data}/notext.jsonl", "--name", "x"], "no field 'text'"),
    ("corpus record without domain", ["corpus", "import", "{data}/nodomain.jsonl", "--name", "x"], "no domain field"),
    ("corpus truncated .zst", ["corpus", "import", "{data}/cut.jsonl.zst", "--name", "x"], "truncated"),
    ("corpus file missing", ["corpus", "import", "{data}/nope.jsonl", "--name", "x"], "does not exist"),
    ("corpus: requested domain empty", ["corpus", "import", "{data}/short.jsonl", "--name", "x"], "have no text"),
    ("model folder missing", ["model", "add", "x", "--path", "{data}/no-model"], "does not exist"),
    ("model checkpoint corrupt", ["model", "add", "x", "--kind", "nanogpt", "--path", "{data}/corrupt.pt"], "checksum"),
    ("model name taken", ["model", "init", "tiny", "--tokenizer", "bytes", "--n-layer", "1", "--n-embd", "16",
                          "--block-size", "32", "--seed", "9"], "already taken"),
    ("unknown tokenizer", ["model", "init", "t", "--tokenizer", "klingon"], "unknown tokenizer"),
    ("NaN log-likelihoods", ["score", "--model", "nan-model", "--corpus", "bad-eval"], "NaN"),
    ("score an unknown model", ["score", "--model", "ghost", "--corpus", "bad-eval"], "model 'ghost' not found"),
    ("score an unknown corpus", ["score", "--model", "tiny", "--corpus", "nowhere"], "corpus 'nowhere'"),
    ("recipe unknown", ["recipe", "export", "ghost-recipe"], "ghost-recipe"),
    ("recipe export format unknown", ["recipe", "export", "r1", "--format", "docx"], "docx"),
    ("enqueue an invalid spec", ["enqueue", "{data}/spec-tau0.yaml"], "lld.tau"),
]


def _snapshot(home: Path) -> dict:
    """Logical content of both databases plus every other file's bytes under the home."""
    out = {}
    for db in ("lldmix.db", "mlflow.db"):
        if (home / db).exists():
            con = sqlite3.connect(home / db)
            out[db] = hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
            con.close()
    for p in sorted(home.rglob("*")):
        if p.is_file() and not p.name.startswith(("lldmix.db", "mlflow.db")) and not p.name.endswith(".lock"):
            out[str(p.relative_to(home))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _write_data(data: Path) -> None:
    rec = lambda text, dom="A": json.dumps({"text": text, "meta": {"pile_set_name": dom}})  # noqa: E731
    long = "x" * 400
    data.mkdir()
    (data / "notjson.jsonl").write_text(rec(long) + "\n{oops\n")
    (data / "latin1.jsonl").write_bytes(rec(long).encode()[:-3] + b"\xe9\"}}\n")
    (data / "notext.jsonl").write_text(json.dumps({"txt": long, "meta": {"pile_set_name": "A"}}) + "\n")
    (data / "nodomain.jsonl").write_text(json.dumps({"text": long}) + "\n")
    (data / "short.jsonl").write_text(rec("too short", "B") + "\n")
    import zstandard

    blob = zstandard.ZstdCompressor().compress((rec(long) + "\n").encode() * 50)
    (data / "cut.jsonl.zst").write_bytes(blob[: len(blob) // 2])
    (data / "spec-tau0.yaml").write_text(_spec(lld="{tau: 0}"))


def _setup(home: Path, env: dict) -> None:
    """A database with a corpus (and the spec's prepared mini-Pile), models, a NaN model and a recipe."""
    run_cli("db", "upgrade", env=env)
    run_cli("model", "init", "tiny", "--tokenizer", "bytes", "--n-layer", "1", "--n-embd", "16", "--block-size", "32", env=env)
    run_cli("model", "init", "tiny-gpt2", "--tokenizer", "gpt2", "--n-layer", "1", "--n-embd", "16", "--block-size", "32", env=env)
    script = textwrap.dedent(f"""
        import torch
        from lldmix_core.config import get_settings
        from lldmix_core.db.store import Store
        from lldmix_core.models import load_nanogpt, save_nanogpt
        from lldmix_core.prepare import prepare_corpus
        from lldmix_core.spec import load_spec_text
        from lldmix_core.tokenizers import get_tokenizer
        s = get_settings(); store = Store.open(s.db_url)
        spec = load_spec_text({GOOD!r}, 'good')
        prepare_corpus(store, spec.corpus, s, get_tokenizer('bytes'), 'bad-eval')
        lm = load_nanogpt(store.get_model('tiny').source)
        with torch.no_grad():
            lm.module.lm_head.weight.fill_(float('nan'))
        save_nanogpt(lm, s.home / 'models' / 'nan.pt')
        store.save_recipe(name='r1', method='manual', weights={{'Python': 0.5, 'C++': 0.5}}, provenance={{}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_cli("model", "add", "nan-model", "--kind", "nanogpt", "--path", str(home / "models" / "nan.pt"), env=env)
    good = home / "models" / "nan.pt"
    corrupt = home / "data" / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:-10] + b"0123456789")
    Path(f"{corrupt}.sha256").write_text(Path(f"{good}.sha256").read_text())


def test_bad_inputs_exit_2_one_line_and_change_nothing(home):
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    data = home / "data"
    _write_data(data)
    _setup(home, env)
    cases = []
    for i, (name, text, fragment) in enumerate(SPEC_CASES):
        path = data / f"spec{i}.yaml"
        path.write_text(text)
        cases.append((f"spec: {name}", ["run", str(path), "--no-mlflow"], fragment))
    cases += [(name, [a.format(home=home, data=data) for a in args], fragment) for name, args, fragment in OTHER_CASES]
    before = _snapshot(home)
    failures = []

    def check(case):
        name, args, fragment = case
        proc = run_cli(*args, env=env, check=False)
        lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        ok = proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
        return None if ok else f"{name}: exit {proc.returncode}, stderr {proc.stderr.strip()[-600:]!r}"

    # three at a time (most of each case is the interpreter starting); nothing may change the home
    with ThreadPoolExecutor(max_workers=3) as pool:
        failures = [f for f in pool.map(check, cases) if f]
    if _snapshot(home) != before:  # something wrote: find which case, one at a time
        for case in cases:
            check(case)
            after = _snapshot(home)
            if after != before:
                changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
                failures.append(f"{case[0]}: changed {changed[:5]}")
                before = after  # judge the next case on its own
        failures.append("the home changed during the concurrent pass (cases above say which, if they repeat it)")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 25
