"""Fixed recipes exported in the shapes trainers take.

- json / yaml / csv: domain → weight with provenance (csv: `domain,weight` rows, provenance as `#` lines)
- hf:     a Python snippet for `datasets.interleave_datasets(datasets, probabilities=[...])`
- mosaic: a Python snippet of MosaicML Streaming `Stream(remote/local=..., proportion=...)` entries
- olmo:   an OLMo-core-style mixture YAML (source name → target ratio)
All writes go to a temp file and are renamed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
from pathlib import Path

import yaml

from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.errors import UserError

FORMATS = ("json", "yaml", "csv", "hf", "mosaic", "olmo")


def safe_filename(name: str) -> str:
    """A file name from a recipe/run name: letters, digits, '.', '_', '-' only; never a path."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "recipe"
    return cleaned[:120]


def check_weights(weights: dict[str, float], what: str = "recipe") -> None:
    if not weights:
        raise UserError(f"{what}: no domains")
    for d, w in weights.items():
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise UserError(f"{what}: weight of {d!r} must be finite and ≥ 0, got {w}")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise UserError(f"{what}: weights sum to {total:.6f}, not 1")


def render(recipe: dict, fmt: str) -> str:
    """Text of `recipe` ({name, method, weights, provenance}) in format `fmt`."""
    weights: dict[str, float] = recipe["weights"]
    check_weights(weights, f"recipe {recipe.get('name')}")
    prov = recipe.get("provenance", {})
    doc = {"name": recipe["name"], "method": recipe["method"], "weights": weights, "provenance": prov}
    domains = list(weights)
    probs = [weights[d] for d in domains]
    if fmt == "json":
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False)
    if fmt == "csv":
        buf = io.StringIO()
        for k, v in {"name": recipe["name"], "method": recipe["method"], **prov}.items():
            buf.write(f"# {k}: {json.dumps(v)}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["domain", "weight"])
        for d in domains:
            w.writerow([d, repr(float(weights[d]))])
        return buf.getvalue()
    if fmt == "hf":
        return (
            f"# {recipe['name']}: {recipe['method']} recipe for datasets.interleave_datasets\n"
            "from datasets import interleave_datasets\n\n"
            f"DOMAINS = {json.dumps(domains)}\n"
            f"PROBABILITIES = {json.dumps(probs)}\n\n"
            "# per_domain = [load_dataset(..., split='train', streaming=True).filter(...) for d in DOMAINS]\n"
            "# mixed = interleave_datasets(per_domain, probabilities=PROBABILITIES, seed=0,\n"
            "#                             stopping_strategy='all_exhausted')\n"
        )
    if fmt == "mosaic":
        lines = [f"# {recipe['name']}: {recipe['method']} recipe for MosaicML Streaming",
                 "from streaming import Stream, StreamingDataset", "", "streams = ["]
        for d in domains:
            lines.append(f"    Stream(local={json.dumps('data/' + safe_filename(d))}, proportion={weights[d]!r}),  # {d}")
        lines += ["]", "# dataset = StreamingDataset(streams=streams, batch_size=...)", ""]
        return "\n".join(lines)
    if fmt == "olmo":
        doc = {"name": recipe["name"], "method": recipe["method"], "provenance": prov,
               "sources": [{"name": d, "target_ratio": weights[d], "paths": [f"data/{safe_filename(d)}/*.npy"]}
                           for d in domains]}
        return yaml.safe_dump(doc, sort_keys=False)
    raise UserError(f"unknown recipe format {fmt!r}: use one of {', '.join(FORMATS)}")


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
