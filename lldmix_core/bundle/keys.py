"""A trained run's key hashes its target model's database id (run_keys.py), so a run imported into a
database where that target has another id must get the key this database's engine computes, or the
engine would not find it and would train it again.

The new key is re-derived only when the stored key is reproduced exactly from the run's own columns
(spec hash, corpus hash, seed, method, τ setting, target id; one-at-a-time or grouped path): then every
input is known and only the target id changes. A key that is not reproduced (a run of an older numerics
version, a run the engine did not make) is kept as it is.
"""

from __future__ import annotations

from lldmix_core.methods import METHODS, is_parent_row


def rederived_key(run: dict, corpus_hash: str | None, new_target_id: int | None) -> str:
    """The key of bundle run `run` (a runs row as a dict) in a database where its target has id
    `new_target_id`; `corpus_hash`: the content hash of the run's corpus."""
    from lldmix_core.run_keys import run_key
    from lldmix_core.train_group import TRAIN_PATH

    old_target = run.get("target_model_id")
    if (is_parent_row(run["method"]) or run["method"] not in METHODS or old_target is None or new_target_id is None
            or corpus_hash is None or run.get("seed") is None or old_target == new_target_id):
        return run["key"]
    for train_path in (None, TRAIN_PATH):
        try:
            same = run_key(run["spec_hash"], corpus_hash, run["seed"], run["method"], run.get("tau_setting"),
                           old_target, train_path) == run["key"]
        except (ValueError, TypeError):  # a τ setting this code does not read: not an engine run
            return run["key"]
        if same:
            return run_key(run["spec_hash"], corpus_hash, run["seed"], run["method"], run.get("tau_setting"),
                           new_target_id, train_path)
    return run["key"]
