"""τ, the LLD temperature, as one value from the spec to the database, MLflow and the run key.

A setting (`Tau`) is one of
    a number > 0   softmax(Δ/τ)·prior at that τ; math.inf gives the prior at every step (no pass 1)
    "auto"         τ = the spread of Δ (max − min over domains, in the unit of Δ: nats/token or
                   nats/byte) at the run's first estimate (mathcore.resolve_tau)
    none           the method has no τ (uniform, fixed, the oracle, distillation)
There is no τ schedule among the settings: the `anneal` estimator (estimators.py) anneals inside one
aggregation, from pass 1's resolved τ; it is not a setting of a run.

Its forms, each made here and nowhere else:
    `text`      "1.0", "0.05", "inf" (str of the float), "auto"; None for none. The one text form: the
                `runs.tau_setting` column, the MLflow param `tau_setting`, recipe provenance
                `tau_setting`, and the ".tau<text>" suffix of run and recipe names (a spec with several τ).
    `key_text`  the text, or "None" for none: what the run key hashes (run_keys.py; stable since the key
                was first written, so it keeps the text "None").
    `resolve(Δ)` the number the run trains with (the resolved τ, > 0, inf allowed): `runs.tau`, the MLflow
                param `tau_resolved`, recipe provenance `tau`; written by `record_resolved` only.
Floor 1: numpy and mathcore only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np

from lldmix_core import mathcore as mc


@dataclass(frozen=True)
class Tau:
    """A τ setting: `value` is a float > 0 (math.inf allowed), "auto", or None (the method has none).
    Hashable and compared by value; build one with `Tau.of`."""

    value: float | Literal["auto"] | None

    def __post_init__(self):
        v = self.value
        if v is None or v == "auto":
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:  # NaN fails `> 0` too
            raise ValueError(f"τ must be a number > 0, 'auto' or none, got {v!r}")
        object.__setattr__(self, "value", float(v))

    @classmethod
    def of(cls, x) -> Tau:
        """A setting from any form lldmix has written one in: a Tau, a number, "auto", None, or a stored text
        ("1.0", "inf", "auto"; "None" is read as none). ValueError for anything else."""
        if isinstance(x, Tau):
            return x
        if x is None or x == "None":
            return NO_TAU
        if isinstance(x, str):
            t = x.strip().lower()
            if t == "auto":
                return AUTO
            try:
                x = float(t)
            except ValueError:
                raise ValueError(f"τ {x!r}: give a number > 0, 'auto' or 'inf'") from None
        return cls(x)

    @property
    def is_none(self) -> bool:
        return self.value is None

    @property
    def is_auto(self) -> bool:
        return self.value == "auto"

    @property
    def is_inf(self) -> bool:
        return isinstance(self.value, float) and math.isinf(self.value)

    @property
    def number(self) -> float | None:
        """The resolved τ when the setting alone fixes it (a number, inf included); None for "auto" and none."""
        return self.value if isinstance(self.value, float) else None

    @property
    def text(self) -> str | None:
        """"1.0", "0.05", "inf", "auto"; None for none (never the text "None")."""
        return None if self.value is None else str(self.value)

    @property
    def key_text(self) -> str:
        """What the run key hashes: the text, and "None" for none (see run_keys.py)."""
        return str(self.value)

    def name_suffix(self, several: bool) -> str:
        """".tau<text>" in run and recipe names where the spec sweeps several τ and the method has one, else ""."""
        return f".tau{self.text}" if several and not self.is_none else ""

    def resolve(self, delta: np.ndarray) -> float:
        """The τ a run trains with, from Δ [K] at its first estimate: the number itself, or for "auto" the
        spread of Δ (1.0 when Δ has none). ValueError for none: a method without τ resolves nothing."""
        if self.is_none:
            raise ValueError("this method has no τ to resolve")
        return mc.resolve_tau(self.value, delta)

    def __str__(self) -> str:
        return self.text or "none"


NO_TAU = Tau(None)
AUTO = Tau("auto")


def tau_of_cell(x) -> Tau:
    """`Tau.of(x)`, reading a table's empty cell (NaN, as pandas gives a None text) as none."""
    return NO_TAU if x is None or x != x else Tau.of(x)


def sweeps_tau(settings: Iterable) -> bool:
    """Do these τ settings hold more than one τ (a sweep)? Then runs are labelled "m τ=t" (methods.run_label)
    and run and recipe names end ".tau<t>" (run_keys.run_name). `settings`: a spec's `lld.taus`, or its runs'
    settings in any form `tau_of_cell` reads; none is no τ. The one answer the engine, the plan, the report
    and the dashboard give."""
    return len({t for t in map(tau_of_cell, settings) if not t.is_none}) > 1


def record_resolved(store, tracker, run_id: int | None, mlflow_id: str | None, tau: float) -> None:
    """The one writer of a run's resolved τ: `runs.tau` and the MLflow param `tau_resolved` (store: a
    db.store.Store or None where nothing is stored, tracker: a tracking tracker; both duck-typed here).
    Called by the engine (at the run's start when τ is known, else at its first estimate) and by the
    Hugging Face callback."""
    if store is not None and run_id is not None:
        store.update_run_tau(run_id, tau)
    tracker.log_resolved_tau(mlflow_id, tau)
