"""A phased recipe (lld.phases, the two-stage recipe) trains with each phase's weights over its share
of the run: checked from the batches the training loop actually drew and the weights the engine stored.

Phases are one-hot (Python until 0.5, C++ after), so the domain of every step is known in advance.
Mutation seen to fail these tests: the engine ignoring the switches (the whole run on phase 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from lldmix_core import mathcore as mc

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name: phased
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 8, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [8]
methods: [fixed]
lld:
  unit: token
  phases:
    - {until: 0.5, weights: {Python: 1.0}}
    - {until: 1.0, weights: {C++: 1.0}}
kl: {sampled: {n_samples: 16, n_tokens: 16}}
tracking: {mlflow: false}
"""


def test_phase_starts_closed_form():
    assert mc.phase_starts([0.5, 1.0], 8) == [(0, 0), (4, 1)]
    assert mc.phase_starts([0.3, 0.7, 1.0], 10) == [(0, 0), (3, 1), (7, 2)]
    # a phase shorter than half a step gets no step: its successor starts at 0
    assert mc.phase_starts([0.01, 1.0], 10) == [(0, 1)]
    assert mc.phase_starts([1.0], 5) == [(0, 0)]
    for bad in ([0.5], [0.6, 0.4, 1.0], [0.0, 1.0], []):
        with pytest.raises(ValueError):
            mc.phase_starts(bad, 10)


@pytest.mark.parametrize("edit, message", [
    ({"phases": [{"until": 0.5, "weights": {"Python": 1.0}}]}, "last phase's 'until' must be 1.0"),
    ({"phases": [{"until": 0.6, "weights": {"Python": 1.0}}, {"until": 0.4, "weights": {"Python": 1.0}},
                 {"until": 1.0, "weights": {"Python": 1.0}}]}, "must increase strictly"),
    ({"phases": [{"until": 0.5, "weights": {"Python": 0.7}}, {"until": 1.0, "weights": {"C++": 1.0}}]}, "simplex"),
    ({"phases": [{"until": 0.5, "weights": {"Python": 1.0}}, {"until": 1.0, "weights": {"C++": 1.0}}],
      "recipe": {"Python": 1.0}}, "recipe or phases, not both"),
])
def test_bad_phases_are_refused_naming_the_field(edit, message):
    from lldmix_core.spec import RunSpec

    doc = yaml.safe_load(SPEC)
    doc["lld"] = {"unit": "token", **edit}
    with pytest.raises(ValueError, match=message):
        RunSpec.model_validate(doc)


def test_specs_without_phases_keep_their_hash():
    """Adding lld.phases must not change existing specs' hashes (their finished runs stay found):
    the hashes below were computed at commit 200c096, before the option existed."""
    from lldmix_core.spec import load_spec

    # the quickstart as it was until issue 21 (it became a twin-target spec then), kept as a fixture
    assert load_spec(ROOT / "tests/fixtures/quickstart-v1.yaml").spec_hash == \
        "9575feda95b6d3481a60725b768e18b6eb4c1c5c551f6e8a7bb06de52a27c112"
    assert load_spec(ROOT / "runs/replication.yaml").spec_hash == "cf7f424a87fcfcb99aea45466603f8a7358b6e02a3302023be34dd58b711db7e"


@pytest.fixture(scope="module")
def phased_run(tmp_path_factory):
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod
    from lldmix_core.corpus.streams import DomainStreams
    from lldmix_core.spec import RunSpec

    drawn: list[tuple[int, str]] = []  # (batch size asked, domain) of every training batch
    real_get_batch = DomainStreams.get_batch

    def spy(self, domain, batch_size, *a, **k):
        drawn.append((batch_size, domain))
        return real_get_batch(self, domain, batch_size, *a, **k)

    DomainStreams.get_batch = spy
    try:
        with fresh_home(tmp_path_factory.mktemp("phased") / "home") as (settings, store):
            spec = RunSpec.model_validate(yaml.safe_load(SPEC))
            outcome = engine_mod.Engine(store, settings, verbose=False).run(spec)
            yield store, outcome, drawn
    finally:
        DomainStreams.get_batch = real_get_batch


def test_each_phase_trains_on_its_own_weights(phased_run):
    store, outcome, drawn = phased_run
    (run,) = outcome.runs
    # the student's 8 steps are the last 8 batches of size 2 (the target trained first, 4 steps)
    student = [d for b, d in drawn if b == 2][-8:]
    assert student == ["Python"] * 4 + ["C++"] * 4


def test_the_switch_is_stored_where_it_happens(phased_run):
    store, outcome, _ = phased_run
    (run,) = outcome.runs
    weights = store.get_weights(run.run_id)
    assert 4 in weights, f"no weights stored at the switch step; stored at {sorted(weights)}"
    assert weights[0]["Python"] == pytest.approx(1.0) and weights[4]["C++"] == pytest.approx(1.0)
    last = max(weights)
    assert last == 8 and weights[last]["C++"] == pytest.approx(1.0)
    assert sorted(weights) == [0, 4, 8]  # evaluated only at the end, and where each phase starts
    assert np.isfinite(run.sampled_bits_per_byte) and run.sampled_bits_per_byte >= 0


TWO_STAGE = SPEC.replace("eval_steps: [8]\n", "").replace("methods: [fixed]", "methods: [iterative-lld, aggregated-lld]").replace(
    """lld:
  unit: token
  phases:
    - {until: 0.5, weights: {Python: 1.0}}
    - {until: 1.0, weights: {C++: 1.0}}""", "lld: {unit: token, tau: 0.05, aggregation: two-stage}").replace(
    "steps: 8, batch_size", "steps: 12, batch_size")


def test_two_stage_aggregated_lld_trains_its_phases_and_exports_them(tmp_path, monkeypatch):
    """lld.aggregation: two-stage: pass 2 starts on the early phase, switches to the late one at the
    phase's first step, and `lldmix recipe export --format phases` writes the phases the run trained."""
    from lldmix_core import engine as engine_mod
    from lldmix_core.config import get_settings
    from lldmix_core.db.engine import upgrade
    from lldmix_core.db.store import Store
    from lldmix_core.estimators import ESTIMATORS
    from lldmix_core.pass1 import pass1_of
    from lldmix_core.recipes import export
    from lldmix_core.recipes_phased import load_phased
    from lldmix_core.spec import RunSpec

    monkeypatch.setenv("LLDMIX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = get_settings()
    upgrade(settings.db_url)
    store = Store.open(settings.db_url)
    spec = RunSpec.model_validate(yaml.safe_load(TWO_STAGE))
    outcome = engine_mod.Engine(store, settings, verbose=False).run(spec)
    runs = {r.method: store.get_run(r.run_id) for r in outcome.runs}
    domains = list(store.get_corpus(runs["iterative-lld"].corpus_id).domains)
    want = ESTIMATORS["two-stage"].phases(pass1_of(store, runs["iterative-lld"], spec, domains))
    (_, recipe), = [(r["name"], r) for r in store.list_recipes()]
    assert [p["until"] for p in recipe["provenance"]["phases"]] == pytest.approx([u for u, _ in want])
    switch = int(round(want[0][0] * 12))
    assert 0 < switch < 12
    stored = store.get_weights(runs["aggregated-lld"].id)
    assert switch in stored, f"no weights stored at the switch step {switch}: {sorted(stored)}"
    early = np.array([stored[0][d] for d in domains])
    late = np.array([stored[switch][d] for d in domains])
    assert np.allclose(early, want[0][1], atol=1e-9) and np.allclose(late, want[1][1], atol=1e-9)
    assert not np.allclose(early, late, atol=1e-3)  # the run really changed mixture
    out = tmp_path / "two.phases.json"
    export(recipe, "phases", out)
    back = load_phased(out)
    assert [p["until"] for p in back["phases"]] == pytest.approx([u for u, _ in want])
    assert [back["phases"][1]["weights"][d] for d in domains] == pytest.approx(list(want[1][1]))
    with pytest.raises(Exception, match="has no phases"):
        export({**recipe, "provenance": {}}, "phases", tmp_path / "x.json")
