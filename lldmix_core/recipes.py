"""Fixed recipes exported in the shapes trainers take (each format is checked by its library in
tests/test_recipes_exports.py; docs/RECIPES.md shows how to use each).

- json / yaml:  {name, method, weights, provenance}
- csv:          a plain table, header `domain,weight`, one row per domain (pandas/spreadsheets read it)
- provenance:   the CSV's sidecar, JSON {name, method, provenance}
- hf:           a Python module: DOMAINS, PROBABILITIES, mix(per_domain) → datasets.interleave_datasets
- mosaic:       an llm-foundry-style YAML `streams: {domain: {local, proportion}}` for MosaicML Streaming
- olmo:         an OLMo-core SourceMixtureList YAML `sources: [{source_name, target_ratio, paths}]`
- megatron:     Megatron-LM's `--data-path w1 prefix1 w2 prefix2 …` argument line
- nanotron:     nanotron's Nanoset `dataset_folder: {folder: weight}` data-stage YAML

Every format carries the same `method` string (the stored recipe's). Trainer formats leave out
zero-weight domains (OLMo-core rejects target_ratio 0; Hugging Face's `all_exhausted` strategy
would never finish a domain that is never drawn). All writes go to a temp file and are renamed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path

import yaml

from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.errors import UserError
from lldmix_core.recipe_check import check_weights  # noqa: F401  (re-exported: recipes.check_weights)
from lldmix_core.recipes_phased import phased_to_json

FORMATS = ("json", "yaml", "csv", "provenance", "hf", "mosaic", "olmo", "megatron", "nanotron")
TRAINER_FORMATS = ("hf", "mosaic", "olmo", "megatron", "nanotron")
# file suffix and MIME type of each format's download
FILE_TYPES = {
    "json": (".json", "application/json"), "yaml": (".yaml", "application/x-yaml"),
    "csv": (".csv", "text/csv"), "provenance": (".provenance.json", "application/json"),
    "hf": (".hf.py", "text/x-python"), "mosaic": (".mosaic.yaml", "application/x-yaml"),
    "olmo": (".olmo.yaml", "application/x-yaml"), "megatron": (".megatron.txt", "text/plain"),
    "nanotron": (".nanotron.yaml", "application/x-yaml"),
    "phases": (".phases.json", "application/json"),  # PHASED_FORMAT
}
# A phased recipe (two-stage aggregated-LLD) also exports its phases, as recipes_phased's JSON
PHASED_FORMAT = "phases"


def safe_filename(name: str) -> str:
    """A file name from a recipe/run name: letters, digits, '.', '_', '-' only; never a path."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "recipe"
    return cleaned[:120]


def positive_weights(weights: dict[str, float]) -> dict[str, float]:
    """The domains a trainer draws from: those of weight > 0 (the weights are kept as they are; the
    ones left out are 0, so the rest still sum to 1)."""
    return {d: float(w) for d, w in weights.items() if w > 0}


def data_prefix(domain: str) -> str:
    """Where the trainer formats expect a domain's data, relative to the data root: `data/<domain>`."""
    return f"data/{safe_filename(domain)}"




def phases_of(recipe: dict) -> list[dict] | None:
    """The recipe's phases [{until, weights}, …] when it is phased (trained phase by phase), else None."""
    return (recipe.get("provenance") or {}).get("phases") or None


def render(recipe: dict, fmt: str) -> str:
    """Text of `recipe` ({name, method, weights, provenance}) in format `fmt`; the trainer formats that take
    comments open with the repetition warning when provenance["repetition"] has one (lldmix_core/repetition.py)."""
    text = _render(recipe, fmt)
    warning = ((recipe.get("provenance") or {}).get("repetition") or {}).get("warning")
    if warning and fmt in ("hf", "mosaic", "olmo", "nanotron"):
        text = f"# {warning}\n" + text
    return text


def _render(recipe: dict, fmt: str) -> str:
    if fmt == PHASED_FORMAT:
        if phases_of(recipe) is None:
            raise UserError(f"recipe {recipe.get('name')}: has no phases (only a phased estimator's recipe, "
                            f"e.g. lld.aggregation two-stage, has); export json instead")
        prov = {k: v for k, v in recipe.get("provenance", {}).items() if k != "phases"}
        return phased_to_json({"name": recipe["name"], "method": recipe["method"], "phases": phases_of(recipe),
                               "provenance": prov})
    weights: dict[str, float] = recipe["weights"]
    check_weights(weights, f"recipe {recipe.get('name')}")
    prov = recipe.get("provenance", {})
    name, method = recipe["name"], recipe["method"]
    doc = {"name": name, "method": method, "weights": weights, "provenance": prov}
    drawn = positive_weights(weights)
    if fmt in TRAINER_FORMATS and len({data_prefix(d) for d in drawn}) < len(drawn):
        raise UserError(f"recipe {name}: two domains share a data folder name ({', '.join(drawn)}); "
                        f"export json, yaml or csv instead")
    header = f"{name}: {method} recipe"
    if fmt == "json":
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["domain", "weight"])
        for d in weights:
            w.writerow([d, repr(float(weights[d]))])
        return buf.getvalue()
    if fmt == "provenance":
        return json.dumps({"name": name, "method": method, "provenance": prov}, indent=2) + "\n"
    if fmt == "hf":
        return (
            f"# {header} for Hugging Face datasets.interleave_datasets (zero-weight domains left out)\n"
            "from datasets import interleave_datasets\n\n"
            f"NAME = {json.dumps(name)}\nMETHOD = {json.dumps(method)}\n"
            f"DOMAINS = {json.dumps(list(drawn))}\n"
            f"PROBABILITIES = {json.dumps(list(drawn.values()))}\n\n\n"
            "def mix(per_domain, seed=0, stopping_strategy=\"all_exhausted\"):\n"
            "    \"\"\"per_domain: one dataset per entry of DOMAINS, in that order. 'all_exhausted' repeats a\n"
            "    finished domain until every domain has been seen once; 'first_exhausted' (the library's\n"
            "    default) stops at the first finished domain, which truncates the mixture.\"\"\"\n"
            "    return interleave_datasets(list(per_domain), probabilities=PROBABILITIES, seed=seed,\n"
            "                               stopping_strategy=stopping_strategy)\n"
        )
    if fmt == "mosaic":
        out = {"name": name, "method": method,
               "streams": {d: {"local": data_prefix(d), "proportion": w} for d, w in drawn.items()}}
        return (f"# {header} for MosaicML Streaming (llm-foundry `dataset.streams`). Proportions are\n"
                "# relative; set the dataset's epoch_size to the samples you want per epoch (without it an\n"
                "# epoch is the sum of all streams' sizes, and small streams are repeated to fit).\n"
                + yaml.safe_dump(out, sort_keys=False))
    if fmt == "olmo":
        out = {"sources": [{"source_name": d, "target_ratio": w, "paths": [f"{data_prefix(d)}/*.npy"]}
                           for d, w in drawn.items()]}
        return (f"# {header}: an OLMo-core SourceMixtureList (target ratios sum to 1)\n"
                f"# method: {method}\n" + yaml.safe_dump(out, sort_keys=False))
    if fmt == "megatron":
        parts = " ".join(f"{w!r} {data_prefix(d)}_text_document" for d, w in drawn.items())
        return f"--data-path {parts}\n"
    if fmt == "nanotron":
        out = {"data_stages": [{"name": name, "start_training_step": 1, "data": {
            "dataset": {"dataset_folder": {data_prefix(d): w for d, w in drawn.items()}}}}]}
        return f"# {header} for nanotron's Nanoset (weights per tokenized folder)\n# method: {method}\n" \
            + yaml.safe_dump(out, sort_keys=False)
    raise UserError(f"unknown recipe format {fmt!r}: use one of {', '.join(FORMATS)} (or {PHASED_FORMAT} for a phased recipe)")


LABELS = {"json": "JSON", "yaml": "YAML", "csv": "CSV", "provenance": "provenance (CSV sidecar)",
          "hf": "Hugging Face datasets", "mosaic": "MosaicML Streaming", "olmo": "OLMo-core",
          "megatron": "Megatron-LM", "nanotron": "nanotron"}

# how to use each download (FILE is replaced by the download's name); docs/RECIPES.md has the same,
# and tests/test_recipes_exports.py runs each through its library
_USAGE = {
    "json": ("python", 'import json\nweights = json.load(open("FILE"))["weights"]  # domain -> weight, sums to 1'),
    "yaml": ("python", 'import yaml\nweights = yaml.safe_load(open("FILE"))["weights"]'),
    "csv": ("python", 'import pandas as pd\ndf = pd.read_csv("FILE")  # columns: domain, weight\n'
            'weights = dict(zip(df["domain"], df["weight"]))'),
    "provenance": ("python", 'import json\nprov = json.load(open("FILE"))  # name, method, provenance (τ, steps, corpus hash …)'),
    "hf": ("python", 'import runpy\nrecipe = runpy.run_path("FILE")\n'
           '# one datasets.Dataset (or IterableDataset) per domain, in the order of recipe["DOMAINS"]\n'
           'mixed = recipe["mix"]([by_domain[d] for d in recipe["DOMAINS"]], seed=0)'),
    "mosaic": ("python", 'import yaml\nfrom streaming import Stream, StreamingDataset\n'
               'cfg = yaml.safe_load(open("FILE"))\n'
               'streams = [Stream(local=s["local"], proportion=s["proportion"]) for s in cfg["streams"].values()]\n'
               '# proportions are relative; epoch_size = samples per epoch (default: all streams\' samples)\n'
               'dataset = StreamingDataset(streams=streams, epoch_size=1_000_000, batch_size=64)'),
    "olmo": ("python", 'import yaml\nfrom olmo_core.data.source_mixture import (SourceMixtureConfig, '
             'SourceMixtureDatasetConfig, SourceMixtureList)\n'
             'sources = [SourceMixtureConfig(**s) for s in yaml.safe_load(open("FILE"))["sources"]]\n'
             'mixture = SourceMixtureDatasetConfig(source_list=SourceMixtureList(sources=sources),\n'
             '                                     requested_tokens=10**9, global_batch_size=4 * 2048)'),
    "megatron": ("bash", 'torchrun pretrain_gpt.py $(cat FILE) ...   # prefixes: data/<domain>_text_document'),
    "nanotron": ("bash", '# put the file\'s data_stages into your nanotron config (dataset_folder: folder -> weight)\n'
                 'python -c "import yaml; print(yaml.safe_load(open(\'FILE\'))[\'data_stages\'])"'),
}


def usage(recipe: dict, fmt: str) -> tuple[str, str]:
    """(language, code) showing how to use `recipe` downloaded in `fmt`."""
    lang, code = _USAGE[fmt]
    return lang, code.replace("FILE", download_name(recipe, fmt))


def download_name(recipe: dict, fmt: str) -> str:
    """File name for a download of `recipe` in `fmt`."""
    return safe_filename(recipe["name"]) + FILE_TYPES[fmt][0]


def check_export_target(path) -> Path:
    """Refuse any target that is not a regular file or a new name in an existing folder: a folder, a
    symlink, a device, a FIFO or a socket is never renamed over (`--out /dev/null` as root would
    replace the device)."""
    p = Path(path)
    if str(path).endswith(("/", os.sep)) or p.is_dir():
        raise UserError(f"--out {path}: is a folder; give a file name (e.g. {p / 'recipe.json'})")
    try:
        st = p.lstat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise UserError(f"--out {path}: is {kind}; refusing to replace it (write to a regular file)")
    if not p.parent.is_dir():
        raise UserError(f"--out {path}: folder {p.parent} does not exist")
    return p


def export(recipe: dict, fmt: str, path) -> None:
    """Write the recipe to `path` (a regular file) through a temp file in the same folder."""
    text = render(recipe, fmt).encode()  # bad formats fail before anything is written
    p = check_export_target(path)
    atomic_write_bytes(p, text)
