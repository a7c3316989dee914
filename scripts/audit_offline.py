"""Audit constraints.txt against a local copy of the PyPA advisory database (OSV YAML files), for
machines where pip-audit cannot reach a vulnerability service.

    python scripts/audit_offline.py /path/to/advisory-database [constraints.txt]

A pin is reported when its version is listed in an advisory's `versions` or falls in one of its
ECOSYSTEM ranges (introduced ≤ v < fixed, or ≤ last_affected); withdrawn advisories are skipped.
Exit 1 when any pin is affected.
The result is only as recent as the advisory snapshot: the script prints its newest advisory date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _affected(v: Version, entry: dict) -> bool:
    if str(v) in {str(x) for x in entry.get("versions", [])}:
        return True
    for rng in entry.get("ranges", []):
        if rng.get("type") != "ECOSYSTEM":
            continue
        lo, hit = None, False
        for ev in rng.get("events", []):
            try:
                if "introduced" in ev:
                    lo = Version("0") if ev["introduced"] == "0" else Version(str(ev["introduced"]))
                elif "fixed" in ev and lo is not None:
                    hit |= lo <= v < Version(str(ev["fixed"]))
                    lo = None
                elif "last_affected" in ev and lo is not None:
                    hit |= lo <= v <= Version(str(ev["last_affected"]))
                    lo = None
            except InvalidVersion:
                continue
        if lo is not None and v >= lo:  # introduced, never fixed
            hit = True
        if hit:
            return True
    return False


def main(db: Path, constraints: Path) -> int:
    vulns = db / "vulns"
    if not vulns.is_dir():
        print(f"error: {db} has no vulns/ folder (expected a checkout of github.com/pypa/advisory-database)")
        return 2
    folders = {_norm(p.name): p for p in vulns.iterdir() if p.is_dir()}
    pins, findings, newest = 0, [], ""
    for line in constraints.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#+]+)", line.strip())
        if not m:
            continue
        pins += 1
        name, version = _norm(m.group(1)), Version(m.group(2))
        for adv in sorted(folders.get(name, Path("/nonexistent")).glob("*.yaml")):
            doc = yaml.safe_load(adv.read_text())
            newest = max(newest, str(doc.get("modified", "")))
            if doc.get("withdrawn"):  # retracted advisories (e.g. disputed CVEs) do not count
                continue
            for entry in doc.get("affected", []):
                if _norm(entry.get("package", {}).get("name", "")) == name and _affected(version, entry):
                    findings.append(f"{m.group(1)}=={version}: {doc['id']} {doc.get('summary') or doc.get('details', '')[:90]}")
    for f in findings:
        print(f)
    print(f"audit (offline, PyPA advisory database, newest advisory read {newest[:10] or 'none'}): {pins} pins, "
          f"{len({f.split(':')[0] for f in findings})} affected, {len(findings)} advisories")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "constraints.txt")))
