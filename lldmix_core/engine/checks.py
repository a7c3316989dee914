"""What the engine checks and says before it trains: the spec against the prepared corpus (refused
before any run row is written), finished runs of other numerics versions, mixed units of log-likelihood."""

from __future__ import annotations

from lldmix_core.config import Settings, confine_path
from lldmix_core.db.store import Store
from lldmix_core.domain_mapping import check_run_domains
from lldmix_core.engine.lld import corpus_manifest
from lldmix_core.engine.services import LogFn
from lldmix_core.errors import UserError
from lldmix_core.methods import METHODS
from lldmix_core.prepare import PreparedCorpus, mixture
from lldmix_core.provenance import NUMERICS_VERSION
from lldmix_core.spec import RunSpec
from lldmix_core.tokenizers import Tokenizer, get_tokenizer, refuse_custom_code


def check_against_corpus(store: Store, settings: Settings, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer) -> None:
    """Domain names and tokenizers the spec refers to, checked once the corpus's domains are known
    (`tok`: the spec's tokenizer)."""
    if spec.lld.domain_manifest is not None:  # versioned domains: the recipe's data, not only its names
        check_run_domains(spec.lld.domain_manifest, corpus_manifest(corpus), corpus_label=corpus.info.name)
    refs = [("lld.prior", spec.lld.prior, None), ("lld.recipe", spec.lld.recipe, None),
            *((f"lld.phases[{i}].weights", p.weights, None) for i, p in enumerate(spec.lld.phases or ()))]
    for role in ("target", "base"):
        t = getattr(spec, role).train
        if t is not None:
            refs.append((f"{role}.train.weights" if t.weights else f"{role}.train.multipliers", t.weights, t.multipliers))
    for field_name, weights, multipliers in refs:
        if weights is not None or multipliers is not None:
            mixture(corpus.domains, weights, multipliers, field_name)
    for role in ("target", "base"):  # models named in the spec must exist before a run row is written
        ref = getattr(spec, role)
        if ref.model is not None:
            store.get_model(ref.model)
        if ref.path is not None and ref.kind == "hf":  # a folder with its own code: refused up front
            refuse_custom_code(confine_path(ref.path, settings, f"{role}.path"), ref.trust_remote_code)
    if any(METHODS[m].needs_teacher for m in spec.methods):
        _check_teacher_tokenizer(store, settings, spec, tok)


def _check_teacher_tokenizer(store: Store, settings: Settings, spec: RunSpec, base_tok: Tokenizer) -> None:
    """Distillation needs the target to use the base's tokenizer."""
    ref = spec.target
    if ref.model is not None:
        info = store.get_model(ref.model)
        same, other = info.tokenizer_hash == base_tok.identity, info.tokenizer
    elif ref.path is not None:
        path = confine_path(ref.path, settings, "target.path")
        tok = get_tokenizer(ref.tokenizer or f"hf:{path}", ref.trust_remote_code)
        same, other = tok.identity == base_tok.identity, tok.name
    else:
        same, other = True, spec.tokenizer
    if not same:
        raise UserError(f"methods: distillation needs the same tokenizer for base and target: base uses "
                        f"{spec.tokenizer}, target uses {other}")


def note_other_versions(store: Store, log: LogFn, parent_id: int) -> None:
    """Say when finished runs of this spec in the database came from code whose numbers differ:
    their keys differ, so they are not reused, and the user should know why work is redone."""
    other: dict[str, int] = {}
    for r in store.list_runs(parent_id=parent_id):
        v = (r.provenance or {}).get("numerics_version", 1)
        if r.status == "finished" and v != NUMERICS_VERSION:
            label = f"numerics v{v}" + (f" (commit {str(r.git_commit)[:10]})" if r.git_commit else "")
            other[label] = other.get(label, 0) + 1
    for label, n in other.items():
        log(f"note: {n} finished run(s) of this spec in the database came from {label}; this code is "
            f"numerics v{NUMERICS_VERSION}, so they are not reused")


def units_warning(store: Store, log: LogFn, spec: RunSpec, tok: Tokenizer, target_id: int) -> None:
    """Warn when base (`tok`) and target tokenizers differ while Δ is per token."""
    target = store.get_model(target_id)
    if target.tokenizer_hash != tok.identity and spec.lld.unit == "token":
        log(f"warning: base tokenizer {spec.tokenizer} and target tokenizer {target.tokenizer} differ; "
            "Δ in nats/token mixes units — set lld.unit: byte")
