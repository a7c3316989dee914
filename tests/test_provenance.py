"""Provenance: the commit recorded is the checkout's, and it reaches the footer and MLflow tags."""

from __future__ import annotations

import subprocess

from lldmix_core import provenance
from conftest import ROOT


def test_commit_is_the_checkouts_head():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    p = provenance.collect(corpus_hash="c" * 64, tokenizer_hash="t" * 64)
    if head.returncode != 0:  # an unpacked archive: no commit, said as such
        assert p["git_commit"] is None and "unknown commit" in provenance.footer(p)
        return
    assert p["git_commit"] == head.stdout.strip()
    assert p["git_dirty"] in (True, False)
    assert p["numerics_version"] == provenance.NUMERICS_VERSION
    line = provenance.footer(p, seeds=[0, 1])
    assert head.stdout.strip()[:10] in line and "corpus cccccccccccc" in line and "seeds 0,1" in line
    tags = provenance.mlflow_tags(p)
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    assert tags["lldmix.corpus_hash"] == "c" * 64


def test_runtime_names_threads_and_device():
    r = provenance.runtime()
    assert r["device"] == "cpu" or isinstance(r["device"], str)
    assert int(r["threads"]) >= 1
