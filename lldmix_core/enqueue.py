"""The one path a spec takes into the run queue, for the CLI (`lldmix enqueue`) and the dashboard's
New run page alike: validated with the model of runs/*.yaml, checked for plausibility (LLDMIX_NO_LIMITS
waives it) and for a name already used by another spec, then queued. Light: no torch, no engine."""

from __future__ import annotations

from lldmix_core.identity import check_spec_identity
from lldmix_core.limits import check_plausible
from lldmix_core.spec import RunSpec, load_spec_text


def checked_spec(store, spec_yaml: str, source: str = "spec") -> RunSpec:
    """The spec of `spec_yaml` after every check a queued spec gets (a UserError names the problem)."""
    spec = load_spec_text(spec_yaml, source)
    check_plausible(spec, source)
    check_spec_identity(store, spec, source)
    return spec


def enqueue_spec(store, spec_yaml: str) -> int:
    """Queue a spec's YAML after `checked_spec`; returns the job id."""
    spec = checked_spec(store, spec_yaml)
    return store.enqueue(name=spec.name, spec_yaml=spec_yaml, spec_hash=spec.spec_hash)
