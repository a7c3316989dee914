"""One home for each shared meaning (issue 22 item 5), each checked against expectations computed here by
hand, and each found defined in one place only:

- the paired difference to uniform: paired.pair_with_reference / across_seeds (CLI report, leaderboard, dashboard);
- the simplex check: recipe_check.check_weights and its SUM_TOLERANCE (spec, recipes, store, mixture files);
- the run label "m τ=t" and the run name ".tau<t>": methods.run_label, run_keys.run_name, both asking
  tau.sweeps_tau whether τ is swept.

Mutations seen caught: the reference found by the last instead of the baseline method (reference test),
the difference taken reference − run (sign), pairing draws without checking they are the same ones, a sum tolerance of 1e-2 (simplex tests), sweeps_tau counting
none as a τ (label tests)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LN2 = math.log(2)

SPEC = """
name: q
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 12, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
methods: [uniform, aggregated-lld]
tracking: {mlflow: false}
"""


def _spec(lld: dict):
    from lldmix_core.spec import RunSpec

    return RunSpec.model_validate({**yaml.safe_load(SPEC), "lld": lld})


class _Store:
    """What paired_sampled_difference reads: models' tokenizers, stored vectors, a samples corpus's mean bytes."""

    def __init__(self, vectors: dict[tuple[int, int], list[float]], mean_bytes: float):
        self.vectors, self.mean_bytes = vectors, mean_bytes

    def get_model(self, model_id):
        return type("M", (), {"tokenizer_hash": "t"})()

    def get_loglik_vector(self, model_id, corpus_id, tokenizer_hash):
        v = self.vectors.get((model_id, corpus_id))
        return None if v is None else (np.array(v, dtype=np.float32), None)

    def get_corpus(self, corpus_id):
        return type("C", (), {"settings": {"mean_bytes": self.mean_bytes}})()


def test_paired_difference_to_uniform_by_hand():
    from lldmix_core.paired import FinalSampled, pair_with_reference

    # seed 0: uniform (model 1) and iterative (model 2) on the draws of corpus 10, log q per draw
    # (model 4 has a vector on corpus 11 too, but its run's final sampled KL was on other draws, corpus 12)
    store = _Store({(1, 10): [-12.0, -11.0], (2, 10): [-10.0, -10.0], (3, 11): [-9.0, -9.0], (4, 11): [-9.5, -9.0]},
                   mean_bytes=2.0)
    finals = [FinalSampled("iterative-lld", 0, 0.30, 10, 2, of="it0"),
              FinalSampled("uniform", 0, 0.50, 10, 1, of="u0"),
              FinalSampled("iterative-lld", 1, 0.25, 11, 3, of="it1"),  # seed 1: uniform on other draws
              FinalSampled("uniform", 1, 0.40, 12, 4, of="u1"),
              FinalSampled("fixed", 2, 0.10, 13, 5, of="f2")]  # no uniform run of seed 2: left out
    pairs = pair_with_reference(store, finals)
    assert [(p.run.of, p.reference.of) for p in pairs] == [("it0", "u0"), ("it1", "u1")]
    assert pairs[0].difference == pytest.approx(0.30 - 0.50) and pairs[1].difference == pytest.approx(0.25 - 0.40)
    # per draw: log q_uniform − log q_iterative = (−2, −1) nats → / ln 2 / 2 bytes; mean and sd/√2 by hand
    mean, se = pairs[0].within
    assert mean == pytest.approx(-1.5 / LN2 / 2.0, rel=1e-12)
    assert se == pytest.approx((math.sqrt(0.5) / math.sqrt(2)) / LN2 / 2.0, rel=1e-12)
    assert pairs[1].within is None  # not on the same draws: no per-draw difference
    assert pair_with_reference(None, finals)[0].within is None  # no store: none either


def test_paired_reference_is_the_baseline_method():
    from lldmix_core.methods import baseline_method
    from lldmix_core.paired import FinalSampled, pair_with_reference

    finals = [FinalSampled(baseline_method(), 0, 0.5, None, None), FinalSampled("iterative-lld", 0, 0.2, None, None),
              FinalSampled("adjusted-lld", 0, 0.1, None, None)]
    pairs = pair_with_reference(None, finals)
    assert {p.reference.method for p in pairs} == {baseline_method()} == {"uniform"}
    assert [p.run.method for p in pairs] == ["iterative-lld", "adjusted-lld"]


def test_across_seeds_by_hand():
    from lldmix_core.paired import FinalSampled, PairedToReference, across_seeds

    def pair(seed, run, ref):
        return PairedToReference(FinalSampled("m", seed, run, None, None), FinalSampled("uniform", seed, ref, None, None),
                                 run - ref, None)

    sm = across_seeds([pair(1, 0.5, 0.2), pair(0, 0.1, 0.2)])  # differences +0.3 and −0.1
    assert sm.n == 2 and sm.wins == 1
    assert sm.mean_diff == pytest.approx(0.1)
    assert sm.se == pytest.approx(np.std([0.3, -0.1], ddof=1) / math.sqrt(2))
    assert sm.lo == pytest.approx(0.1 - 12.706204736 * sm.se, rel=1e-6)  # t(0.975, 1 dof)
    assert across_seeds([pair(0, math.nan, 0.2)]) is None and across_seeds([]) is None


def test_weights_off_the_simplex_by_1e3_are_refused_naming_the_field():
    from lldmix_core.errors import UserError
    from pydantic import ValidationError

    from lldmix_core.recipe_check import check_weights

    with pytest.raises(UserError, match=r"^lld\.prior: weights sum to 1\.001000, not 1"):
        check_weights({"Python": 0.5, "Legal": 0.501}, "lld.prior")
    check_weights({"Python": 0.5, "Legal": 0.5000001}, "lld.prior")  # within the tolerance
    _spec({"prior": {"Python": 0.5, "Legal": 0.5}})  # the same spec on the simplex is valid
    with pytest.raises(ValidationError) as e:
        _spec({"prior": {"Python": 0.5, "Legal": 0.501}})
    assert [err["loc"] for err in e.value.errors()] == [("lld", "prior")]
    assert "weights sum to 1.001000, not 1" in str(e.value)


def test_stores_and_mixture_files_use_the_same_simplex_check(tmp_path):
    from lldmix_core import mixture_file, recipe_check
    from lldmix_core.errors import UserError

    assert mixture_file.SUM_TOLERANCE is recipe_check.SUM_TOLERANCE == 1e-6
    good = {"schema_version": 1, "name": "m", "unit": "percent", "weights": {"Python": 50.0, "Legal": 50.00001}}
    mixture_file.parse_mixture(good, "m.yaml")
    with pytest.raises(UserError, match=r"m\.yaml: weights: percentages sum to 100\.1"):
        mixture_file.parse_mixture({**good, "weights": {"Python": 50.0, "Legal": 50.1}}, "m.yaml")


def test_run_label_and_run_name_show_tau_only_in_a_sweep():
    from lldmix_core.methods import run_label
    from lldmix_core.run_keys import run_name
    from lldmix_core.tau import NO_TAU, Tau, sweeps_tau

    assert sweeps_tau([Tau.of(0.1), Tau.of(1.0)]) and not sweeps_tau([Tau.of(0.1), NO_TAU])
    assert sweeps_tau(["0.1", None, "1.0", float("nan")]) and not sweeps_tau(["0.1", "0.1", None])
    assert run_label("aggregated-lld", "0.1", True) == "aggregated-lld τ=0.1"
    assert run_label("uniform", None, True) == run_label("uniform", float("nan"), True) == "uniform"
    assert run_label("aggregated-lld", Tau.of(0.1), False) == "aggregated-lld"
    swept, single = _spec({"tau": [0.1, 1.0]}), _spec({"tau": 0.1})
    assert run_name(swept, 0, "aggregated-lld", Tau.of(0.1)) == "q.aggregated-lld.seed0.tau0.1"
    assert run_name(swept, 3, "uniform", NO_TAU) == "q.uniform.seed3"
    assert run_name(single, 0, "aggregated-lld", Tau.of(0.1)) == "q.aggregated-lld.seed0"


def _lines(pattern: str, skip: set[str]) -> list[str]:
    rx = re.compile(pattern)
    found = []
    for folder in ("lldmix_core", "app", "scripts", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in skip:
                continue
            found += [f"{rel}:{i}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                      if rx.search(line)]
    return found


def _only_in(pattern: str, home: str) -> None:
    found = _lines(pattern, set())
    assert found, f"{pattern!r} is not found at all: the test would prove nothing"
    assert all(x.startswith(home + ":") for x in found), f"{pattern!r} outside {home}: {found}"


def test_each_meaning_is_computed_in_one_place():
    # the per-draw paired difference is taken by pair_with_reference only (the report, leaderboard, dashboard call it)
    _only_in(r"paired_sampled_difference\(", "lldmix_core/paired.py")
    assert {x.split(":")[0] for x in _lines(r"pair_with_reference\(", {"lldmix_core/paired.py"})} == {
        "lldmix_core/report.py", "lldmix_core/benchmark/leaderboard.py", "app/ui_data.py"}
    # the "m τ=t" label is written in methods.run_label only; ".tau<t>" in tau.Tau.name_suffix only
    _only_in(r"""f["'][^"']*τ=\{""", "lldmix_core/methods.py")
    _only_in(r"""f["']\.tau\{""", "lldmix_core/tau.py")
    # run names are composed by run_keys.run_name only; whether τ is swept is asked of tau.sweeps_tau only
    _only_in(r"\.\{method\}\.seed\{seed\}", "lldmix_core/run_keys.py")
    assert _lines(r"len\(spec\.lld\.taus\) > 1|nunique\(\) > 1.*tau", set()) == []
    # the sum-to-one check lives in recipe_check (mixture files read its tolerance)
    _only_in(r"abs\(total - 1\.0\) >", "lldmix_core/recipe_check.py")
