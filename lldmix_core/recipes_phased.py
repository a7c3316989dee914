"""Phased recipes: a mixture that changes at given points of the run (the two-stage recipe).

Shape (JSON): {"name": str, "method": str,
               "phases": [{"until": 0.3, "weights": {domain: w, ...}}, ..., {"until": 1.0, ...}],
               "provenance": {...}}
Phase i is in force from the previous phase's `until` (0 for the first) up to its own `until`,
both fractions of the run's optimiser steps; `until` strictly increases and the last is 1.0.
Every phase's weights are on the simplex over the same domains.
"""

from __future__ import annotations

import json
import math

import numpy as np

from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.errors import UserError
from lldmix_core.recipe_check import check_weights


def check_phased(recipe: dict, what: str = "phased recipe") -> None:
    """Raise UserError (one line, naming the field) unless `recipe` is a valid phased recipe."""
    if not isinstance(recipe, dict):
        raise UserError(f"{what}: must be a mapping")
    for key in ("name", "method"):
        if not isinstance(recipe.get(key), str) or not recipe[key]:
            raise UserError(f"{what}: '{key}' must be a non-empty string")
    phases = recipe.get("phases")
    if not isinstance(phases, list) or not phases:
        raise UserError(f"{what}: 'phases' must be a non-empty list")
    prev, domains = 0.0, None
    for i, ph in enumerate(phases):
        where = f"{what}: phases[{i}]"
        if not isinstance(ph, dict) or set(ph) != {"until", "weights"}:
            raise UserError(f"{where} must have exactly 'until' and 'weights'")
        until = ph["until"]
        if isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until) \
                or not prev < until <= 1.0:
            raise UserError(f"{where}.until must be in ({prev}, 1], got {until!r}")
        if not isinstance(ph["weights"], dict):
            raise UserError(f"{where}.weights must be a mapping domain → weight")
        check_weights(ph["weights"], f"{where}.weights")
        if domains is None:
            domains = list(ph["weights"])
        elif set(ph["weights"]) != set(domains):
            raise UserError(f"{where}.weights: domains differ from phases[0]")
        prev = float(until)
    if prev != 1.0:
        raise UserError(f"{what}: the last phase's 'until' must be 1.0 (the phases must cover the run), got {prev}")
    if "provenance" in recipe and not isinstance(recipe["provenance"], dict):
        raise UserError(f"{what}: 'provenance' must be a mapping")


def phased_from_arrays(name: str, method: str, domains: list[str], phases, provenance: dict | None = None) -> dict:
    """[(until_fraction, weights [K]), ...] (e.g. mathcore.phases.two_stage_phases) → a checked recipe."""
    recipe = {"name": name, "method": method,
              "phases": [{"until": float(u), "weights": {d: float(w) for d, w in zip(domains, np.asarray(ws))}}
                         for u, ws in phases],
              "provenance": dict(provenance or {})}
    if any(len(np.asarray(ws)) != len(domains) for _, ws in phases):
        raise UserError(f"phased recipe {name}: each phase needs {len(domains)} weights")
    check_phased(recipe, f"phased recipe {name}")
    return recipe


def weights_at(recipe: dict, fraction: float) -> dict[str, float]:
    """The phase's weights in force at `fraction` ∈ [0, 1] of the run (a phase covers [prev, until))."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    for ph in recipe["phases"]:
        if fraction < ph["until"]:
            return dict(ph["weights"])
    return dict(recipe["phases"][-1]["weights"])


def phased_to_json(recipe: dict) -> str:
    check_phased(recipe, f"phased recipe {recipe.get('name') if isinstance(recipe, dict) else ''}")
    doc = {"name": recipe["name"], "method": recipe["method"], "phases": recipe["phases"],
           "provenance": recipe.get("provenance", {})}
    return json.dumps(doc, indent=2) + "\n"


def phased_from_json(text: str, what: str = "phased recipe") -> dict:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{what}: not valid JSON ({e.msg} at line {e.lineno})") from None
    check_phased(doc, what)
    doc.setdefault("provenance", {})
    return doc


def export_phased(recipe: dict, path) -> None:
    """Write the recipe as JSON (temp file, then rename: nothing half written)."""
    atomic_write_bytes(path, phased_to_json(recipe).encode())


def load_phased(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read phased recipe ({e.strerror})") from None
    return phased_from_json(text, str(path))
