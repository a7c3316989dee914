"""Each trainer format, read back by the library that uses it (or by its documented parsing rules
where the library cannot be installed here), sampled, and its domain frequencies compared with the
recipe. Every sampler is seeded, so each test is deterministic; the bounds are a chi-square quantile
at p = 0.001 (iid draws) or ±1 sample (the deterministic blenders), and each test also checks that
the same draws reject a uniform mixture (so the comparison can fail)."""

from __future__ import annotations

import argparse
import importlib.util
import runpy
import shlex
import sys
import types
from collections import Counter

import numpy as np
import pytest
import yaml
from scipy.stats import chi2

from lldmix_core.recipes import data_prefix, export, render

# a non-uniform recipe with a zero-weight domain and names that are not file names
RECIPE = {"name": "t.aggregated-lld.seed0", "method": "aggregated-lld-geometric",
          "weights": {"Github": 0.45, "Pile-CC": 0.25, "DM Mathematics": 0.17, "Ubuntu IRC": 0.08,
                      "Enron/Emails": 0.05, "EuroParl": 0.0},
          "provenance": {"tau": 1.0, "corpus_hash": "abc"}}
DRAWN = {d: w for d, w in RECIPE["weights"].items() if w > 0}


def chi_square(counts: dict[str, int], probs: dict[str, float]) -> float:
    """Pearson's X² of observed counts against expected n·p over the domains of `probs`."""
    n = sum(counts.values())
    assert set(counts) <= set(probs), f"drew domains outside the recipe: {set(counts) - set(probs)}"
    return sum((counts.get(d, 0) - n * p) ** 2 / (n * p) for d, p in probs.items())


def assert_matches_recipe(counts: dict[str, int]) -> None:
    """Counts of iid draws agree with DRAWN (X² below its 0.999 quantile) and reject uniform."""
    limit = chi2.ppf(0.999, df=len(DRAWN) - 1)
    assert chi_square(counts, DRAWN) < limit, (counts, DRAWN)
    uniform = {d: 1 / len(DRAWN) for d in DRAWN}
    assert chi_square(counts, uniform) > 10 * limit  # the same draws tell the recipe from uniform


def exported(tmp_path, fmt: str):
    path = tmp_path / f"recipe.{fmt}"
    export(RECIPE, fmt, path)
    return path


# ------------------------------------------------------------------ Hugging Face datasets
def test_hf_interleave_datasets_draws_in_the_recipe_proportions(tmp_path):
    from datasets import Dataset

    mod = runpy.run_path(str(exported(tmp_path, "hf")))  # the exported file, run as a user would
    assert mod["DOMAINS"] == list(DRAWN) and mod["METHOD"] == RECIPE["method"]
    per_domain = [Dataset.from_dict({"domain": [d] * 2000, "i": list(range(2000))}) for d in mod["DOMAINS"]]
    mixed = mod["mix"](per_domain, seed=1234)  # stopping_strategy="all_exhausted"
    n = 4000  # each domain has 2000 rows, and the draws are iid, so the first n are a multinomial sample
    assert len(mixed) > n
    counts = Counter(mixed.select(range(n))["domain"])
    assert_matches_recipe(counts)
    # all_exhausted: every row of every drawn domain appears at least once
    assert Counter(mixed["domain"]).keys() == set(DRAWN) and min(Counter(mixed["domain"]).values()) >= 2000


# ------------------------------------------------------------------ MosaicML Streaming
def _streaming_base():
    """streaming.base (MDSWriter, Stream, StreamingDataset) without the package's __init__, which also
    imports its vision datasets and so torchvision (no CPU wheel of it matches this torch)."""
    if "streaming" not in sys.modules:
        spec = importlib.util.find_spec("streaming")
        if spec is None:
            pytest.skip("mosaicml-streaming is not installed (scripts/setup.sh --test installs it)")
        pkg = types.ModuleType("streaming")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["streaming"] = pkg
    import streaming.base as sb

    # what `from streaming import Stream, StreamingDataset` gives (the same classes)
    sys.modules["streaming"].Stream, sys.modules["streaming"].StreamingDataset = sb.Stream, sb.StreamingDataset
    return sb


def _write_mds(sb, root, sizes: dict[str, int]) -> None:
    for d, n in sizes.items():
        with sb.MDSWriter(out=str(root / data_prefix(d)), columns={"domain": "str", "i": "int"}) as w:
            for i in range(n):
                w.write({"domain": d, "i": i})


def _dataset(sb, root, cfg, **kw):
    streams = [sb.Stream(local=str(root / s["local"]), proportion=s["proportion"]) for s in cfg["streams"].values()]
    return sb.StreamingDataset(streams=streams, batch_size=1, shuffle=True, shuffle_seed=7, **kw)


def test_mosaic_streams_draw_in_the_recipe_proportions(tmp_path):
    sb = _streaming_base()
    cfg = yaml.safe_load(exported(tmp_path, "mosaic").read_text())
    assert cfg["method"] == RECIPE["method"]
    assert {d: s["proportion"] for d, s in cfg["streams"].items()} == DRAWN
    sizes = {"Github": 30, "Pile-CC": 200, "DM Mathematics": 50, "Ubuntu IRC": 120, "Enron/Emails": 10}
    root = tmp_path / "mds"
    _write_mds(sb, root, sizes)
    sb.util.clean_stale_shared_memory()
    epoch = 1000
    ds = _dataset(sb, root, cfg, epoch_size=epoch)
    counts = Counter(s["domain"] for s in ds)
    assert sum(counts.values()) == epoch == len(ds)
    # Streaming chooses floor(epoch·p) samples per stream and hands the shortfall out one by one
    for d, p in DRAWN.items():
        assert abs(counts[d] - epoch * p) < 1, (d, counts[d], epoch * p)
    assert counts["Github"] > sizes["Github"]  # a small stream is repeated to meet its proportion


def test_mosaic_without_epoch_size_an_epoch_is_the_sum_of_the_streams(tmp_path):
    """Why docs/RECIPES.md says to set epoch_size: without it the proportions still hold, but an
    epoch is as many samples as all streams hold together, whatever the token budget."""
    sb = _streaming_base()
    cfg = yaml.safe_load(exported(tmp_path, "mosaic").read_text())
    sizes = {"Github": 30, "Pile-CC": 200, "DM Mathematics": 50, "Ubuntu IRC": 120, "Enron/Emails": 10}
    root = tmp_path / "mds"
    _write_mds(sb, root, sizes)
    sb.util.clean_stale_shared_memory()
    ds = _dataset(sb, root, cfg)
    assert len(ds) == sum(sizes.values())
    counts = Counter(s["domain"] for s in ds)
    for d, p in DRAWN.items():
        assert abs(counts[d] - len(ds) * p) < 1


# ------------------------------------------------------------------ Megatron-LM and nanotron
def blend_indices(weights: list[float], n: int) -> np.ndarray:
    """Reference for Megatron-LM's (and nanotron's Nanoset's) blending index: sample i goes to the
    dataset whose count lags its share weight·i the most (a deterministic, greedy blender)."""
    counts = np.zeros(len(weights))
    out = np.empty(n, dtype=np.int64)
    w = np.asarray(weights)
    for i in range(n):
        j = int(np.argmax(w * max(i, 1) - counts))
        out[i] = j
        counts[j] += 1
    return out


def test_blend_reference_matches_the_documented_example():
    """nanotron's Nanoset documentation works one blend by hand: weights [0.1, 0.5, 0.3, 0.1], 20 samples."""
    documented = [1, 2, 0, 1, 3, 1, 2, 1, 2, 1, 0, 1, 2, 1, 3, 1, 2, 1, 2, 1]
    assert blend_indices([0.1, 0.5, 0.3, 0.1], 20).tolist() == documented


def test_megatron_data_path_parses_back_to_the_recipe(tmp_path):
    line = exported(tmp_path, "megatron").read_text()
    # Megatron's argument: `--data-path` takes a list; pairs are (weight, prefix); weights are relative
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-path", nargs="*")
    blend = parser.parse_args(shlex.split(line)).data_path
    assert len(blend) % 2 == 0
    weights = [float(x) for x in blend[0::2]]
    prefixes = blend[1::2]
    assert prefixes == [f"{data_prefix(d)}_text_document" for d in DRAWN]
    weights = [w / sum(weights) for w in weights]  # Megatron normalises the weights
    n = 5000
    counts = Counter(list(DRAWN)[j] for j in blend_indices(weights, n))
    for d, p in DRAWN.items():
        assert abs(counts[d] - n * p) <= 1, (d, counts[d], n * p)
    assert chi_square(counts, {d: 1 / len(DRAWN) for d in DRAWN}) > 100


def test_nanotron_dataset_folder_weights(tmp_path):
    cfg = yaml.safe_load(exported(tmp_path, "nanotron").read_text())
    folders = cfg["data_stages"][0]["data"]["dataset"]["dataset_folder"]
    assert list(folders) == [data_prefix(d) for d in DRAWN]
    weights = np.array(list(folders.values()))
    n = 3000
    counts = Counter(list(DRAWN)[j] for j in blend_indices(list(weights / weights.sum()), n))
    for d, p in DRAWN.items():
        assert abs(counts[d] - n * p) <= 1


# ------------------------------------------------------------------ OLMo-core
def test_olmo_source_mixture_follows_its_schema(tmp_path):
    """OLMo-core's SourceMixtureList as its config classes define it (ai2-olmo-core is not installed:
    its data module imports cached_path and cloud clients): source_name, target_ratio in (0, 1],
    paths; ratios summing to 1 (np.allclose); each source gets int(requested_tokens·target_ratio)."""
    cfg = yaml.safe_load(exported(tmp_path, "olmo").read_text())
    sources = cfg["sources"]
    assert all(set(s) == {"source_name", "target_ratio", "paths"} for s in sources)
    assert all(0 < s["target_ratio"] <= 1 and isinstance(s["paths"], list) for s in sources)
    assert np.allclose(sum(s["target_ratio"] for s in sources), 1.0)
    requested = 1_000_000
    alloc = {s["source_name"]: int(requested * s["target_ratio"]) for s in sources}
    assert alloc == {d: int(requested * w) for d, w in DRAWN.items()}
    assert "EuroParl" not in alloc  # target_ratio 0 is rejected by OLMo-core, so it is left out


def test_every_format_names_the_same_method():
    for fmt in ("json", "yaml", "provenance", "hf", "mosaic", "olmo", "nanotron"):
        assert RECIPE["method"] in render(RECIPE, fmt), fmt
