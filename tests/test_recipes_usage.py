"""The snippets the Recipes page and docs/RECIPES.md show, run as written on the downloaded files;
and the plain CSV (issue 17): a header row, one row per domain, read by pandas and the csv module."""

from __future__ import annotations

import csv
from collections import Counter

import pandas as pd
import pytest

from lldmix_core.recipes import FORMATS, data_prefix, download_name, export, render, usage
from tests.test_recipes_exports import DRAWN, RECIPE, _streaming_base, _write_mds


def run_snippet(recipe, fmt, folder, monkeypatch, **env):
    """Export `recipe` in `fmt` into `folder` under its download name and run the page's snippet there."""
    export(recipe, fmt, folder / download_name(recipe, fmt))
    lang, code = usage(recipe, fmt)
    assert lang == "python"
    monkeypatch.chdir(folder)
    scope = dict(env)
    exec(compile(code, f"<{fmt} snippet>", "exec"), scope)
    return scope


@pytest.mark.parametrize("fmt", ["json", "yaml", "csv"])
def test_weight_snippets_give_back_the_weights(fmt, tmp_path, monkeypatch):
    got = run_snippet(RECIPE, fmt, tmp_path, monkeypatch)["weights"]
    assert got == RECIPE["weights"]  # exact: floats are written with repr


def test_csv_is_a_plain_table_and_provenance_is_a_sidecar(tmp_path, monkeypatch):
    text = render(RECIPE, "csv")
    assert text.splitlines()[0] == "domain,weight" and not any(l.startswith("#") for l in text.splitlines())
    path = tmp_path / "r.csv"
    export(RECIPE, "csv", path)
    df = pd.read_csv(path)
    assert list(df.columns) == ["domain", "weight"] and len(df) == len(RECIPE["weights"])
    with path.open(newline="") as f:  # what a spreadsheet import does: RFC 4180 rows
        rows = list(csv.reader(f))
    assert rows[0] == ["domain", "weight"] and [r[0] for r in rows[1:]] == list(RECIPE["weights"])
    prov = run_snippet(RECIPE, "provenance", tmp_path, monkeypatch)["prov"]
    assert prov == {"name": RECIPE["name"], "method": RECIPE["method"], "provenance": RECIPE["provenance"]}


def test_one_method_name_in_every_format_that_names_one():
    for fmt in FORMATS:
        text = render(RECIPE, fmt)
        if fmt not in ("csv", "megatron"):  # a plain table and an argument line name no method
            assert RECIPE["method"] in text, fmt
        assert "aggregated-lld-geometric" not in text.replace(RECIPE["method"], ""), fmt


def test_hf_snippet_mixes_per_domain_datasets(tmp_path, monkeypatch):
    from datasets import Dataset

    by_domain = {d: Dataset.from_dict({"domain": [d] * 500}) for d in RECIPE["weights"]}
    mixed = run_snippet(RECIPE, "hf", tmp_path, monkeypatch, by_domain=by_domain)["mixed"]
    assert set(mixed["domain"]) == set(DRAWN)


def test_mosaic_snippet_builds_a_streaming_dataset(tmp_path, monkeypatch):
    sb = _streaming_base()
    _write_mds(sb, tmp_path, {d: 20 for d in DRAWN})
    sb.util.clean_stale_shared_memory()
    ds = run_snippet(RECIPE, "mosaic", tmp_path, monkeypatch)["dataset"]
    assert ds.epoch_size == 1_000_000
    # the library's allocation per stream: floor(epoch·p), plus at most one for the shortfall
    for stream, (d, p) in zip(ds.streams, DRAWN.items()):
        assert stream.local == data_prefix(d)
        assert abs(stream.choose - 1_000_000 * p) < 1, (d, stream.choose)
    assert Counter(s["domain"] for s in (ds[i] for i in range(len(DRAWN) * 20))).keys() == set(DRAWN)


def test_domains_whose_folder_names_collide_are_refused_in_trainer_formats():
    from lldmix_core.errors import UserError
    from lldmix_core.recipes import TRAINER_FORMATS

    clash = {**RECIPE, "weights": {"A B": 0.5, "A_B": 0.5}}
    for fmt in TRAINER_FORMATS:
        with pytest.raises(UserError, match="data folder"):
            render(clash, fmt)
    assert render(clash, "csv").splitlines()[1:] == ["A B,0.5", "A_B,0.5"]
