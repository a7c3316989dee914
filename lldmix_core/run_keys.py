"""The content key of one trained run: what makes two runs the same computation, so a finished one is
found in the database (runs.key) instead of recomputed.

Encoding (stable: changing it orphans every stored run): the sha256 of the canonical JSON of
    {"spec_hash": the spec's result-changing content, "seed": int, "method": registry name,
     "tau": the τ setting's `Tau.key_text` (lldmix_core/tau.py) — str of the float for a number
            ("1.0", "0.05", "inf"), "auto", and the text "None" for a method without τ (the key was
            first written as str(setting) with None for none; key_text reproduces it exactly),
     "target": the target model's database id, "corpus": the evaluation corpus's content hash,
     "numerics": provenance.NUMERICS_VERSION, for distillation methods "distill_loss": 2, and for a run
     trained in a group (train_group.py) "train": train_group.TRAIN_PATH — absent for the one-model path}
(`content_hash` in spec.py: sorted keys, no whitespace). tests/test_run_keys.py pins the quickstart's and
the replication's keys.
"""

from __future__ import annotations

from lldmix_core.methods import METHODS
from lldmix_core.provenance import NUMERICS_VERSION
from lldmix_core.spec import RunSpec, content_hash
from lldmix_core.tau import Tau, sweeps_tau


def run_name(spec: RunSpec, seed: int, method: str, tau_setting: Tau) -> str:
    """What a run of `spec` is called ("quickstart.aggregated-lld.seed0", with ".tau<text>" where the spec
    sweeps τ and the method has one); an aggregating method's stored recipe has its run's name."""
    return f"{spec.name}.{method}.seed{seed}" + tau_setting.name_suffix(sweeps_tau(spec.lld.taus))


def run_key(spec_hash: str, corpus_hash: str, seed: int, method: str, tau_setting: Tau | float | str | None,
            target_id: int, train_path: str | None = None) -> str:
    """The run's key (64 hex characters); see the module docstring for the encoding. `tau_setting`: a Tau,
    or any form `Tau.of` reads (a number, "auto", None). `train_path`: the grouped path's name when the run
    trains in a group (its numbers differ in the last bits), else None."""
    # each spec owns its runs (the Compare page groups by spec); trained targets are shared by content.
    # The numerics version keys too: results of code whose numbers differ are never reused.
    return content_hash({"spec_hash": spec_hash, "seed": seed, "method": method, "tau": Tau.of(tau_setting).key_text,
                         "target": target_id, "corpus": corpus_hash, "numerics": NUMERICS_VERSION,
                         # v2: the student normalised over its padded rows (runs of v1 are not reused)
                         **({"distill_loss": 2} if METHODS[method].needs_teacher else {}),
                         **({"train": train_path} if train_path else {})})
