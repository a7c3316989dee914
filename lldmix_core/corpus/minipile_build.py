"""Build the mini-Pile from its pinned sources: a seeded sample of each domain's whole pool, split
into disjoint training and evaluation documents, written as Pile-format `.jsonl.zst` with a manifest.

Recipe (RECIPE below, recorded in the manifest): order each domain's pool by
sha256("<seed>|<domain>|<package>|<path>") — a seeded shuffle that does not depend on how the pool
was listed — take the first `eval_docs` for evaluation (a quarter of the pool when it is small) and
the next `train_docs` for training. Each document is its first `max_doc_bytes` bytes of UTF-8,
cut back to a line end. The content hash is the sha256 of the uncompressed files (so it does not
depend on the zstd build); the manifest lists every document with its source.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import zstandard

from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.corpus.minipile_sources import POOLS, Candidate, Sources, candidate_pool, pinned_sources

NAME = "minipile-v1"
RECIPE = {"version": 1, "seed": 20261126, "eval_docs": 40, "train_docs": 120, "max_doc_bytes": 6144,
          "min_doc_bytes": 300, "eval_fraction_of_small_pools": 0.25, "zstd_level": 19}
MIN_DISTINCT_DOCS = 100  # the aim per domain; the manifest says where a pool is smaller
SPLITS = ("train", "eval")


def _order_key(seed: int, c: Candidate) -> bytes:
    return hashlib.sha256(f"{seed}|{c.domain}|{c.package}|{c.path}".encode()).digest()


def _cut(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    head = data[:max_bytes].decode("utf-8", errors="ignore")
    nl = head.rfind("\n")
    return head[: nl + 1] if nl > len(head) // 2 else head


def split_pool(pool: list[Candidate], recipe: dict = RECIPE) -> dict[str, list[Candidate]]:
    """{"eval": [...], "train": [...]} from a seeded order over the whole pool; disjoint by source."""
    ordered = sorted(pool, key=lambda c: _order_key(recipe["seed"], c))
    n_eval = min(recipe["eval_docs"], int(len(ordered) * recipe["eval_fraction_of_small_pools"]))
    return {"eval": ordered[:n_eval], "train": ordered[n_eval: n_eval + recipe["train_docs"]]}


def content_hash(jsonl: dict[str, bytes]) -> str:
    """sha256 over the uncompressed split files, in SPLITS order, each prefixed by its name."""
    h = hashlib.sha256()
    for split in SPLITS:
        h.update(split.encode() + b"\0" + jsonl[split] + b"\0")
    return h.hexdigest()


def build_minipile(out_dir: Path, constraints: Path, recipe: dict = RECIPE) -> dict:
    """Write `train.jsonl.zst`, `eval.jsonl.zst` and `manifest.json` into `out_dir`; return the manifest."""
    t0 = time.perf_counter()
    src: Sources = pinned_sources(constraints)
    lines = {s: [] for s in SPLITS}
    documents, domains = [], {}
    for domain in POOLS:
        pool = candidate_pool(domain, src)
        parts = split_pool(pool, recipe)
        info = {"pool": len(pool)}
        for split in SPLITS:
            texts = [_cut(c.text, recipe["max_doc_bytes"]) for c in parts[split]]
            for c, text in zip(parts[split], texts):
                record = {"text": text, "meta": {"pile_set_name": domain}}
                lines[split].append(json.dumps(record, ensure_ascii=False, sort_keys=True))
                documents.append({"split": split, "domain": domain, "package": c.package, "version": c.version,
                                  "path": c.path, "licence": c.licence, "bytes": len(text.encode("utf-8")),
                                  "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
            info[f"{split}_docs"] = len(texts)
            info[f"{split}_bytes"] = sum(len(t.encode("utf-8")) for t in texts)
        distinct = info["train_docs"] + info["eval_docs"]
        if distinct < MIN_DISTINCT_DOCS:
            info["note"] = (f"the pool holds only {len(pool)} distinct documents of at least "
                            f"{recipe['min_doc_bytes']} bytes, fewer than the aimed {MIN_DISTINCT_DOCS}")
        domains[domain] = info
    jsonl = {s: ("\n".join(lines[s]) + "\n").encode("utf-8") for s in SPLITS}
    manifest = {
        "name": NAME,
        "what": "a small stand-in for the Pile built from pinned, installed text; not the Pile",
        "recipe": recipe, "python": src.python_version,
        "sources": {"python-stdlib": src.python_version, **src.versions}, "excluded_sources": src.excluded,
        "files": {f"{s}.jsonl.zst": {"sha256_uncompressed": hashlib.sha256(jsonl[s]).hexdigest(),
                                      "bytes_uncompressed": len(jsonl[s])} for s in SPLITS},
        "domains": domains, "content_hash": content_hash(jsonl), "documents": documents,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cctx = zstandard.ZstdCompressor(level=recipe["zstd_level"], write_checksum=True)
    for s in SPLITS:
        atomic_write_bytes(out_dir / f"{s}.jsonl.zst", cctx.compress(jsonl[s]))
    atomic_write_bytes(out_dir / "manifest.json", (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    manifest["build_seconds"] = time.perf_counter() - t0  # returned, not written: the files stay identical
    return manifest
