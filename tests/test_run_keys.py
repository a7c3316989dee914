"""Run keys are the database's memory of finished work: their encoding must not drift. The keys below
were computed by the engine's own key function before it moved to lldmix_core/run_keys.py (commit
a3d8557), for the quickstart and the replication with a fixed corpus hash and target id."""

import math

import pytest

from lldmix_core.run_keys import run_key
from lldmix_core.spec import load_spec

from conftest import ROOT

PINNED = {
    ("quickstart", "uniform", None): "1c0df60e2ca4b338f1e49e607776f1fde149bb8ba394e2f76e85bda14228a816",
    ("quickstart", "iterative-lld", 1.0): "cd2f2376a93e46aba2050b78257e0165289800e7bdfd99ba4fa140ffb1f3da09",
    ("quickstart", "aggregated-lld", math.inf): "716cfe2bc8dfc24ca7ef110c5f40f296c6dc77c943a269474964a0243f61f891",
    ("quickstart", "distill-kl", None): "8557641277006517577e399dd01392cc7976fbe47d53ea4ebe3bd95fe845af01",
    ("quickstart", "iterative-lld", "auto"): "6f712e4945dda596d8ed45cdc579405c0c34d118fe63a9ca88c1b71b8f8ff471",
    ("replication", "uniform", None): "3f26bb701871ed75a147d9ce3bc8050b10ef91986f2c9a11a2838d87815ef827",
    ("replication", "iterative-lld", 1.0): "18cbf16ca99c9841346c08c664b56ed867059fdcaf80d203c9945c295c970b93",
    ("replication", "aggregated-lld", math.inf): "dbe23fc52aa2b98518abac3634e1323351303dca4e72abcb5f2ef32fda1483e0",
    ("replication", "distill-kl", None): "3125f650453b62052dc33885bf57f5c82623854e79fe2fec1946b2a929ca2162",
    ("replication", "iterative-lld", "auto"): "a74951e9a1289e1418fcdfa7af6e4595fae2162a8482e660235dc7aa736fc2c8",
}


@pytest.mark.parametrize("spec, method, tau", list(PINNED))
def test_run_keys_of_the_quickstart_and_the_replication_are_unchanged(spec, method, tau, monkeypatch):
    # the pins were taken at numerics version 2; the encoding must still give them there, and a raised
    # numerics version (3: the fused scoring head) must give other keys, so its runs are recomputed
    import lldmix_core.run_keys as rk
    from lldmix_core import provenance

    s = load_spec(ROOT / "runs" / f"{spec}.yaml")
    current = run_key(s.spec_hash, "c" * 64, 1, method, tau, 7)
    monkeypatch.setattr(rk, "NUMERICS_VERSION", 2)
    assert run_key(s.spec_hash, "c" * 64, 1, method, tau, 7) == PINNED[(spec, method, tau)]
    assert provenance.NUMERICS_VERSION > 2 and current != PINNED[(spec, method, tau)]


def test_the_key_separates_what_changes_the_result():
    base = run_key("s" * 64, "c" * 64, 1, "uniform", None, 7)
    others = [run_key("t" * 64, "c" * 64, 1, "uniform", None, 7), run_key("s" * 64, "d" * 64, 1, "uniform", None, 7),
              run_key("s" * 64, "c" * 64, 2, "uniform", None, 7), run_key("s" * 64, "c" * 64, 1, "oracle", None, 7),
              run_key("s" * 64, "c" * 64, 1, "uniform", 1.0, 7), run_key("s" * 64, "c" * 64, 1, "uniform", None, 8)]
    assert len({base, *others}) == 7


def test_the_plans_units_key_as_pinned(monkeypatch):
    """The spec's τ reaches the key through the plan (spec.taus → RunUnit.tau_setting, a tau.Tau): the keys
    of the quickstart's planned units are the pinned ones (at the numerics version they were pinned at), so
    the encoding is unchanged."""
    from lldmix_core import run_keys as rk
    from lldmix_core.plan import run_plan

    monkeypatch.setattr(rk, "NUMERICS_VERSION", 2)

    s = load_spec(ROOT / "runs" / "quickstart.yaml")
    planned = {(u.method, u.tau_setting.value): run_key(s.spec_hash, "c" * 64, 1, u.method, u.tau_setting, 7)
               for u in run_plan(s) if u.seed == s.seeds[0]}
    pinned = {(m, t): k for (spec, m, t), k in PINNED.items() if spec == "quickstart"}
    common = set(planned) & set(pinned)
    assert common == {("uniform", None), ("iterative-lld", 1.0)}  # the quickstart's methods at its τ = 1.0
    assert all(planned[c] == pinned[c] for c in common)
