"""The frozen default corpus (lldmix_core/data/minipile-v1): pinned hash, manifest invariants, the
seeded sampler, and regeneration from the pinned sources — in this venv and in a runtime-only view
of it that hides the test extras."""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
import zstandard
from packaging.utils import canonicalize_name

from lldmix_core.corpus import local
from lldmix_core.corpus.eval import build_eval_corpus
from lldmix_core.corpus.minipile_build import RECIPE, split_pool
from lldmix_core.corpus.minipile_sources import Candidate, runtime_closure
from lldmix_core.corpus.records import iter_records
from lldmix_core.errors import UserError

from conftest import ROOT, run_cli

# Pinned by hand: if the frozen files change, this fails. A new corpus is a new version (minipile-v2).
FROZEN_SHA256 = "98b23dae8d45cfc4caa2307c8fece8aee25eb4902ff1bc129f2f6c5852592e9a"
TEST_ONLY = {"pytest", "hypothesis", "playwright", "psycopg", "psycopg-binary", "lm-eval", "pip"}


def _decompressed(split: str) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress((local.FROZEN_DIR / f"{split}.jsonl.zst").read_bytes())


def test_frozen_files_have_the_pinned_hash():
    train, evals = _decompressed("train"), _decompressed("eval")
    h = hashlib.sha256(b"train\0" + train + b"\0" + b"eval\0" + evals + b"\0").hexdigest()
    assert h == FROZEN_SHA256 == local.FROZEN_CONTENT_HASH
    m = local.frozen_manifest()
    assert m["content_hash"] == FROZEN_SHA256
    assert m["files"]["train.jsonl.zst"]["sha256_uncompressed"] == hashlib.sha256(train).hexdigest()
    assert m["files"]["eval.jsonl.zst"]["sha256_uncompressed"] == hashlib.sha256(evals).hexdigest()
    assert local.frozen_paths() == (local.FROZEN_DIR / "train.jsonl.zst", local.FROZEN_DIR / "eval.jsonl.zst")


def test_manifest_describes_every_document_and_splits_are_disjoint():
    m = local.frozen_manifest()
    docs = m["documents"]
    records = [("train", d, t) for d, t in iter_records(local.FROZEN_DIR / "train.jsonl.zst")]
    records += [("eval", d, t) for d, t in iter_records(local.FROZEN_DIR / "eval.jsonl.zst")]
    assert len(records) == len(docs)
    for (split, domain, text), doc in zip(records, sorted(docs, key=lambda d: d["split"] != "train")):
        assert (doc["split"], doc["domain"]) == (split, domain)
        assert doc["sha256"] == hashlib.sha256(text.encode()).hexdigest() and doc["bytes"] == len(text.encode())
        assert doc["bytes"] <= RECIPE["max_doc_bytes"] and doc["bytes"] >= 150
        assert doc["licence"] and doc["path"] and doc["version"] == m["sources"][doc["package"]]
    sources = {s: {(d["package"], d["path"]) for d in docs if d["split"] == s} for s in ("train", "eval")}
    assert not sources["train"] & sources["eval"], "a source document is in both splits"
    assert len(sources["train"]) + len(sources["eval"]) == len(docs)  # no document twice
    assert len(m["domains"]) >= 8
    for domain, info in m["domains"].items():
        n = sum(d["domain"] == domain for d in docs)
        assert n == info["train_docs"] + info["eval_docs"] and info["train_docs"] > 0 and info["eval_docs"] > 0
        assert n >= 100 or ("note" in info and info["pool"] == n), domain
    assert not TEST_ONLY & set(m["sources"]), "a test extra became a corpus source"
    assert m["python"] == m["sources"]["python-stdlib"] and "not the Pile" in m["what"]


def _pool(n: int) -> list[Candidate]:
    return [Candidate("D", "pkg", "1", f"file{i:04d}.py", "MIT", f"text {i}") for i in range(n)]


def test_sampler_draws_over_the_whole_pool_independent_of_listing_order():
    pool = _pool(1000)
    parts = split_pool(pool)
    shuffled = pool[:]
    random.Random(3).shuffle(shuffled)
    assert split_pool(shuffled) == parts  # the order the pool was listed in does not matter
    picked = [int(c.path[4:8]) for c in parts["eval"] + parts["train"]]
    assert len(parts["eval"]) == RECIPE["eval_docs"] and len(parts["train"]) == RECIPE["train_docs"]
    assert not {c.path for c in parts["eval"]} & {c.path for c in parts["train"]}
    # a uniform sample of 160 from 0..999: mean 499.5 ± 23 (sd/√n); alphabetical would give 79.5
    assert abs(sum(picked) / len(picked) - 499.5) < 4 * 289 / len(picked) ** 0.5
    assert max(picked) > 900 and min(picked) < 100
    small = split_pool(_pool(60))
    assert len(small["eval"]) == 15 and len(small["train"]) == 45  # a quarter of a small pool for evaluation


def test_local_spec_uses_the_frozen_files_and_its_hash_enters_the_corpus_key(store):
    from lldmix_core.config import get_settings
    from lldmix_core.prepare import prepare_eval_corpus
    from lldmix_core.spec import CorpusSpec

    info = prepare_eval_corpus(store, CorpusSpec(local=True, eval_per_domain=4), get_settings(), "mp")
    assert info.settings["minipile_sha256"] == FROZEN_SHA256 and "minipile-v1" in info.source
    assert len(info.domains) == len(local.frozen_manifest()["domains"]) and info.n_texts == 4 * len(info.domains)
    recs = list(iter_records(local.FROZEN_DIR / "eval.jsonl.zst"))
    plain = build_eval_corpus(iter(recs), per_domain=4, name="x", source="x")
    keyed = build_eval_corpus(iter(recs), per_domain=4, name="x", source="x",
                              identity={"minipile": "minipile-v1", "minipile_sha256": FROZEN_SHA256})
    assert plain.texts == keyed.texts and keyed.content_hash == info.content_hash != plain.content_hash


def test_altered_frozen_files_are_refused(tmp_path, monkeypatch):
    copy = tmp_path / "minipile-v1"
    shutil.copytree(local.FROZEN_DIR, copy)
    data = bytearray(_decompressed("train"))
    data[100:101] = b"#" if data[100:101] != b"#" else b"$"
    (copy / "train.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(bytes(data)))
    monkeypatch.setattr(local, "FROZEN_DIR", copy)
    monkeypatch.setattr(local, "_verified", set())
    with pytest.raises(UserError, match="altered"):
        local.frozen_paths()


def _skip_unless_pinned_sources():
    m = local.frozen_manifest()
    if sys.version.split()[0] != m["python"]:
        pytest.skip(f"the frozen corpus was built from Python {m['python']}'s stdlib; this is {sys.version.split()[0]}")


@pytest.mark.slow  # about 15 s: reads every candidate file of the pinned sources
def test_regeneration_in_this_venv_matches_the_frozen_hash():
    _skip_unless_pinned_sources()
    r = local.regenerate()
    assert r.matches, r.differences
    assert r.manifest["documents"] == local.frozen_manifest()["documents"]


def _runtime_view(folder: Path) -> Path:
    """A folder of symlinks to this venv's site-packages entries minus every distribution outside
    lldmix's runtime closure (test extras, pip, …): the runtime venv, as sys.path sees it."""
    keep = runtime_closure() | {"lldmix"}
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for f in dist.files or []:
            top = str(f).split("/")[0]
            if top not in ("..", "") and not top.endswith(".pth"):
                owners.setdefault(top, set()).add(name)
    # the venv's site-packages itself: the first distribution found may be the repo's own
    # lldmix.egg-info (an editable install puts it in the repo root, which is on sys.path)
    site = Path(sysconfig.get_paths()["purelib"])
    hidden = {top for top, names in owners.items() if not names & keep}
    assert any(t.startswith(("pytest", "_pytest", "hypothesis", "playwright")) for t in hidden)
    folder.mkdir()
    for entry in site.iterdir():
        if entry.name not in hidden and not entry.name.endswith(".pth"):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow  # about 20 s
def test_regeneration_without_the_test_extras_gives_the_same_hash(tmp_path):
    _skip_unless_pinned_sources()
    view = _runtime_view(tmp_path / "site")
    code = ("import sys; from lldmix_core.corpus import local; import importlib.util as u;"
            "assert u.find_spec('pytest') is None and u.find_spec('hypothesis') is None, 'test extras visible';"
            "r = local.regenerate(constraints=sys.argv[1]); print(r.content_hash)")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{view}"}
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(ROOT / "constraints.txt")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == FROZEN_SHA256


@pytest.mark.slow  # about 15 s
def test_cli_regenerate_reports_a_mismatch_with_exit_1(tmp_path, home):
    _skip_unless_pinned_sources()
    pins = (ROOT / "constraints.txt").read_text().replace("sympy==", "sympy==0.0.1.dev0+was")
    (tmp_path / "c.txt").write_text(pins)
    proc = run_cli("corpus", "build-local", "--regenerate", "--constraints", str(tmp_path / "c.txt"), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does NOT match" in proc.stdout and "source sympy: here absent" in proc.stdout


def test_readme_bodies_do_not_depend_on_which_importlib_metadata_answers():
    """Importing the importlib_metadata backport (mlflow does) registers a finder whose Message keeps a
    package's description out of get_payload(); the README pool read before (CI: pool 0 after mlflow
    was imported earlier in the session) must be the frozen one either way."""
    _skip_unless_pinned_sources()
    import importlib_metadata  # noqa: F401 - its import is the point
    from importlib import metadata as stdlib_metadata

    from lldmix_core.corpus.minipile_sources import candidate_pool, pinned_sources

    assert type(stdlib_metadata.distribution("numpy").metadata).__module__.startswith("importlib_metadata")
    pool = candidate_pool("READMEs", pinned_sources(ROOT / "constraints.txt"))
    assert len(pool) == local.frozen_manifest()["domains"]["READMEs"]["pool"]
