"""A spec's identity is its content: a `name` already used by a spec with different content is
refused before any work (it would train a new target, then clash on the run's model names)."""

from __future__ import annotations

from lldmix_core.errors import UserError
from lldmix_core.methods import is_parent_row


def check_spec_identity(store, spec, source: str = "spec") -> None:
    """Refuse `spec` when a spec run of the same name has a different content hash."""
    for run in store.list_runs():
        if is_parent_row(run.method) and run.parent_id is None and run.name == spec.name and run.spec_hash != spec.spec_hash:
            raise UserError(
                f"{source}: name {spec.name!r} is already used by a different spec (hash {run.spec_hash[:12]}, run "
                f"{run.id}; this one {spec.spec_hash[:12]}): give the changed spec a new `name:` "
                f"(e.g. {spec.name}-v2) or re-run the original unchanged")
