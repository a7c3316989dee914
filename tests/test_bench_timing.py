"""bench/'s quiet-cores gate and per-round ratio spreads: pure functions, no timing."""

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import report  # noqa: E402
from timing import load_gate, round_ratios, summarize_ratios  # noqa: E402


def test_round_ratios_pair_rounds_and_weigh_work():
    # round r: the numerator took num_s[r] s, the denominator den_s[r] s, for the same work → den/num
    assert round_ratios([1.0, 2.0, 4.0], [2.0, 2.0, 2.0]) == [2.0, 1.0, 0.5]
    # 300 tokens in 3 s against 100 tokens in 2 s: 100 vs 50 tokens/s
    assert round_ratios([3.0], [2.0], num_work=300, den_work=100) == [2.0]
    with pytest.raises(ValueError):
        round_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        round_ratios([], [])


def test_summary_is_median_range_and_relative_spread():
    s = summarize_ratios([2.0, 0.5, 1.0, 1.5, 1.25])
    assert (s.median, s.low, s.high, s.rounds) == (1.25, 0.5, 2.0, 5)
    assert s.spread == pytest.approx((2.0 - 0.5) / 1.25)
    assert "0.50–2.00× over 5 rounds" in s.text() and "120 %" in s.text()
    one = summarize_ratios([1.7])
    assert one.spread == 0.0


@pytest.mark.parametrize("before, after, cpus, busy", [
    (2.0, 2.9, 2, False),   # 1.00 and 1.45 per core: quiet
    (3.0, 3.0, 2, False),   # exactly the limit: quiet
    (3.2, 1.0, 2, True),    # busy before
    (0.5, 3.1, 2, True),    # busy after (someone started work during the run)
    (10.26, 9.9, 2, True),  # the load the old figures were taken at
    (10.0, 10.0, 8, False),  # 1.25 per core on 8 CPUs
])
def test_gate_compares_the_one_minute_load_per_core_before_and_after(before, after, cpus, busy):
    g = load_gate((before, 0.0, 0.0), (after, 99.0, 99.0), cpus)  # the 5- and 15-minute figures do not count
    assert g.busy is busy
    assert g.ok is (not busy)
    assert g.per_core_before == pytest.approx(before / cpus) and g.per_core_after == pytest.approx(after / cpus)
    assert (g.note.startswith("Refused") if busy else g.note.startswith("Taken on quiet cores"))


def test_allow_busy_writes_and_says_so():
    g = load_gate((8.0, 7.0, 4.0), (9.0, 8.0, 5.0), 2, allow_busy=True)
    assert g.ok and g.busy
    assert "busy cores" in g.note and "--allow-busy" in g.note and "8.00 before and 9.00 after" in g.note
    quiet = load_gate((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 2, allow_busy=True)
    assert quiet.ok and not quiet.busy and "--allow-busy" not in quiet.note  # nothing to confess
    with pytest.raises(ValueError):
        load_gate((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0)


def test_report_refuses_docs_benchmarks_only(tmp_path):
    refused = load_gate((8.0, 0, 0), (8.0, 0, 0), 2)
    allowed = load_gate((8.0, 0, 0), (8.0, 0, 0), 2, allow_busy=True)
    quiet = load_gate((1.0, 0, 0), (2.0, 0, 0), 2)
    assert not report.write_allowed(refused, report.DOC)
    assert not report.write_allowed(refused, ROOT / "docs" / ".." / "docs" / "BENCHMARKS.md")  # same file
    assert report.write_allowed(refused, tmp_path / "elsewhere.md")
    assert report.write_allowed(allowed, report.DOC)
    assert report.write_allowed(quiet, report.DOC)
