"""The KL estimators' names in `kl_results.estimator`, and a run's last KL by estimator: one home for what
the engine's outcome, the leaderboard, the ladder, the swarm export and the agreement study each read.

    "modelmap"          the model map's second-order estimate over the evaluation corpus (unclipped)
    "modelmap-clip<F>"  the same with per-text differences clipped at F nats/text (spec kl.clip)
    "sampled"           KL(target ‖ model) on texts drawn from the target (± its standard error)
(the noise floor's seed-pair rows, headroom.SEED_PAIR, are neither: they compare two runs, not a run and
its target). Floor 1: imports nothing of ours; rows are duck-typed (db.store.KLRow: .estimator, .step).
"""

from __future__ import annotations

from typing import Iterable, Literal, TypeVar

MODELMAP = "modelmap"
SAMPLED = "sampled"
Kind = Literal["modelmap", "sampled"]
Row = TypeVar("Row")


def modelmap_name(clip: float) -> str:
    """The estimator name of a model-map row at clip threshold `clip` (nats/text; 0: unclipped)."""
    return MODELMAP if clip == 0 else f"{MODELMAP}-clip{clip:g}"


def is_kind(estimator: str, kind: Kind) -> bool:
    """Is a row's estimator of `kind`: "modelmap" (any clip) or "sampled"?"""
    if kind == MODELMAP:
        return estimator == MODELMAP or estimator.startswith(f"{MODELMAP}-clip")
    if kind == SAMPLED:
        return estimator == SAMPLED
    raise ValueError(f"unknown KL kind {kind!r}; known: {MODELMAP}, {SAMPLED}")


def last_kl(rows: Iterable[Row], kind: Kind) -> Row | None:
    """The row of `kind` at the latest step among one run's KL rows (rows without a step are not a point
    of the run's trajectory and are skipped); None when the run has none of that kind."""
    return max((r for r in rows if r.step is not None and is_kind(r.estimator, kind)), key=lambda r: r.step,
               default=None)
