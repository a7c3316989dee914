"""What the engine's parts are handed, explicitly and typed: no part holds (or calls back into) the
`Engine`. `EngineServices` are the spec-wide collaborators (store, settings, tracker, log, progress,
stop check, job); `RunServices` what one run's Evaluator and StepLogger use; `SpecContext` the per-target
state a spec's runs share (corpus, tokenizer, target and its scores, prior, the target's draws);
`StepCounter` the spec's training steps done, for the progress fraction."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from lldmix_core.config import Settings
from lldmix_core.db.store import Store
from lldmix_core.eval_memo import EvalMemo
from lldmix_core.evaluate import ScoredModel
from lldmix_core.models import LanguageModel
from lldmix_core.prepare import PreparedCorpus
from lldmix_core.sampled_eval import SampleSet
from lldmix_core.spec import RunSpec
from lldmix_core.tokenizers import Tokenizer
from lldmix_core.tracking import NullTracker

LogFn = Callable[[str], None]  # a line for the user (printed when verbose)
ProgressFn = Callable[[float, str], None]  # (fraction of the spec done, message): the job's progress
StopFn = Callable[[], bool]  # True: the user asked the job to stop


@dataclass(frozen=True)
class EngineServices:
    """The spec-wide collaborators of the engine's parts (the tracker is the spec's: MLflow or the null one)."""

    store: Store
    settings: Settings
    tracker: NullTracker
    log: LogFn
    progress: ProgressFn
    should_stop: StopFn | None = None
    job_id: int | None = None  # the queue's job this spec runs for (None: run from the CLI)


@dataclass(frozen=True)
class RunServices:
    """What one run's Evaluator and StepLogger use: the store, the tracker, the log and the job's progress,
    the fraction of the spec a step count is, the heartbeat of the run's stage claim, and lldmix's home
    (where the target's draws for the sampled KL are kept)."""

    store: Store
    tracker: NullTracker
    log: LogFn
    progress: ProgressFn
    fraction: Callable[[int], float]  # steps done in the spec → fraction of the spec
    heartbeat: Callable[[str], None]  # keep this run's stage claim alive (StageClaims.heartbeat)
    home: Path


class StepCounter:
    """The training steps of a spec: `total` planned, `done` so far (runs found finished count as done)."""

    def __init__(self, total: int = 0):
        self.total, self.done = total, 0

    def fraction(self, steps_done: int) -> float:
        """`steps_done` as the fraction of the spec done, kept below 1 until the spec finishes."""
        return min(0.999, steps_done / max(1, self.total))


@dataclass
class SpecContext:
    """The per-target state the runs of a spec share: made once per target (per seed for twin targets)."""

    spec: RunSpec
    corpus: PreparedCorpus
    tokenizer: Tokenizer  # the spec's tokenizer (spec.tokenizer), made once
    parent_id: int
    mlflow_parent: str | None
    target_id: int
    target_lm: LanguageModel
    target_scores: ScoredModel
    prior: np.ndarray  # [K] the LLD prior (uniform unless lld.prior)
    provenance: dict
    samples: dict[int, SampleSet] = field(default_factory=dict)  # seed -> draws from the target
    truth: np.ndarray | None = None  # [K] the target's training mixture, when lldmix trained it (the oracle's)
    memo: EvalMemo = field(default_factory=EvalMemo)  # evaluations of identical models (same fingerprint), made once
