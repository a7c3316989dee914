"""What a training or a spec comes back with, and the cancellation signal: on a low floor so the
queue, the engine, the report and the tests import them without climbing to the engine or train.

Floor 1: imports nothing of ours (the τ type only for type checkers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lldmix_core.tau import Tau


class Cancelled(Exception):
    """Raised when `should_stop()` says so; the latest checkpoint lets the run resume."""


@dataclass
class RunOutcome:
    run_id: int
    method: str
    seed: int
    tau_setting: Tau  # the run's τ setting (tau.NO_TAU where the method has none)
    final_kl_nats_per_text: float
    final_kl_bits_per_byte: float
    final_gap_bits_per_byte: float
    weights: dict[str, float]  # the weights that stand for the run (registry's `shows`)
    skipped: bool
    sampled_bits_per_byte: float = float("nan")  # final sampled KL(target ‖ model), bits/byte
    sampled_se_bits_per_byte: float = float("nan")
    final_model_id: int | None = None
    sampled_corpus_id: int | None = None  # the draws the sampled KL used (paired within a seed)


@dataclass
class SpecOutcome:
    spec_name: str
    spec_hash: str
    parent_run_id: int
    corpus_hash: str
    target_name: str
    runs: list[RunOutcome] = field(default_factory=list)
    truth: dict[str, float] | None = None  # the target's training weights, when known
    recipes: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> aggregated recipe
    mlflow_parent: str | None = None
    provenance: dict = field(default_factory=dict)  # provenance.collect() of this execution
