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
"""

from __future__ import annotations

from lldmix_core.errors import UserError
from lldmix_core.methods import METHODS
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.spec import RunSpec, content_hash


def finished_outcome(engine, spec: RunSpec, corpus, prov: dict) -> SpecOutcome | None:
    """The spec's outcome from the database when it is finished there (see the module docstring), else None.
    `engine`: the lldmix_core.engine.Engine running it; `corpus`: the PreparedCorpus it prepared."""
    store = engine.store
    parent = store.get_run_by_key(content_hash({"parent": spec.spec_hash}))
    if parent is None or parent.status != "finished" or parent.corpus_id != corpus.info.id:
        return None
    if spec.target.train is None or (engine.twin(spec) and spec.base.train is not None):
        return None  # a loaded target, or a twin built from a trained base: the normal path checks them
    targets: dict[int | None, tuple[int, dict]] = {}  # seed (None: one target) -> (model id, truth)
    found = []
    engine._done_steps, engine._total_steps = 0, 0
    for unit in engine._plan(spec):
        which = unit.seed if engine.twin(spec) else None
        if which not in targets:
            job = engine.models._fixed_job(spec, corpus, spec.target, "target", which)
            try:
                targets[which] = (store.get_model(job.name).id, job.truth)
            except UserError:
                return None  # not trained here under this content key
        key = engine._run_key(spec, corpus, unit.seed, unit.method, unit.tau_setting, targets[which][0],
                              engine._train_path(spec, unit.method))
        run = store.get_run_by_key(key)
        if run is None or run.status != "finished" or run.parent_id != parent.id:
            return None
        found.append((unit, key))
    return _outcome(engine, spec, parent, corpus, prov, targets, found)


def _outcome(engine, spec: RunSpec, parent, corpus, prov: dict, targets: dict, found: list) -> SpecOutcome:
    """The SpecOutcome of a finished spec, as Engine.run would return it, from the stored rows."""
    store = engine.store
    engine.log(f"{spec.name}: found finished in the database (parent run {parent.id}); reported without "
               "loading or training a model")
    out = SpecOutcome(spec.name, spec.spec_hash, parent.id, corpus.info.content_hash, "",
                      mlflow_parent=parent.mlflow_run_id, provenance=prov)
    for unit, key in found:
        name = f"{spec.name}.{unit.method}.seed{unit.seed}" + unit.tau_setting.name_suffix(len(spec.lld.taus) > 1)
        outcome = engine._finished(key, name, unit, spec.training.steps)
        out.runs.append(outcome)
        if METHODS[unit.method].behaviour.makes_recipe and unit.tau_setting == spec.lld.taus[0]:
            out.recipes[unit.seed] = outcome.weights
    first_id, out.truth = next(iter(targets.values()))
    out.target_name = (f"{len(targets)} twin target(s), one per seed" if engine.twin(spec)
                       else store.get_model(first_id).name)
    engine._seed_pairs(spec, out)  # stored with the finished parent: read, not computed
    return out
