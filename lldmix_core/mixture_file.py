"""Known mixtures as data: a small YAML file holding one named mixture over domains, read and written here
(the only module that knows the format). Benchmark truths (`truths: [{name, mixture_file}]`) and trained
targets (`target.train.mixture_file`) load from it.

    schema_version: 1
    name: paper-x2                 # letters, digits, . _ - (at most 40 characters)
    unit: percent                  # or fraction
    weights: {Python: 20, C++: 20, JSON: 60}
    description: the paper's code-heavy mixture      # optional
    source: Kishino et al. 2026, §4.1                # optional

Weights are finite and ≥ 0; percentages sum to 100 and fractions to 1 (within 1e-6 of the fraction
scale); a domain listed twice, an unknown key or a wrong type is a one-line UserError naming the file and
the field. Writing is atomic (temp file + rename) and round-trips: `load_mixture(write_mixture(p, m))
== m`. Pure apart from reading and writing that one file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.errors import UserError
from lldmix_core.recipe_check import SUM_TOLERANCE  # the simplex check's: |Σ weights / total − 1| ≤ this
from lldmix_core.yaml_strict import NoDuplicatesLoader

SCHEMA_VERSION = 1
UNITS = {"fraction": 1.0, "percent": 100.0}  # unit → what the weights sum to
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
_REQUIRED = ("schema_version", "name", "unit", "weights")
_OPTIONAL = ("description", "source")


@dataclass(frozen=True)
class Mixture:
    """One named mixture. `weights`: {domain: weight} as written, in `unit` ("fraction": they sum to 1;
    "percent": to 100); `fractions` is the same mixture on the simplex."""

    name: str
    unit: str
    weights: dict[str, float]
    description: str = ""
    source: str = ""
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def fractions(self) -> dict[str, float]:
        """{domain: share} summing to 1 (the written weights divided by their sum)."""
        total = sum(self.weights.values())
        return {d: w / total for d, w in self.weights.items()}


def parse_mixture(data: object, source: str) -> Mixture:
    """Validate one mixture document (the YAML's mapping); `source` names it in errors (a file path)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a mixture file is a YAML mapping with {', '.join(_REQUIRED)}")
    unknown = [str(k) for k in data if k not in _REQUIRED + _OPTIONAL]
    if unknown:
        raise UserError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(_REQUIRED + _OPTIONAL)})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise UserError(f"{source}: {missing[0]}: required")
    version = data["schema_version"]
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise UserError(f"{source}: schema_version: {version!r} is not supported (this lldmix reads {SCHEMA_VERSION})")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{source}: name: {name!r} must be 1–40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    unit = data["unit"]
    if unit not in UNITS:
        raise UserError(f"{source}: unit: {unit!r} must be one of {', '.join(UNITS)}")
    for key in _OPTIONAL:
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{source}: {key}: must be text")
    weights = _weights(data["weights"], unit, source)
    return Mixture(name, unit, weights, data.get("description", ""), data.get("source", ""), version)


def _weights(raw: object, unit: str, source: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{source}: weights: give a mapping of domain → weight")
    out: dict[str, float] = {}
    for d, w in raw.items():
        if not isinstance(d, str) or not d.strip():
            raise UserError(f"{source}: weights: domain {d!r} must be a non-empty name")
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise UserError(f"{source}: weights.{d}: {w!r} is not a number")
        if not math.isfinite(w) or w < 0:
            raise UserError(f"{source}: weights.{d}: must be finite and ≥ 0, got {w}")
        out[d] = float(w)
    total, expected = sum(out.values()), UNITS[unit]
    if not abs(total / expected - 1.0) <= SUM_TOLERANCE:
        what = "percentages" if unit == "percent" else "fractions"
        raise UserError(f"{source}: weights: {what} sum to {total:.9g}, not {expected:g} (tolerance {SUM_TOLERANCE:g} "
                        f"of the total)")
    return out


def load_mixture(path: str | Path) -> Mixture:
    """Read and validate a mixture file (UserError naming the file and the field on anything wrong)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"mixture file {p} does not exist")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=NoDuplicatesLoader)  # noqa: S506 (a SafeLoader subclass)
    except UnicodeDecodeError:
        raise UserError(f"mixture file {p} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise UserError(f"{p}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_mixture(data, str(p))


def mixture_text(m: Mixture) -> str:
    """The mixture as the YAML the file holds (keys in the documented order; floats written exactly)."""
    doc = {"schema_version": m.schema_version, "name": m.name, "unit": m.unit, "weights": dict(m.weights)}
    if m.description:
        doc["description"] = m.description
    if m.source:
        doc["source"] = m.source
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def write_mixture(path: str | Path, m: Mixture) -> Path:
    """Write `m` to `path` atomically (temp file + rename), after checking it reads back as itself: an
    invalid mixture is a UserError and nothing is written."""
    p = Path(path)
    text = mixture_text(m)
    back = parse_mixture(yaml.load(text, Loader=NoDuplicatesLoader), str(p))  # noqa: S506
    if back != m:
        raise UserError(f"{p}: the mixture would not read back as written")
    atomic_write_bytes(p, text.encode("utf-8"))
    return p


def resolve_mixture_file(value: object, base_dir: Path | None, what: str) -> dict[str, float]:
    """A `mixture_file:` field's value → its fractions; a relative path is taken from `base_dir` (the folder
    of the spec or benchmark file naming it; the current folder when None). `what` names the field."""
    if not isinstance(value, str) or not value:
        raise UserError(f"{what}: give the path of a mixture file")
    p = Path(value)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return load_mixture(p).fractions
