"""`lld.recipe_file: PATH` — an exported recipe (`lldmix recipe export --format json|yaml`) read into a spec's
lld fields: `recipe` (or `phases`, for a phased recipe) and `domain_manifest` (its provenance's
{domain: identity}, domain_manifest.py), so the spec holds the recipe's content and hashes as if written
inline. A relative path is taken from the spec's folder. An export without a manifest (made before
versioned domains) gives no `domain_manifest`: its domains are checked by name only."""

from __future__ import annotations

from pathlib import Path

import yaml

from lldmix_core.domain_manifest import PROVENANCE_KEY
from lldmix_core.errors import UserError


def recipe_file_fields(data: dict, base_dir: Path | None) -> dict:
    """The spec's raw `lld` fields with `recipe_file` replaced by the recipe's weights (or phases) and manifest."""
    given = [k for k in ("recipe", "phases", "domain_manifest") if k in data]
    if given:
        raise UserError(f"recipe_file: give recipe_file or {given[0]}, not both")
    value = data["recipe_file"]
    if not isinstance(value, str) or not value:
        raise UserError("recipe_file: give the path of an exported recipe (json or yaml)")
    p = Path(value) if Path(value).is_absolute() or base_dir is None else Path(base_dir) / value
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))  # JSON is YAML
    except FileNotFoundError:
        raise UserError(f"recipe_file: {p} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"recipe_file: {p}: not a readable json or yaml recipe ({type(e).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("weights"), dict):
        raise UserError(f"recipe_file: {p}: has no 'weights' mapping (export it with --format json or yaml)")
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    out = {k: v for k, v in data.items() if k != "recipe_file"}
    if prov.get("phases"):
        out["phases"] = [{"until": ph["until"], "weights": ph["weights"]} for ph in prov["phases"]]
    else:
        out["recipe"] = doc["weights"]
    manifest = prov.get(PROVENANCE_KEY)
    if isinstance(manifest, dict) and isinstance(manifest.get("domains"), dict):
        out["domain_manifest"] = manifest["domains"]
    return out
