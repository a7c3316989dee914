"""The store's typed rows: what its read methods return (frozen dataclasses, never ORM objects).
Units are in the field comments; datetimes are UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    kind: str
    source: str
    tokenizer: str
    tokenizer_hash: str
    n_params: int
    fingerprint: str
    config: dict
    run_id: int | None
    step: int | None
    created_at: datetime


@dataclass(frozen=True)
class CorpusInfo:
    id: int
    name: str
    content_hash: str
    source: str
    settings: dict
    n_texts: int
    n_bytes: int
    domains: tuple[str, ...]  # sorted


@dataclass(frozen=True)
class CorpusTexts:
    texts: list[str]
    domains: list[str]  # domain of each text
    n_bytes: np.ndarray  # int64 [N], UTF-8 bytes, in position order


@dataclass(frozen=True)
class RunInfo:
    id: int
    key: str
    name: str
    spec_hash: str
    parent_id: int | None
    job_id: int | None
    method: str
    seed: int | None
    tau: float | None  # the resolved τ the run trained with (runs.tau, > 0, inf allowed); None: no τ, or not yet
    status: str
    base_model_id: int | None
    target_model_id: int | None
    corpus_id: int | None
    final_model_id: int | None
    mlflow_run_id: str | None
    config: dict
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    tau_setting: str | None = None  # the spec's τ as text (tau.Tau.text: "auto", "inf", "1.0"); None: the method has no τ
    git_commit: str | None = None
    provenance: dict | None = None  # provenance.collect(): code, numerics and library versions, device, hashes


@dataclass(frozen=True)
class KLRow:
    """One stored KL(target ‖ model) estimate. estimator "modelmap[-clipF]": the model map's second-order
    estimate over the evaluation corpus; "sampled": texts drawn from the target (± stderr over n_samples)."""

    step: int | None
    model_id: int
    reference_model_id: int
    corpus_id: int
    nats_per_text: float
    bits_per_byte: float
    gap_bits_per_byte: float | None  # target's minus model's mean log-likelihood, bits/byte (model map only)
    estimator: str
    stderr_bits_per_byte: float | None = None
    n_samples: int | None = None
    clip_threshold: float | None = None  # nats/text; None: no clipping


@dataclass(frozen=True)
class DomainLoglikRow:
    domain: str
    loglik_sum: float  # nats
    n_tokens: int
    n_bytes: int
    nats_per_token: float
    nats_per_byte: float


@dataclass(frozen=True)
class JobInfo:
    id: int
    name: str
    spec_yaml: str
    spec_hash: str
    status: str
    progress: float
    message: str | None
    error: str | None
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class RunKLRow:
    """KL(target ‖ model) of one run at one evaluated step, with who the run is (the compare page)."""

    run_id: int
    run: str  # the run's name
    method: str
    seed: int | None
    tau_setting: str | None  # the run's τ setting as text (runs.tau_setting, tau.Tau.text); None: the method has no τ
    step: int | None
    nats_per_text: float
    bits_per_byte: float
    gap_bits_per_byte: float | None
    estimator: str = "modelmap"  # "modelmap[-clipF]" or "sampled"
    stderr_bits_per_byte: float | None = None  # the sampled KL's standard error
    model_id: int | None = None
    corpus_id: int | None = None  # the evaluation corpus, or (sampled) the draws from the target


@dataclass(frozen=True)
class ModelDomainLoglikRow:
    """One model's mean log-likelihood on one domain of a corpus (the model map page)."""

    model_id: int
    model: str  # the model's name
    run_id: int | None
    step: int | None
    domain: str
    nats_per_token: float
    nats_per_byte: float
