"""Versioned domains: a recipe's domain manifest, its content hash, and how two manifests differ.

A manifest names each domain and what stands behind it: {domain: identity}. lldmix's identity of a
domain is the sha256 of the sorted sha256s of its evaluation texts in the stored corpus (UTF-8), so the
same corpus gives the same manifest on any machine whatever the tokenizer; a different sample of the
domain's texts (another file, another `eval_per_domain` or seed) is "same name, different data".

Shape (stored as recipe provenance `domain_manifest`):
    {"version": 1, "identity": "eval-texts-sha256", "hash": <sha256 hex>, "domains": {name: identity}}
The hash is that of the canonical JSON of version, identity kind and the sorted {name: identity}.
Pure: hashlib and json only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping, Sequence

VERSION = 1
IDENTITY = "eval-texts-sha256"
PROVENANCE_KEY = "domain_manifest"


def text_identities(domains: Sequence[str], text_domains: Sequence[str], texts: Sequence[str]) -> dict[str, str]:
    """{domain: sha256 of its texts' sorted sha256s} for every domain of `domains` (a domain without texts
    hashes the empty list)."""
    per: dict[str, list[str]] = {d: [] for d in domains}
    for d, t in zip(text_domains, texts):
        if d in per:
            per[d].append(hashlib.sha256(t.encode("utf-8")).hexdigest())
    return {d: hashlib.sha256("\n".join(sorted(hs)).encode()).hexdigest() for d, hs in per.items()}


def manifest(identities: Mapping[str, str], identity: str = IDENTITY) -> dict:
    """The manifest of {domain: identity} with its content hash (independent of the mapping's order)."""
    domains = {str(d): str(identities[d]) for d in sorted(identities)}
    canonical = json.dumps({"version": VERSION, "identity": identity, "domains": domains},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return {"version": VERSION, "identity": identity, "hash": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            "domains": domains}


def of_texts(domains: Sequence[str], text_domains: Sequence[str], texts: Sequence[str]) -> dict:
    """The manifest of a stored evaluation corpus (its domains, text domains and texts)."""
    return manifest(text_identities(domains, text_domains, texts))


@dataclass(frozen=True)
class Difference:
    missing: tuple[str, ...]  # in the recipe, not in the corpus
    extra: tuple[str, ...]  # in the corpus, not in the recipe
    changed: tuple[str, ...]  # in both, with different data

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.changed)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing from the corpus: {', '.join(self.missing)}")
        if self.extra:
            parts.append(f"extra in the corpus: {', '.join(self.extra)}")
        if self.changed:
            parts.append(f"same name, different data: {', '.join(self.changed)}")
        return "; ".join(parts)


def difference(old: Mapping[str, str | None], new: Mapping[str, str | None]) -> Difference:
    """How domains {name: identity} `old` (the recipe's) differ from `new` (the corpus's); an identity of
    None (unknown) is never "changed"."""
    changed = [d for d in old if d in new and old[d] is not None and new[d] is not None and old[d] != new[d]]
    return Difference(tuple(sorted(d for d in old if d not in new)), tuple(sorted(d for d in new if d not in old)),
                      tuple(sorted(changed)))
