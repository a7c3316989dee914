"""A spec found finished in the database is reported from its rows, with no model loaded or trained.

This is what makes results imported from another machine (`lldmix db import`) count as done: the
checkpoints and trained targets (LLDMIX_HOME/checkpoints, models/) stay on the machine that trained
them, so the engine must not need them for work that is finished. A spec is found finished when

  - its parent run (key: the spec hash) is finished and was run on the corpus just prepared here (same
    content hash), and the spec trains its target (a loaded target is the user's file: the normal path
    loads and checks it);
  - each seed's trained target is registered under the name its content key gives (the key hashes the
    training files, tokenizer, architecture and settings, so changed training data is not "found");
  - every run of the plan is finished under the key the engine would compute for it now (numerics
    version, target id and training path included).

Anything less returns None and the engine runs the spec as usual (finished runs are still found there).
The engine (core.py) turns what is found into the spec's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lldmix_core.db.store import Store
from lldmix_core.engine.models import ModelStages
from lldmix_core.engine.run_stages import train_path
from lldmix_core.errors import UserError
from lldmix_core.plan import RunUnit, run_plan
from lldmix_core.prepare import PreparedCorpus
from lldmix_core.run_keys import run_key
from lldmix_core.spec import RunSpec, content_hash
from lldmix_core.tokenizers import Tokenizer


@dataclass(frozen=True)
class FoundSpec:
    """A finished spec's rows: its parent run, its targets (seed, or None for one target → (model id, the
    target's true mixture or None)) and each planned run's unit with its key."""

    parent: object  # the parent RunInfo
    targets: dict[int | None, tuple[int, np.ndarray | None]]
    runs: list[tuple[RunUnit, str]]


def find_finished(store: Store, models: ModelStages, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer,
                  twin: bool) -> FoundSpec | None:
    """The spec's finished rows when it is finished in this database (see the module docstring), else None."""
    parent = store.get_run_by_key(content_hash({"parent": spec.spec_hash}))
    if parent is None or parent.status != "finished" or parent.corpus_id != corpus.info.id:
        return None
    if spec.target.train is None or (twin and spec.base.train is not None):
        return None  # a loaded target, or a twin built from a trained base: the normal path checks them
    targets: dict[int | None, tuple[int, np.ndarray | None]] = {}
    runs = []
    for unit in run_plan(spec):
        which = unit.seed if twin else None
        if which not in targets:
            job = models._fixed_job(spec, corpus, tok, spec.target, "target", which)
            try:
                targets[which] = (store.get_model(job.name).id, job.truth)
            except UserError:
                return None  # not trained here under this content key
        key = run_key(spec.spec_hash, corpus.info.content_hash, unit.seed, unit.method, unit.tau_setting,
                      targets[which][0], train_path(spec, unit.method))
        run = store.get_run_by_key(key)
        if run is None or run.status != "finished" or run.parent_id != parent.id:
            return None
        runs.append((unit, key))
    return FoundSpec(parent, targets, runs)
