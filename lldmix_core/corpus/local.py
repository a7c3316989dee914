"""The embedded default corpus: a small multi-domain stand-in for the Pile, built from real text
that any machine has after installing lldmix. It is NOT the Pile; it exercises the method.

Domains and sources (all from the running Python installation and its site-packages):
  Python   — .py source of the standard library
  C++      — C/C++ headers shipped with torch (torch/include)
  PyDocs   — Python's reference documentation (pydoc_data.topics)
  Legal    — licence texts (LICENSE*/COPYING* of installed distributions and Python)
  READMEs  — package descriptions in Markdown/reST (bodies of dist-info/METADATA)
  JSON     — .json data files in site-packages
  Math     — mathematical docstrings of sympy and mpmath (read with `ast`, nothing imported);
             PyPI's mathematics_dataset (the Pile's DM Mathematics generator) does not import beside
             torch's sympy, so this is the maths source.
Deterministic for a given install: sorted file lists, documents sent to val or train by a hash of
their path, per-domain byte caps, documents cut at 64 KB. Output: `train.jsonl`, `val.jsonl` (Pile
format) and `manifest.json`, each written to a temp name and renamed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

from lldmix_core.atomic import atomic_write_bytes, file_lock

RECIPE_VERSION = 1
MAX_DOC_BYTES = 64 * 1024
MIN_DOC_BYTES = 300


def _site_packages() -> list[Path]:
    paths = {Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])}
    return sorted(p for p in paths if p.is_dir())


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _files(root: Path, patterns: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    found = sorted({f for pat in patterns for f in root.rglob(pat) if f.is_file()})
    for f in found:
        yield f"{root.name}/{f.relative_to(root).as_posix()}", f


def _python() -> Iterator[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for key, f in _files(stdlib, ("*.py",)):
        if "site-packages" in f.parts or "test" in f.parts:
            continue
        if (t := _read(f)) is not None:
            yield key, t


def _cpp() -> Iterator[tuple[str, str]]:
    for sp in _site_packages():
        for key, f in _files(sp / "torch" / "include", ("*.h", "*.hpp", "*.cuh")):
            if (t := _read(f)) is not None:
                yield key, t


def _pydocs() -> Iterator[tuple[str, str]]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for name in sorted(topics):
        yield f"pydoc_data/{name}", topics[name]


def _dist_infos() -> list[Path]:
    return sorted(d for sp in _site_packages() for d in sp.glob("*.dist-info") if d.is_dir())


def _legal() -> Iterator[tuple[str, str]]:
    stdlib_license = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if (t := _read(stdlib_license)) is not None:
        yield "python/LICENSE.txt", t
    for d in _dist_infos():
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.name.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")):
                if (t := _read(f)) is not None:
                    yield f"{d.name}/{f.relative_to(d).as_posix()}", t


def _readmes() -> Iterator[tuple[str, str]]:
    for d in _dist_infos():
        t = _read(d / "METADATA")
        if t and "\n\n" in t:
            yield f"{d.name}/METADATA", t.split("\n\n", 1)[1]


def _json() -> Iterator[tuple[str, str]]:
    for sp in _site_packages():
        for key, f in _files(sp, ("*.json",)):
            if ".dist-info" in key:
                continue
            if (t := _read(f)) is not None:
                yield key, t


def _math() -> Iterator[tuple[str, str]]:
    wanted = ("sympy/functions", "sympy/integrals", "sympy/series", "sympy/ntheory", "sympy/polys",
              "sympy/simplify", "sympy/calculus", "sympy/solvers", "sympy/stats", "mpmath/functions")
    for sp in _site_packages():
        for sub in wanted:
            for key, f in _files(sp / sub, ("*.py",)):
                if "tests" in f.parts or (src := _read(f)) is None:
                    continue
                try:
                    tree = ast.parse(src)
                except SyntaxError:
                    continue
                docs = [ast.get_docstring(n) for n in ast.walk(tree)
                        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
                text = "\n\n".join(d for d in docs if d and len(d) > 200)
                if text:
                    yield key, text


DOMAINS = {"Python": _python, "C++": _cpp, "PyDocs": _pydocs, "Legal": _legal, "READMEs": _readmes,
           "JSON": _json, "Math": _math}


def _to_val(key: str) -> bool:
    return hashlib.sha256(key.encode()).digest()[0] % 5 == 0  # about 1 in 5 documents


def build_local_minipile(out_dir: Path, *, train_bytes_per_domain: int = 400_000,
                         val_bytes_per_domain: int = 120_000) -> dict:
    """Build (or find) the mini-Pile in `out_dir`; returns the manifest. Concurrent callers build it once."""
    out_dir = Path(out_dir)
    with file_lock(out_dir.parent / f".{out_dir.name}.lock"):
        return _build_local_minipile(out_dir, train_bytes_per_domain, val_bytes_per_domain)


def _build_local_minipile(out_dir: Path, train_bytes_per_domain: int, val_bytes_per_domain: int) -> dict:
    recipe = {"version": RECIPE_VERSION, "train_bytes_per_domain": train_bytes_per_domain,
              "val_bytes_per_domain": val_bytes_per_domain, "python": sys.version.split()[0]}
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file() and (out_dir / "train.jsonl").is_file() and (out_dir / "val.jsonl").is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("recipe") == recipe:
            return old
    lines = {"train": [], "val": []}
    domains = {}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for domain, source in DOMAINS.items():
        used = {"train": 0, "val": 0}
        caps = {"train": train_bytes_per_domain, "val": val_bytes_per_domain}
        docs = {"train": 0, "val": 0}
        sources = []
        for key, text in source():
            data = text.encode("utf-8")[:MAX_DOC_BYTES].decode("utf-8", errors="ignore")
            n = len(data.encode("utf-8"))
            if n < MIN_DOC_BYTES:
                continue
            split = "val" if _to_val(key) else "train"
            if used[split] >= caps[split]:
                if all(used[s] >= caps[s] for s in used):
                    break
                continue
            record = json.dumps({"text": data, "meta": {"pile_set_name": domain}}, ensure_ascii=False)
            lines[split].append(record)
            digest.update(record.encode())
            used[split] += n
            docs[split] += 1
            sources.append(key)
        if used["train"] and used["val"]:
            domains[domain] = {"train_bytes": used["train"], "val_bytes": used["val"], "train_docs": docs["train"],
                               "val_docs": docs["val"], "first_sources": sources[:3]}
    manifest = {"what": "a small stand-in for the Pile built from text on this machine; not the Pile",
                "recipe": recipe, "domains": domains, "content_hash": digest.hexdigest(),
                "site_packages": [str(p) for p in _site_packages()], "stdlib": sysconfig.get_paths()["stdlib"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        kept = [l for l in lines[split] if json.loads(l)["meta"]["pile_set_name"] in domains]
        atomic_write_bytes(out_dir / f"{split}.jsonl", ("\n".join(kept) + "\n").encode("utf-8"))
    atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest
