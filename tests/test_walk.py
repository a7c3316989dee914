"""Folder walks and `**` globs (issue 24, item 3): each real file read once, symlink loops end fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lldmix_core.corpus.records import corpus_files, iter_records
from lldmix_core.errors import UserError
from lldmix_core.walk import expand_glob, walk_files


def _corpus(root: Path) -> Path:
    """DIR with a.jsonl, sub/b.jsonl, sub/deeper/c.jsonl, .hidden/x.jsonl, and the loops
    sub/up -> .. and sub/here -> . (three texts in all outside the hidden folder)."""
    d = root / "DIR"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / ".hidden").mkdir()
    for rel, text in [("a.jsonl", "alpha"), ("sub/b.jsonl", "beta"), ("sub/deeper/c.jsonl", "gamma"),
                      (".hidden/x.jsonl", "hidden")]:
        (d / rel).write_text(json.dumps({"text": text, "meta": {"pile_set_name": "D"}}) + "\n")
    (d / "sub" / "up").symlink_to("..")
    (d / "sub" / "here").symlink_to(".")
    return d


def test_double_star_glob_reads_each_file_once_and_warns(tmp_path, capsys):
    d = _corpus(tmp_path)
    t0 = time.monotonic()
    texts = sorted(t for _, t in iter_records(f"{d}/**/*.jsonl"))
    assert time.monotonic() - t0 < 5
    assert texts == ["alpha", "beta", "gamma"]  # glob's rules: `**` does not enter .hidden
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "skipped" in err[0] and "read once" in err[0]


def test_folder_walk_reads_each_file_once(tmp_path):
    d = _corpus(tmp_path)
    files, duplicates = walk_files(d)
    assert [f.relative_to(d).as_posix() for f in files] == [".hidden/x.jsonl", "a.jsonl", "sub/b.jsonl",
                                                              "sub/deeper/c.jsonl"]
    assert {p.name for p in duplicates} == {"up", "here"}  # the plain paths are kept, the links skipped
    assert sorted(t for _, t in iter_records(d)) == ["alpha", "beta", "gamma", "hidden"]


@pytest.mark.parametrize("pattern, expected", [
    ("*.jsonl", ["a.jsonl"]),
    ("*/*.jsonl", ["sub/b.jsonl"]),
    ("**/*.jsonl", ["a.jsonl", "sub/b.jsonl", "sub/deeper/c.jsonl"]),
    ("sub/**/c.json?", ["sub/deeper/c.jsonl"]),
    (".hidden/*.jsonl", [".hidden/x.jsonl"]),
    ("**", ["a.jsonl", "sub/b.jsonl", "sub/deeper/c.jsonl"]),
    ("sub/*", ["sub/b.jsonl"]),
])
def test_glob_matches_like_the_standard_glob_without_loops(tmp_path, pattern, expected):
    import glob

    d = _corpus(tmp_path)
    for link in ("up", "here"):  # without loops the standard library is the reference
        (d / "sub" / link).unlink()
    files, _ = expand_glob(f"{d}/{pattern}")
    assert [f.relative_to(d).as_posix() for f in files] == expected
    reference = sorted(Path(f).relative_to(d).as_posix() for f in glob.glob(f"{d}/{pattern}", recursive=True)
                       if Path(f).is_file())  # glob also lists folders; a corpus reads files
    assert [f.relative_to(d).as_posix() for f in files] == reference


def test_symlinked_folder_outside_is_still_refused(tmp_path):
    d = _corpus(tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "s.jsonl").write_text('{"text": "secret", "meta": {"pile_set_name": "D"}}\n')
    (d / "sub" / "leak").symlink_to(outside)
    with pytest.raises(UserError, match="outside the corpus folder"):
        corpus_files(f"{d}/**/*.jsonl")
