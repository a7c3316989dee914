"""A run's last KL by estimator has one home (lldmix_core/kl_rows.py, issue 22 item 5): the engine's outcome,
the leaderboard, the ladder, the swarm export, the agreement study and the dashboard all read it there.

Mutations seen caught: last_kl taking the first step instead of the last; "modelmap" matching the
noise floor's "sampled-seed-pair" rows or "sampled" matching them; a module comparing estimator names again."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import ROOT
from lldmix_core.kl_rows import MODELMAP, SAMPLED, is_kind, last_kl, modelmap_name


def _row(step, estimator, kl):
    return SimpleNamespace(step=step, estimator=estimator, bits_per_byte=kl)


ROWS = [_row(0, "modelmap", 0.9), _row(300, "modelmap-clip0.02", 0.2), _row(100, "modelmap", 0.5),
        _row(200, "sampled", 0.31), _row(300, "sampled", 0.30), _row(None, "sampled", 9.0),
        _row(400, "sampled-seed-pair", 7.0)]


def test_last_kl_is_the_latest_step_of_its_kind():
    assert last_kl(ROWS, MODELMAP).bits_per_byte == 0.2  # the clipped estimate is a model-map row too
    assert last_kl(ROWS, SAMPLED).bits_per_byte == 0.30  # not the seed-pair row at 400, not the stepless one
    assert last_kl(ROWS[:3], SAMPLED) is None and last_kl([], MODELMAP) is None
    with pytest.raises(ValueError, match="unknown KL kind"):
        last_kl(ROWS, "gap")


def test_the_names_the_engine_writes_are_the_kinds_it_reads():
    assert modelmap_name(0) == "modelmap" and modelmap_name(0.02) == "modelmap-clip0.02"
    assert is_kind(modelmap_name(0.5), MODELMAP) and not is_kind(modelmap_name(0.5), SAMPLED)
    assert not is_kind("sampled-seed-pair", SAMPLED) and not is_kind("sampled-seed-pair", MODELMAP)


def test_the_dashboards_table_form_agrees_with_last_kl():
    from app.ui_data import last_per_run  # noqa: PLC0415  (streamlit is imported with it)

    frame = pd.DataFrame([{"run_id": 1, **vars(r)} for r in ROWS] + [{"run_id": 2, **vars(_row(50, "sampled", 0.7))}])
    got = last_per_run(frame, SAMPLED).set_index("run_id")["bits_per_byte"].to_dict()
    assert got == {1: last_kl(ROWS, SAMPLED).bits_per_byte, 2: 0.7}
    assert last_per_run(frame, MODELMAP)["bits_per_byte"].tolist() == [0.2]


def test_no_module_compares_kl_estimator_names_outside_their_home():
    pattern = re.compile(r"""estimator"?\]?\s*==\s*["'](sampled|modelmap)["']|startswith\(["']modelmap""")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for pkg in ("lldmix_core", "app", "scripts") for p in (ROOT / pkg).rglob("*.py")
                 if p.name != "kl_rows.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []
