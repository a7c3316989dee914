"""The database schema: the tables users query with SQL. Documented in docs/SCHEMA.md; keep both true.

Alembic (migrations/) owns the schema; change this file, then add a migration
(`alembic revision --autogenerate`) and check `alembic check` reports no drift.

Units: log-likelihoods are in nats (natural log); per-token and per-byte means are nats/token and
nats/byte; KL results carry both nats/text and bits/byte.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lldmix_core.db import integrity

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict: JSON, list: JSON}


class Model(Base):
    """A model that can score text: a trained NanoGPT, a Hugging Face folder, or a training checkpoint."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "nanogpt" | "hf"
    source: Mapped[str] = mapped_column(Text)  # folder, checkpoint file, or "trained:<stage>"
    tokenizer: Mapped[str] = mapped_column(String(200))  # tokenizer name, e.g. "gpt2", "bytes"
    tokenizer_hash: Mapped[str] = mapped_column(String(64))  # content hash of the tokenizer
    n_params: Mapped[int] = mapped_column(BigInteger)  # 2B-parameter targets exceed 32 bits
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of weights + config
    config: Mapped[dict] = mapped_column(default=dict)
    # use_alter: models and runs refer to each other; this key is added after both tables exist
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL", use_alter=True), index=True)
    step: Mapped[int | None] = mapped_column(Integer)  # training step, for checkpoints
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Corpus(Base):
    """An evaluation corpus: a fixed, ordered list of texts, each in one domain."""

    __tablename__ = "corpora"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 over (domain, text) in order
    source: Mapped[str] = mapped_column(Text)  # files it was built from
    settings: Mapped[dict] = mapped_column(default=dict)  # chunking: max_bytes, min_bytes, per_domain, seed
    n_texts: Mapped[int] = mapped_column(Integer)
    n_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CorpusText(Base):
    __tablename__ = "texts"
    __table_args__ = (UniqueConstraint("corpus_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based index of the text in the corpus
    n_bytes: Mapped[int] = mapped_column(Integer)  # UTF-8 bytes
    text_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the UTF-8 bytes
    content: Mapped[str] = mapped_column(Text)


class LoglikVector(Base):
    """Text-level log-likelihoods of one model on one corpus (the model-map row).

    `logliks` is N little-endian float32 (nats/text, log p(text) summed over its tokens, the first
    token conditioned on the tokenizer's BOS/EOT token); `n_tokens` is N little-endian int32.
    `checksum` is the sha256 of logliks || n_tokens.
    """

    __tablename__ = "loglik_vectors"
    __table_args__ = (UniqueConstraint("model_id", "corpus_id", "tokenizer_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), index=True)
    tokenizer_hash: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(Integer)
    logliks: Mapped[bytes] = mapped_column(LargeBinary)
    n_tokens: Mapped[bytes] = mapped_column(LargeBinary)
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DomainLoglik(Base):
    """Domain-level log-likelihood of one model on one corpus domain (the LLD inputs)."""

    __tablename__ = "domain_logliks"
    __table_args__ = (UniqueConstraint("model_id", "corpus_id", "domain_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"))
    loglik_sum: Mapped[float] = mapped_column(Float)  # nats, summed over the domain's texts
    n_tokens: Mapped[int] = mapped_column(BigInteger)
    n_bytes: Mapped[int] = mapped_column(BigInteger)
    nats_per_token: Mapped[float] = mapped_column(Float)  # loglik_sum / n_tokens
    nats_per_byte: Mapped[float] = mapped_column(Float)  # loglik_sum / n_bytes


class Job(Base):
    """A queued spec: what the dashboard and `lldmix worker` exchange."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec_yaml: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    # queued | running | finished | failed | cancelled
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str | None] = mapped_column(Text)  # current stage, for the Runs page
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid of the worker that took it
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """One training run (a method and a seed under a spec), or a spec's parent run (method "spec")."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # hash of spec + method + seed
    name: Mapped[str] = mapped_column(String(200))
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(50))
    seed: Mapped[int | None] = mapped_column(Integer)
    tau: Mapped[float | None] = mapped_column(Float)  # resolved temperature (inf = uniform)
    tau_setting: Mapped[str | None] = mapped_column(String(32))  # the spec's τ: "auto", "inf" or a number; NULL: no τ
    # running | finished | failed | stopped (SIGTERM: resumes from its checkpoint) | cancelled (from the app)
    status: Mapped[str] = mapped_column(String(20), default="running")
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    target_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    corpus_id: Mapped[int | None] = mapped_column(ForeignKey("corpora.id", ondelete="SET NULL"))
    final_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict] = mapped_column(default=dict)
    # which code made this run's numbers (migration 0004): the git commit, and everything else
    # (lldmix and numerics versions, dirty tree, torch, device, threads, corpus and tokenizer hashes)
    git_commit: Mapped[str | None] = mapped_column(String(40))
    provenance: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WeightEstimate(Base):
    """Domain weights a run used from `step` on (iterative/adjusted LLD: estimated at that step)."""

    __tablename__ = "weight_estimates"
    __table_args__ = (UniqueConstraint("run_id", "step", "domain_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"))
    weight: Mapped[float] = mapped_column(Float)
    tau: Mapped[float | None] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(50))
    checksum: Mapped[str | None] = mapped_column(String(64), default=integrity.column_default("weight_estimates"))


class KLResult(Base):
    """Model-map KL of `model` to `reference_model` on a corpus.

    nats_per_text: the estimator ‖q_i − q_j‖²/(2N) = half the variance over texts of the
    log-likelihood ratio (symmetric, second order). bits_per_byte = nats_per_text / ln 2 / mean bytes
    per text. gap_bits_per_byte: mean over texts of (log p_ref − log p_model) per byte, in bits/byte:
    a cross-entropy difference, honest when the models are far apart.
    """

    __tablename__ = "kl_results"
    __table_args__ = (Index("ix_kl_results_run_step", "run_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    reference_model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"))
    nats_per_text: Mapped[float] = mapped_column(Float)
    bits_per_byte: Mapped[float] = mapped_column(Float)
    gap_bits_per_byte: Mapped[float | None] = mapped_column(Float)
    estimator: Mapped[str] = mapped_column(String(50))  # e.g. "modelmap", "modelmap-clip0.02"
    # issue 12 (migration 0004): the sampled KL's se (bits/byte) and sample count; the model map's
    # one clipping threshold from the pooled matrix (nats/text; null = no clipping)
    stderr_bits_per_byte: Mapped[float | None] = mapped_column(Float)
    n_samples: Mapped[int | None] = mapped_column(Integer)
    clip_threshold: Mapped[float | None] = mapped_column(Float)
    checksum: Mapped[str | None] = mapped_column(String(64), default=integrity.column_default("kl_results"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunMetric(Base):
    """Scalar per-step metrics of a run (training loss, learning rate), mirrored from MLflow."""

    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "key", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class Recipe(Base):
    """A fixed domain mixture (domain -> weight, on the simplex) with where it came from."""

    __tablename__ = "recipes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    method: Mapped[str] = mapped_column(String(50))  # e.g. "aggregated-lld-geometric"
    weights: Mapped[dict] = mapped_column()  # {domain: weight}
    provenance: Mapped[dict] = mapped_column(default=dict)  # base, target, tau, steps, corpus hash
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    checksum: Mapped[str | None] = mapped_column(String(64), default=integrity.column_default("recipes"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Stage(Base):
    """A finished unit of work keyed by a content hash; found here on re-run instead of recomputed."""

    __tablename__ = "stages"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(50))  # "train-target", "pass1", "train", "score", ...
    spec_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))  # "running" (claimed) or "finished"
    result: Mapped[dict] = mapped_column(default=dict)
    owner: Mapped[str | None] = mapped_column(String(200))  # "host:pid" of the claiming worker
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


integrity.install(sys.modules[__name__])  # checksum events on result rows (issue 16)
