"""A stored recipe checked against (and mapped onto) a corpus's domains: versioned domains.

`for_corpus` compares the recipe's domain manifest (provenance `domain_manifest`, domain_manifest.py)
with the corpus's: any domain missing, extra, or under the same name with different data is a one-line
UserError naming it, unless an explicit mapping covers it:

- `--map OLD=NEW`     renames OLD to NEW (`--map A=A` accepts A's changed data);
- `--merge A+B=C`     C gets the sum of A's and B's weights;
- `--split A=B,C`     A's weight is shared by B and C in proportion to their sizes in tokens
                      (w_B = w_A · n_B / (n_B + n_C), n from the corpus's token streams).

The mapping (and the sizes a split used) is recorded under provenance `domain_mapping`, and the mapped
recipe carries the corpus's manifest. A recipe stored before manifests existed is checked by name only,
with a note that its data cannot be checked. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lldmix_core.domain_manifest import PROVENANCE_KEY, difference
from lldmix_core.errors import UserError

HINT = "map them with --map OLD=NEW, --merge A+B=C or --split A=B,C"


@dataclass(frozen=True)
class DomainMapping:
    renames: dict[str, str] = field(default_factory=dict)  # old -> new
    merges: dict[str, tuple[str, ...]] = field(default_factory=dict)  # new -> olds
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)  # old -> news

    def __bool__(self) -> bool:
        return bool(self.renames or self.merges or self.splits)

    def sources(self) -> set[str]:
        return set(self.renames) | {o for olds in self.merges.values() for o in olds} | set(self.splits)

    def targets(self) -> set[str]:
        return set(self.renames.values()) | set(self.merges) | {n for news in self.splits.values() for n in news}

    def record(self) -> dict:
        return {"map": dict(self.renames), "merge": {k: list(v) for k, v in self.merges.items()},
                "split": {k: list(v) for k, v in self.splits.items()}}


def _names(text: str, sep: str, option: str, raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(sep))
    if not all(names) or len(set(names)) != len(names):
        raise UserError(f"{option} {raw}: give distinct, non-empty domain names")
    return names


def parse(maps=(), merges=(), splits=()) -> DomainMapping:
    """The mapping from the options' texts (OLD=NEW, A+B=C, A=B,C); each old domain in one rule at most."""
    renames, merged, split, seen = {}, {}, {}, []
    for raw in maps or ():
        old, eq, new = raw.partition("=")
        if not eq or not old.strip() or not new.strip():
            raise UserError(f"--map {raw}: write OLD=NEW")
        renames[old.strip()] = new.strip()
        seen.append(old.strip())
    for raw in merges or ():
        olds, eq, new = raw.rpartition("=")
        if not eq or "+" not in olds or not new.strip():
            raise UserError(f"--merge {raw}: write A+B=C (two or more old domains into one new)")
        merged[new.strip()] = _names(olds, "+", "--merge", raw)
        seen.extend(merged[new.strip()])
    for raw in splits or ():
        old, eq, news = raw.partition("=")
        if not eq or "," not in news or not old.strip():
            raise UserError(f"--split {raw}: write A=B,C (one old domain into two or more new)")
        split[old.strip()] = _names(news, ",", "--split", raw)
        seen.append(old.strip())
    twice = sorted({d for d in seen if seen.count(d) > 1})
    if twice:
        raise UserError(f"--map/--merge/--split: domain {', '.join(twice)} is mapped more than once")
    return DomainMapping(renames, merged, split)


def map_weights(weights: dict[str, float], mapping: DomainMapping,
                sizes_tokens: dict[str, int] | None = None) -> dict[str, float]:
    """The weights on the new domains (their sum is kept): renamed, merged (summed), split by size in tokens;
    a domain no rule names keeps its name and weight."""
    unknown = sorted(mapping.sources() - set(weights))
    if unknown:
        raise UserError(f"--map/--merge/--split: {', '.join(unknown)} is not a domain of the recipe "
                        f"(it has {', '.join(weights)})")
    out: dict[str, float] = {}

    def add(d: str, w: float) -> None:
        out[d] = out.get(d, 0.0) + float(w)

    for d, w in weights.items():
        if d in mapping.renames:
            add(mapping.renames[d], w)
        elif d in mapping.splits:
            news = mapping.splits[d]
            if sizes_tokens is None:
                raise UserError(f"--split {d}={','.join(news)}: needs the new domains' sizes in tokens; "
                                "give --tokens-dir, the corpus's token-streams folder")
            absent = [n for n in news if n not in sizes_tokens]
            if absent:
                raise UserError(f"--split {d}={','.join(news)}: --tokens-dir has no token count for {', '.join(absent)}")
            total = sum(int(sizes_tokens[n]) for n in news)
            if total <= 0:
                raise UserError(f"--split {d}={','.join(news)}: the new domains hold 0 tokens")
            for n in news:
                add(n, w * int(sizes_tokens[n]) / total)
        elif not any(d in olds for olds in mapping.merges.values()):
            add(d, w)
    for new, olds in mapping.merges.items():
        add(new, sum(float(weights[o]) for o in olds))
    return out


def for_corpus(recipe: dict, corpus_manifest: dict, mapping: DomainMapping, *, corpus_label: str,
               sizes_tokens: dict[str, int] | None = None) -> tuple[dict, list[str]]:
    """(the recipe on the corpus's domains, notes); a UserError naming the difference when they differ and
    the mapping does not cover it. Nothing is changed when they are the same and no mapping is given."""
    name, prov = recipe.get("name"), dict(recipe.get("provenance") or {})
    notes, stored = [], prov.get(PROVENANCE_KEY)
    if stored is None:
        notes.append(f"recipe {name}: stores no domain manifest (made before versioned domains); "
                     "its domains are checked by name only, their data cannot be checked")
        old = {d: None for d in recipe["weights"]}
    else:
        old = dict(stored["domains"])
    new = dict(corpus_manifest["domains"])
    absent = sorted(mapping.targets() - set(new))
    if absent:
        raise UserError(f"--map/--merge/--split: {', '.join(absent)} is not a domain of corpus {corpus_label} "
                        f"(it has {', '.join(new)})")
    src, dst = mapping.sources(), mapping.targets()
    diff = difference({d: i for d, i in old.items() if d not in src}, {d: i for d, i in new.items() if d not in dst})
    if diff:
        raise UserError(f"recipe {name}: domains differ from corpus {corpus_label}'s ({diff.describe()}); {HINT}")
    if not mapping:
        return recipe, notes
    record = {**mapping.record(), "from_manifest": (stored or {}).get("hash"), "to_manifest": corpus_manifest["hash"]}
    if mapping.splits:
        record["split_sizes_tokens"] = {n: int(sizes_tokens[n]) for news in mapping.splits.values() for n in news}
    weights = map_weights(recipe["weights"], mapping, sizes_tokens)
    weights = {d: weights[d] for d in new if d in weights}
    if prov.get("phases"):
        prov["phases"] = [{**p, "weights": {d: w for d, w in map_weights(p["weights"], mapping, sizes_tokens).items()}}
                          for p in prov["phases"]]
    if "unique_tokens" in prov:  # the epoch accounting's counts, moved onto the new domains
        counts = sizes_tokens if sizes_tokens is not None else map_weights(prov["unique_tokens"], mapping)
        prov["unique_tokens"] = {d: int(round(counts[d])) for d in weights if d in counts}
    prov[PROVENANCE_KEY], prov["domain_mapping"] = corpus_manifest, record
    return {**recipe, "weights": weights, "provenance": prov}, notes


def check_run_domains(recipe_domains: dict[str, str], corpus_manifest: dict, *, corpus_label: str) -> None:
    """A spec's lld.domain_manifest against the run's corpus: a UserError naming the difference, if any."""
    diff = difference(recipe_domains, corpus_manifest["domains"])
    if diff:
        raise UserError(f"lld.domain_manifest: the recipe's domains differ from corpus {corpus_label}'s ({diff.describe()}); "
                        f"map them with `lldmix recipe export --corpus {corpus_label}` and --map, --merge or --split")
