"""One results document, several specs: `lldmix results SPEC --out FILE` sets its own section only."""

from __future__ import annotations

import pytest

from lldmix_core.results_doc import replace_section


def test_a_new_file_is_one_section():
    doc = replace_section(None, "a", "# A\n\nbody\n")
    assert doc == "<!-- lldmix results: a -->\n# A\n\nbody\n<!-- /lldmix results: a -->\n"


def test_sections_are_appended_then_replaced_in_place_and_others_kept():
    doc = replace_section(None, "a", "# A v1")
    doc = replace_section(doc, "b", "# B v1")
    doc = replace_section(doc, "c", "# C v1")
    doc2 = replace_section(doc, "b", "# B v2\n\nlonger\n")
    assert doc2.index("# A v1") < doc2.index("# B v2") < doc2.index("# C v1")
    assert "# B v1" not in doc2 and doc2.count("lldmix results: b -->") == 2
    # rewriting a section with the same body leaves the file byte-identical (regeneration is idempotent)
    assert replace_section(doc2, "b", "# B v2\n\nlonger\n") == doc2
    assert replace_section(replace_section(doc2, "b", "# B v1"), "b", "# B v2\n\nlonger\n") == doc2


def test_a_file_without_sections_is_replaced_whole():
    assert replace_section("# written by hand\n", "a", "# A") == replace_section(None, "a", "# A")


def test_an_unclosed_section_is_an_error_not_a_silent_truncation():
    broken = replace_section(None, "a", "# A").replace("<!-- /lldmix results: a -->", "")
    with pytest.raises(ValueError, match="never closes"):
        replace_section(broken, "a", "# A2")


def test_a_tau_sweep_shows_each_labels_per_seed_values():
    """In a τ sweep the rows are "method τ=t" labels: each label's per-seed cells are that run's numbers
    (they were once looked up by method alone and printed as dashes)."""
    from lldmix_core.outcomes import RunOutcome, SpecOutcome
    from lldmix_core.results_doc import _final_kl_tables
    from lldmix_core.tau import Tau

    def run(method, tau, seed, kl):
        return RunOutcome(1, method, seed, Tau.of(tau), 1.0, 0.5, 0.0, {}, False, sampled_bits_per_byte=kl,
                          sampled_se_bits_per_byte=0.001)

    out = SpecOutcome("s", "h", 1, "c", "t", runs=[run("uniform", None, 0, 0.0300), run("aggregated-lld", 0.1, 0, 0.1500),
                                                   run("aggregated-lld", 1.0, 0, 0.0400)])
    text = "\n".join(_final_kl_tables(out, [0]))
    assert "| aggregated-lld τ=0.1 | 0.1500 ± 0.0010 |" in text and "| aggregated-lld τ=1.0 | 0.0400 ± 0.0010 |" in text
    assert "| uniform | 0.0300 ± 0.0010 |" in text


def test_distillation_is_reported_beside_the_headroom_not_counted_toward_the_mixture_goal():
    """A teacher-trained method is not a mixture: it can go past the oracle, so it never meets (or fails)
    the mixture goal; it gets its own line with its distance closed as a multiple of H."""
    from lldmix_core.headroom import summarise
    from lldmix_core.results_doc import _headroom_section

    kl = {"uniform": {0: 0.04, 1: 0.05, 2: 0.06}, "oracle": {0: 0.0, 1: 0.0, 2: 0.0},
          "iterative-lld": {0: 0.041, 1: 0.049, 2: 0.061}, "distill-kl": {0: 0.004, 1: 0.006, 2: 0.005}}
    text = "\n".join(_headroom_section(summarise(kl)))
    assert "No mixture method that needs nothing privileged captures at least half the headroom" in text
    # distill-kl: 0.045 closer on average = 0.90 × H (H = 0.05)
    assert "distill-kl trains on the target's outputs (a teacher), not on a mixture, so H does not bound it: " \
           "+0.0450 bits/byte closer than uniform" in text and "0.90 × H." in text
