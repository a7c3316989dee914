"""Candidate documents for the mini-Pile, from pinned sources only.

Sources are (a) the standard library of the running Python and (b) the distributions in lldmix's
RUNTIME dependency closure (its Requires-Dist without extras, followed transitively) that
constraints.txt pins at exactly the installed version. Files are enumerated from each
distribution's own RECORD (`importlib.metadata`), never by walking site-packages, so what else is
installed — the test extras, pip, a user's packages — cannot enter a pool.

Every pool is returned sorted by (package, path); sampling happens elsewhere.
"""

from __future__ import annotations

import ast
import email
import re
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from lldmix_core.errors import UserError

PSF = "PSF-2.0"
STDLIB = "python-stdlib"
MIN_DOC_BYTES = 300


@dataclass(frozen=True)
class Candidate:
    domain: str
    package: str  # canonical distribution name, or "python-stdlib"
    version: str
    path: str  # within the package (or the stdlib folder); "#name" for an entry inside a file
    licence: str
    text: str


@dataclass(frozen=True)
class Sources:
    python_version: str
    dists: dict[str, metadata.Distribution]  # canonical name -> distribution, runtime ∩ pinned only
    versions: dict[str, str]
    excluded: dict[str, str]  # canonical name -> why it is not a source


def read_constraints(path: Path) -> dict[str, str]:
    """{canonical name: version} from `name==version` lines of constraints.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            pins[canonicalize_name(name.strip())] = ver.strip()
    return pins


def _runtime_requirements(dist: metadata.Distribution) -> list[str]:
    names = []
    for raw in dist.requires or []:
        req = Requirement(raw)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (test, eval, …) or a platform this is not
        names.append(canonicalize_name(req.name))
    return names


def runtime_closure(root: str = "lldmix") -> set[str]:
    """Canonical names of the installed distributions `root` needs at run time (no extras)."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    if canonicalize_name(root) not in installed:
        raise UserError(f"{root} is not installed (pip install -e .): its runtime requirements define the sources")
    seen: set[str] = set()
    todo = _runtime_requirements(installed[canonicalize_name(root)])
    while todo:
        name = todo.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        todo += _runtime_requirements(installed[name])
    return seen


def pinned_sources(constraints: Path) -> Sources:
    pins = read_constraints(constraints)
    dists, versions, excluded = {}, {}, {}
    for name in sorted(runtime_closure()):
        dist = metadata.distribution(name)
        have = dist.version
        if name not in pins:
            excluded[name] = "not pinned in constraints.txt"
        elif Version(have).public != Version(pins[name]).public:
            excluded[name] = f"installed {have}, pinned {pins[name]}"
        else:
            dists[name], versions[name] = dist, Version(have).public
    return Sources(sys.version.split()[0], dists, versions, excluded)


def licence_of(dist: metadata.Distribution) -> str:
    md = dist.metadata
    if md.get("License-Expression"):
        return md["License-Expression"].strip()
    classifiers = [c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(sorted(set(classifiers)))
    first = (md.get("License") or "").strip().splitlines()
    return first[0][:80] if first and first[0] else "unknown (see the package's licence file)"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _files(src: Sources, names: tuple[str, ...] | None, keep: Callable[[str], bool]) -> Iterator[Candidate]:
    """Files of the named (or all) source distributions whose RECORD path passes `keep`."""
    for name in sorted(src.dists if names is None else [n for n in names if n in src.dists]):
        dist = src.dists[name]
        lic = licence_of(dist)
        for rel in sorted(str(f) for f in dist.files or []):
            if "__pycache__" in rel or not keep(rel):
                continue
            text = _read(Path(str(dist.locate_file(rel))))
            if text is not None:
                yield Candidate("", name, src.versions[name], rel, lic, text)


def _under_tests(rel: str) -> bool:
    return bool({"test", "tests", "testing", "idle_test"} & set(rel.split("/")[:-1]))


def _python(src: Sources) -> Iterator[Candidate]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(("site-packages/", "config-")) or "_sysconfigdata" in rel or _under_tests(rel):
            continue
        if (t := _read(f)) is not None:
            yield Candidate("", STDLIB, src.python_version, rel, PSF, t)


def _pydocs(src: Sources) -> Iterator[Candidate]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Candidate("", STDLIB, src.python_version, f"pydoc_data/topics.py#{name}", PSF, topics[name])


def _cpp(src: Sources) -> Iterator[Candidate]:
    yield from _files(src, ("torch",), lambda r: r.startswith("torch/include/") and r.endswith((".h", ".hpp", ".cuh")))


def _legal(src: Sources) -> Iterator[Candidate]:
    root = Path(sysconfig.get_paths()["stdlib"])
    if (t := _read(root / "LICENSE.txt")) is not None:
        yield Candidate("", STDLIB, src.python_version, "LICENSE.txt", PSF, t)
    pat = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.I)
    yield from _files(src, None, lambda r: ".dist-info/" in r and bool(pat.search(r)))


def _readmes(src: Sources) -> Iterator[Candidate]:
    for name in sorted(src.dists):
        dist = src.dists[name]
        # The body of METADATA, parsed here with the stdlib email parser: `dist.metadata` depends on
        # which importlib.metadata answers (the importlib_metadata backport, imported by e.g. mlflow,
        # registers a finder whose Message moves the body into a Description header: an empty body)
        raw = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        body = email.message_from_string(raw).get_payload() or ""
        yield Candidate("", name, src.versions[name], f"{name}.dist-info/METADATA#description", licence_of(dist), body)


def _json(src: Sources) -> Iterator[Candidate]:
    yield from _files(src, None, lambda r: r.endswith(".json") and ".dist-info/" not in r)


def _markdown(src: Sources) -> Iterator[Candidate]:
    yield from _files(src, None, lambda r: r.endswith((".md", ".rst")) and ".dist-info/" not in r)


def _cython(src: Sources) -> Iterator[Candidate]:
    yield from _files(src, None, lambda r: r.endswith((".pyx", ".pxd", ".pxi")))


def _docstrings(text: str) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return ""
    docs = [ast.get_docstring(n) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    return "\n\n".join(d for d in docs if d and len(d) > 200)


def _math(src: Sources) -> Iterator[Candidate]:
    for c in _files(src, ("sympy", "mpmath"), lambda r: r.endswith(".py") and not _under_tests(r)):
        yield Candidate("", c.package, c.version, c.path + "#docstrings", c.licence, _docstrings(c.text))


POOLS: dict[str, Callable[[Sources], Iterator[Candidate]]] = {
    "Python": _python, "C++": _cpp, "PyDocs": _pydocs, "Legal": _legal, "READMEs": _readmes,
    "JSON": _json, "Math": _math, "Markdown": _markdown, "Cython": _cython,
}


def candidate_pool(domain: str, src: Sources) -> list[Candidate]:
    """Every usable document of `domain`: at least MIN_DOC_BYTES, identical texts kept once (the first
    by package and path), sorted by (package, path)."""
    seen, pool = set(), []
    for c in POOLS[domain](src):
        if len(c.text.encode("utf-8")) < MIN_DOC_BYTES or c.text in seen:
            continue
        seen.add(c.text)
        pool.append(Candidate(domain, c.package, c.version, c.path, c.licence, c.text))
    return sorted(pool, key=lambda c: (c.package, c.path))
