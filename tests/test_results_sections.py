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
