"""The default corpus: the frozen mini-Pile shipped as package data (lldmix_core/data/minipile-v1/).

It is a small multi-domain stand-in for the Pile built once from pinned sources (the Python
standard library of a stated version and lldmix's runtime dependencies at the versions
constraints.txt pins; see minipile_sources.py and minipile_build.py). It is NOT the Pile; it
exercises the method. Because the files are checked in, every machine reads the same bytes:
`corpus: local: true` uses them directly, no build. `regenerate()` rebuilds them from the sources
into a temp folder and says whether the content hash matches the frozen one.

Domains: Python (stdlib .py), C++ (torch's C/C++ headers), PyDocs (pydoc_data topics), Legal
(licence texts), READMEs (package descriptions), JSON (data files), Math (sympy and mpmath
docstrings), Markdown (.md/.rst files shipped in packages), Cython (.pyx/.pxd/.pxi).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from lldmix_core.atomic import atomic_write_bytes, file_lock
from lldmix_core.errors import UserError

FROZEN_NAME = "minipile-v1"
FROZEN_DIR = Path(__file__).resolve().parent.parent / "data" / FROZEN_NAME
# The sha256 of the frozen content (uncompressed train then eval files). Changing the files means a
# new version (minipile-v2), never an edit in place; tests/test_local_minipile.py pins it too.
FROZEN_CONTENT_HASH = "98b23dae8d45cfc4caa2307c8fece8aee25eb4902ff1bc129f2f6c5852592e9a"
DEFAULT_CONSTRAINTS = Path(__file__).resolve().parent.parent.parent / "constraints.txt"


def frozen_manifest() -> dict:
    path = FROZEN_DIR / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"the frozen mini-Pile is missing: {path} (reinstall lldmix)") from None


def read_split(folder: Path, split: str) -> bytes:
    """The uncompressed JSON lines of `split` ("train" or "eval") in `folder`."""
    path = Path(folder) / f"{split}.jsonl.zst"
    try:
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    except FileNotFoundError:
        raise UserError(f"mini-Pile file {path} is missing") from None
    except zstandard.ZstdError as e:
        raise UserError(f"{path}: compressed data is corrupt ({e})") from None


def folder_content_hash(folder: Path) -> str:
    from lldmix_core.corpus.minipile_build import SPLITS, content_hash

    return content_hash({s: read_split(folder, s) for s in SPLITS})


_verified: set[Path] = set()


def frozen_paths() -> tuple[Path, Path]:
    """(train file, eval file) of the frozen mini-Pile, after checking their content hash once per process."""
    if FROZEN_DIR not in _verified:
        got = folder_content_hash(FROZEN_DIR)
        if got != FROZEN_CONTENT_HASH:
            raise UserError(f"the frozen mini-Pile in {FROZEN_DIR} has content hash {got[:12]}, expected "
                            f"{FROZEN_CONTENT_HASH[:12]}: its files were altered (reinstall lldmix)")
        _verified.add(FROZEN_DIR)
    return FROZEN_DIR / "train.jsonl.zst", FROZEN_DIR / "eval.jsonl.zst"


@dataclass(frozen=True)
class Regeneration:
    content_hash: str
    frozen_hash: str
    manifest: dict
    seconds: float
    differences: list[str]  # why they differ (sources, domains), empty when the hashes match

    @property
    def matches(self) -> bool:
        return self.content_hash == self.frozen_hash


def _differences(new: dict, old: dict) -> list[str]:
    out = []
    for name in sorted(set(new["sources"]) | set(old["sources"])):
        a, b = new["sources"].get(name), old["sources"].get(name)
        if a != b:
            out.append(f"source {name}: here {a or 'absent'}, frozen from {b or 'absent'}")
    for d in sorted(set(new["domains"]) | set(old["domains"])):
        if new["domains"].get(d) != old["domains"].get(d):
            out.append(f"domain {d}: here {new['domains'].get(d)}, frozen {old['domains'].get(d)}")
    return out


def regenerate(out_dir: Path | None = None, constraints: Path = DEFAULT_CONSTRAINTS) -> Regeneration:
    """Rebuild the mini-Pile from its sources (into `out_dir`, or a temp folder that is removed) and
    compare its content hash with the frozen one."""
    from lldmix_core.corpus.minipile_build import build_minipile

    if not Path(constraints).is_file():
        raise UserError(f"--constraints: {constraints} does not exist (regeneration needs the pinned versions)")
    tmp = None if out_dir is not None else Path(tempfile.mkdtemp(prefix="lldmix-minipile-"))
    try:
        manifest = build_minipile(out_dir or tmp, Path(constraints))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    frozen = frozen_manifest()
    diffs = [] if manifest["content_hash"] == FROZEN_CONTENT_HASH else _differences(manifest, frozen)
    return Regeneration(manifest["content_hash"], FROZEN_CONTENT_HASH, manifest, manifest["build_seconds"], diffs)


def build_local_minipile(out_dir: Path, **_ignored) -> dict:
    """Unpack the frozen mini-Pile into `out_dir` as plain `train.jsonl` and `val.jsonl` (for tools
    that want uncompressed files, e.g. bench/); returns the frozen manifest."""
    out_dir = Path(out_dir)
    frozen_paths()
    manifest = frozen_manifest()
    with file_lock(out_dir.parent / f".{out_dir.name}.lock"):
        stamp = out_dir / "content_hash"
        if not (stamp.is_file() and stamp.read_text() == FROZEN_CONTENT_HASH):
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out_dir / "train.jsonl", read_split(FROZEN_DIR, "train"))
            atomic_write_bytes(out_dir / "val.jsonl", read_split(FROZEN_DIR, "eval"))
            atomic_write_bytes(stamp, FROZEN_CONTENT_HASH.encode())
    return manifest

