"""The engine trains a spec's runs as groups under training.group: true (`--group`), and a run's numbers do
not depend on the group it trained in; the default (one model at a time) keeps the one-model path, with its
own run keys. Uses the twin-target spec of tests/test_headroom.py (the oracle must still reproduce its
target bit for bit on either path)."""

import yaml

from lldmix_core.plan import RunUnit, training_batches
from lldmix_core.spec import RunSpec

from test_headroom import TWIN


def _run(tmp_path_factory, name: str, **changes):
    from conftest import fresh_home
    from lldmix_core.engine import Engine

    doc = yaml.safe_load(TWIN)
    for k, v in changes.items():
        section, _, field = k.partition("__")
        if field:
            doc[section][field] = v
        else:
            doc[section] = v
    with fresh_home(tmp_path_factory.mktemp(name) / "home") as (settings, store):
        spec = RunSpec.model_validate(doc)
        outcome = Engine(store, settings, verbose=False).run(spec)
        runs = {(r.method, r.seed): store.get_run(r.run_id) for r in outcome.runs}
        finals = {(r.method, r.seed): store.get_model(r.final_model_id).fingerprint for r in outcome.runs}
        sampled = {(r.method, r.seed): r.sampled_bits_per_byte for r in outcome.runs}
        return runs, finals, sampled


def test_grouped_runs_numbers_do_not_depend_on_their_group(tmp_path_factory):
    runs, finals, sampled = _run(tmp_path_factory, "both", training__group=True)  # seeds 0 and 1: 6 runs in one group
    assert {r.provenance["train_path"] for r in runs.values()} == {"grouped-v1"}
    assert {r.config["train_path"] for r in runs.values()} == {"grouped-v1"}
    assert sampled[("oracle", 0)] == sampled[("oracle", 1)] == 0.0  # the twin target trained on the same path
    _, alone, sampled1 = _run(tmp_path_factory, "seed1", seeds=[1], methods=["uniform"], training__group=True)  # alone
    assert alone[("uniform", 1)] == finals[("uniform", 1)]  # the same model, bit for bit
    assert sampled1[("uniform", 1)] == sampled[("uniform", 1)]


def test_one_at_a_time_by_default_with_its_own_keys(tmp_path_factory):
    grouped, g_finals, _ = _run(tmp_path_factory, "g", seeds=[0], methods=["uniform", "oracle"], training__group=True)
    single, s_finals, s_sampled = _run(tmp_path_factory, "s", seeds=[0], methods=["uniform", "oracle"])
    assert {r.provenance["train_path"] for r in single.values()} == {"single"}
    assert s_sampled[("oracle", 0)] == 0.0  # the twin target follows its runs' path
    for k in single:
        assert single[k].key != grouped[k].key  # the keys say which path made the numbers
        assert single[k].spec_hash == grouped[k].spec_hash  # the same spec
    assert s_finals[("uniform", 0)] != g_finals[("uniform", 0)]  # other kernels: other last bits


def test_training_batches_respect_pass_one_and_the_group_bound():
    plan = [RunUnit(s, m, t) for s in (0, 1) for m, t in
            (("uniform", None), ("iterative-lld", 1.0), ("aggregated-lld", 1.0), ("distill-kl", None))]
    batches = training_batches(plan, lambda u: u.method != "distill-kl", max_group=3)
    assert [([u.method for u in b], g) for b, g in batches] == [
        (["uniform", "iterative-lld", "uniform"], True), (["iterative-lld"], True),
        (["aggregated-lld", "aggregated-lld"], True), (["distill-kl"], False), (["distill-kl"], False)]
    assert sorted(u for b, _ in batches for u in b) == sorted(plan)  # every run once


def test_the_cli_flag_sets_the_path_and_the_dry_run_says_it(home):
    from conftest import run_cli

    env = {"LLDMIX_HOME": str(home)}
    default = run_cli("run", "runs/quickstart.yaml", "--dry-run", env=env).stdout
    grouped = run_cli("run", "runs/quickstart.yaml", "--dry-run", "--group", env=env).stdout
    assert "training: one model at a time (training.group: false; --group" in default
    # 3 seeds: uniform, iterative-, adjusted-LLD and the oracle together, then the 3 aggregated recipes
    assert "training: 15 run(s) in 2 group(s)" in grouped
