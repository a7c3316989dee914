"""τ as one type (lldmix_core/tau.py): one text form, the run key's form, the resolved number, and the
rule for a pass 1 whose row lacks its resolved τ (pass1.pass1_tau). Expectations are written out by hand
(the texts the database already holds, the spread of a Δ computed here), not read back from the code.

Mutations seen caught: `text` as repr of the value ("'auto'"); `key_text` giving "" for none (every stored
key without τ would be orphaned); `resolve` of a number returning 1.0; pass1_tau falling back to 1.0."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from lldmix_core.errors import UserError
from lldmix_core.tau import AUTO, NO_TAU, Tau, record_resolved


@pytest.mark.parametrize("given, text, key", [(1.0, "1.0", "1.0"), (1, "1.0", "1.0"), (0.05, "0.05", "0.05"),
                                              (math.inf, "inf", "inf"), ("auto", "auto", "auto"),
                                              ("inf", "inf", "inf"), ("0.5", "0.5", "0.5"), (None, None, "None")])
def test_every_form_has_one_text_and_the_keys_historic_text(given, text, key):
    t = Tau.of(given)
    assert t.text == text and t.key_text == key
    assert Tau.of(t.text) == t  # the stored text reads back as the same setting (None: none)


def test_forms_are_told_apart_and_compared_by_value():
    assert Tau.of("auto") is AUTO and Tau.of(None) is NO_TAU and Tau.of("None") is NO_TAU
    assert Tau.of(2) == Tau.of(2.0) == Tau.of("2.0") and hash(Tau.of(2)) == hash(Tau.of("2"))
    assert len({Tau.of(1.0), Tau.of("auto"), NO_TAU, Tau.of(math.inf)}) == 4
    assert Tau.of(math.inf).is_inf and not Tau.of(1e300).is_inf and AUTO.is_auto and NO_TAU.is_none
    assert Tau.of(0.3).number == 0.3 and AUTO.number is None and NO_TAU.number is None
    assert str(NO_TAU) == "none" and str(Tau.of(0.3)) == "0.3"


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, "cold", "", True, [1.0]])
def test_a_setting_that_is_not_a_temperature_is_refused(bad):
    with pytest.raises(ValueError):
        Tau.of(bad)


def test_resolve_is_the_number_or_the_spread_of_delta():
    delta = np.array([-0.4, 1.1, 0.2])
    assert Tau.of(0.25).resolve(delta) == 0.25 and Tau.of(math.inf).resolve(delta) == math.inf
    assert AUTO.resolve(delta) == pytest.approx(1.5)  # max − min = 1.1 − (−0.4)
    assert AUTO.resolve(np.zeros(3)) == 1.0  # no spread: 1.0 (mathcore.resolve_tau's documented rule)
    with pytest.raises(ValueError, match="no τ"):
        NO_TAU.resolve(delta)


def test_name_suffix_only_where_a_spec_sweeps_tau_and_the_method_has_one():
    assert Tau.of(0.1).name_suffix(True) == ".tau0.1" and AUTO.name_suffix(True) == ".tauauto"
    assert Tau.of(0.1).name_suffix(False) == "" and NO_TAU.name_suffix(True) == ""


def test_the_spec_hands_out_taus_as_the_type_and_keeps_its_field_and_hash():
    from lldmix_core.spec import LLDSpec

    s = LLDSpec(tau=[1, "auto", math.inf])
    assert s.taus == (Tau.of(1.0), AUTO, Tau.of(math.inf))
    assert s.tau == (1.0, "auto", math.inf)  # the field as written: what spec_hash dumps


def test_record_resolved_writes_the_row_and_the_mlflow_param():
    calls = []
    store = SimpleNamespace(update_run_tau=lambda run_id, tau: calls.append(("row", run_id, tau)))
    tracker = SimpleNamespace(log_resolved_tau=lambda mid, tau: calls.append(("mlflow", mid, tau)))
    record_resolved(store, tracker, 4, "m", 0.7)
    record_resolved(None, tracker, None, "n", 0.9)  # nothing stored (the HF callback without a store)
    assert calls == [("row", 4, 0.7), ("mlflow", "m", 0.7), ("mlflow", "n", 0.9)]


def _row(tau, setting):
    return SimpleNamespace(id=9, name="s.iterative-lld.seed0", tau=tau, tau_setting=setting)


def test_pass1_tau_is_the_stored_one_else_the_setting_on_the_first_delta_never_a_default():
    from lldmix_core.pass1 import pass1_tau

    first = np.array([0.0, 0.6, -0.2])
    assert pass1_tau(_row(0.37, "auto"), first) == 0.37  # stored: wins
    assert pass1_tau(_row(None, "0.05"), first) == 0.05
    assert pass1_tau(_row(None, "auto"), first) == pytest.approx(0.8)  # spread of the first Δ_t
    with pytest.raises(UserError, match="records no τ"):
        pass1_tau(_row(None, None), first)
