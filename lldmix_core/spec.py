"""The run spec: what to compare, declared in `runs/*.yaml`, validated strictly, frozen and hashed.

Unknown keys and bad values are rejected with the field's path (e.g. `training.steps: ...`).
The spec's content hash (and the per-run keys derived from it) key the stages in the database, so
a finished stage is found there on re-run instead of recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from lldmix_core.errors import UserError
from lldmix_core.estimators import ESTIMATORS, aggregation_estimator, aggregation_names
from lldmix_core.limits import MAX_DESCRIPTION_CHARS, MAX_SEED
from lldmix_core.methods import METHODS as REGISTRY
from lldmix_core.mixture_file import resolve_mixture_file
from lldmix_core.recipe_check import check_weights
from lldmix_core.recipe_file import recipe_file_fields
from lldmix_core.tau import Tau
from lldmix_core.yaml_strict import NoDuplicatesLoader as _NoDuplicatesLoader  # noqa: F401 (benchmark/suite imports it here)

MIXTURE_METHODS = tuple(n for n, m in REGISTRY.items() if not m.needs_teacher)
DISTILL_METHODS = tuple(n for n, m in REGISTRY.items() if m.needs_teacher)
METHODS = tuple(REGISTRY)
Method = Literal[METHODS]  # type: ignore[valid-type]  # the registry's names, in its order
TauField = Union[float, Literal["auto"]]  # as written in a spec; read through LLDSpec.taus (tau.Tau)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusSpec(_Strict):
    """Where the domains' texts come from. `local` is the embedded mini-Pile (`lldmix corpus build-local`)."""

    local: bool = True
    train: str | None = None  # Pile-format file/folder/glob for training (when local is false)
    eval: str | None = None  # Pile-format file/folder for the evaluation corpus (default: train)
    text_field: str = "text"
    domain_field: str = "meta.pile_set_name"
    domains: tuple[str, ...] | None = None  # restrict to these domains (default: all found)
    eval_per_domain: int = Field(32, ge=1)
    eval_total: int | None = Field(None, ge=1)  # sample this many texts in proportion to the corpus instead
    max_bytes: int = Field(1024, ge=16)
    min_bytes: int = Field(256, ge=0)
    eval_seed: int = Field(42, ge=0, le=MAX_SEED)

    @model_validator(mode="before")
    @classmethod
    def _local_unless_files(cls, data):
        if isinstance(data, dict) and "local" not in data and (data.get("train") or data.get("eval")):
            data = {**data, "local": False}  # naming files means using them
        return data

    @model_validator(mode="after")
    def _check(self):
        if not self.local and not self.train:
            raise ValueError("set `train` (a Pile-format file or folder) or `local: true`")
        if self.local and (self.train or self.eval):
            raise ValueError("give `local: true` or `train`/`eval` files, not both")
        if self.min_bytes >= self.max_bytes:
            raise ValueError("min_bytes must be below max_bytes")
        return self


class ArchSpec(_Strict):
    """NanoGPT sizes for the models this spec trains. vocab_size null = the tokenizer's, padded to 64."""

    n_layer: int = Field(2, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8)
    block_size: int = Field(256, ge=8)
    vocab_size: int | None = Field(None, ge=2)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads(self):
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        return self


class OptimSpec(_Strict):
    """AdamW with warmup then cosine decay, as the paper (weight decay 0.1, betas (0.9, 0.95), eps 1e-8)."""

    steps: int = Field(..., ge=1)
    batch_size: int = Field(16, ge=1)  # sequences per step; all from one domain
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-3, gt=0)
    min_lr: float = Field(2e-4, ge=0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    checkpoint_every: int = Field(100, ge=1)  # steps between resumable checkpoints
    # true: train the runs of a spec that can share a step (NanoGPT bases, no teacher) as one group
    # (lldmix_core/train_group.py). Off by default: on 2 quiet CPU cores one model at a time is as fast or
    # faster (bench/train_group.py: 0.85-1.0x), grouped pays where per-op overhead dominates (shared,
    # loaded cores: 1.6-4x). Not in the spec hash: the run keys say which path trained a run
    # (run_keys.run_key), so the same spec's runs of either path never mix.
    group: bool = False

    @field_validator("betas")
    @classmethod
    def _betas(cls, v):
        if not all(math.isfinite(b) and 0.0 <= b < 1.0 for b in v):
            raise ValueError(f"AdamW betas must each be in [0, 1), got {list(v)}")
        return v


class TrainedModelSpec(_Strict):
    """A NanoGPT trained first with fixed domain weights (e.g. the CodeNanoGPT target).

    `twin: true` (targets only) trains one target per seed from that seed's base: the base's initial
    model, the run's seed (so the same per-domain batch order) and the runs' own training settings and
    budget, so the mixture is the only difference between the target and a run; the oracle method then
    reproduces the target bit for bit. Without it the target is "independent": its own seed and budget."""

    steps: int | None = Field(None, ge=1)  # required unless twin (a twin trains training.steps)
    seed: int = Field(1234, ge=0, le=MAX_SEED)
    twin: bool = False
    weights: dict[str, float] | None = None  # explicit mixture (normalised); default uniform
    multipliers: dict[str, float] = Field(default_factory=dict)  # uniform × these factors, renormalised
    lr: float | None = Field(None, gt=0)  # default: training.lr
    batch_size: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _mixture_file(cls, data, info: ValidationInfo):
        # `mixture_file: PATH` (a mixture file, lldmix_core/mixture_file.py) is read here into `weights`: the
        # spec keeps the mixture's content, so its hash and the trained target's key are those of the weights
        return weights_from_mixture_file(data, info, ("weights", "multipliers"))

    @model_validator(mode="after")
    def _twin(self):
        if not self.twin and self.steps is None:
            raise ValueError("steps: give the number of training steps (or twin: true)")
        if self.twin:
            given = sorted(k for k in ("steps", "seed", "lr", "batch_size") if k in self.model_fields_set)
            if given:
                raise ValueError(f"twin: a twin target trains with each run's seed and the runs' training settings; "
                                 f"leave out {', '.join(given)}")
        return self

    @field_validator("weights", "multipliers")
    @classmethod
    def _finite_nonneg(cls, v):
        for k, w in (v or {}).items():
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of {k!r} must be finite and ≥ 0, got {w}")
        if v and sum(v.values()) <= 0 and v is not None:
            raise ValueError("weights must not all be zero")
        return v


def weights_from_mixture_file(data, info: ValidationInfo, exclusive: tuple[str, ...]):
    """A model's raw fields with `mixture_file` replaced by the file's `weights` (fractions); the path is
    relative to the folder of the file being validated (validation context `base_dir`), else the current one."""
    if not isinstance(data, dict) or "mixture_file" not in data:
        return data
    both = [k for k in exclusive if k in data]
    if both:
        raise ValueError(f"give mixture_file or {both[0]}, not both")
    base_dir = (info.context or {}).get("base_dir")
    try:
        weights = resolve_mixture_file(data["mixture_file"], base_dir, "mixture_file")
    except UserError as e:
        raise ValueError(f"mixture_file: {e}") from None
    return {**{k: v for k, v in data.items() if k != "mixture_file"}, "weights": weights}


class ModelRef(_Strict):
    """Exactly one of: `init` (random NanoGPT from the run's seed), `model` (a name in the database),
    `path` (a local checkpoint file or Hugging Face folder), or `train` (train one first)."""

    init: Literal["random"] | None = None
    model: str | None = None
    path: str | None = None
    kind: Literal["nanogpt", "hf"] = "nanogpt"
    tokenizer: str | None = None  # for HF folders without their own tokenizer
    trust_remote_code: bool = False
    train: TrainedModelSpec | None = None

    @model_validator(mode="after")
    def _one(self):
        chosen = [k for k in ("init", "model", "path", "train") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"give exactly one of init, model, path, train (got {chosen or 'none'})")
        return self


class GramSpec(_Strict):
    estimator: Literal["exact", "sketch"] = "exact"
    sketch_dim: int = Field(256, ge=1)
    ridge: float = Field(1e-3, ge=0)
    texts_per_domain: int = Field(8, ge=1)


class PhaseSpec(_Strict):
    """One phase of a phased recipe: its weights are in force until `until` × training.steps."""

    until: float = Field(gt=0, le=1)
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _on_simplex(cls, v):
        return _check_simplex(v)


def _check_simplex(v):
    # a recipe or prior is a distribution over domains: finite, ≥ 0, summing to 1 (not normalised
    # silently, so a typo in a weight cannot change the experiment unnoticed)
    if v is None:
        return v
    try:
        check_weights(v, "weights")
    except UserError as e:
        raise ValueError(str(e).removeprefix("weights: ")) from None
    return v


class LLDSpec(_Strict):
    tau: TauField | tuple[TauField, ...] = 1.0  # a list sweeps τ (Table 2); .inf means uniform
    unit: Literal["token", "byte"] = "token"  # Δ in nats/token (the paper) or nats/byte (tokenizer-free)
    prior: dict[str, float] | None = None  # default uniform
    # How aggregated-LLD turns pass 1 into its recipe: an estimator of lldmix_core/estimators.py, computed
    # from pass 1's stored Δ_t (and G_t: the adjusted ones need record_gram). `geometric` (the default) is
    # the registry's `paper` entry, the paper's geometric mean (estimators.AGGREGATION_ALIASES); others
    # e.g. arithmetic, late50, adj-gcv
    aggregation: str = "geometric"
    gram: GramSpec = GramSpec()
    recipe: dict[str, float] | None = None  # the weights of method `fixed`
    # Or a phased recipe for method `fixed` (the two-stage recipe): phase i is in force from the previous
    # phase's `until` (0 for the first) to its own, fractions of the run's steps; the last `until` is 1.0.
    phases: tuple[PhaseSpec, ...] | None = None
    # Cheaper first pass: at LLD schedule steps where no KL is measured, estimate Δ on a seeded
    # subsample of this many evaluation texts per domain instead of the whole corpus (None: all).
    estimate_texts_per_domain: int | None = Field(None, ge=1)
    # Store the domain Gram matrix G_t at every schedule step of iterative runs (the recovery
    # benchmark's adjusted-LLD variants are computed from pass 1's Δ_t and G_t; costs one backward
    # per domain on lld.gram.texts_per_domain texts at each of the ~16 schedule steps).
    record_gram: bool = False
    # Cap every domain at this many epochs of its unique training tokens at the run's budget (steps ×
    # batch × block tokens): fixed and aggregated recipes are capped and renormalised before training
    # (iterative water-filling, lldmix_core/repetition.py); None: no cap.
    max_epochs: float | None = Field(None, gt=0)
    # Versioned domains: {domain: identity} of the corpus the recipe was made for (an exported recipe's
    # provenance.domain_manifest.domains; `recipe_file: PATH` fills it with recipe or phases): a run on a
    # corpus whose domains differ (missing, extra, same name with other data) is refused before it starts.
    domain_manifest: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _recipe_file(cls, data, info: ValidationInfo):
        # `recipe_file: PATH` (an exported recipe, json or yaml) is read here into recipe (or phases) and
        # domain_manifest: the spec keeps the content, so its hash is that of the same fields written inline
        if not isinstance(data, dict) or "recipe_file" not in data:
            return data
        try:
            return recipe_file_fields(data, (info.context or {}).get("base_dir"))
        except UserError as e:
            raise ValueError(str(e)) from None

    @field_validator("tau")
    @classmethod
    def _tau(cls, v):
        values = v if isinstance(v, tuple) else (v,)
        if not values:
            raise ValueError("give at least one tau")
        for t in values:
            if t != "auto" and not (t > 0):
                raise ValueError("tau must be > 0 (or 'auto'; .inf means uniform)")
        if len(set(values)) != len(values):
            raise ValueError("tau: listed twice")
        return v

    @field_validator("recipe", "prior")
    @classmethod
    def _on_simplex(cls, v):
        return _check_simplex(v)

    @field_validator("phases")
    @classmethod
    def _phases(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("phases: give at least one phase (or leave phases out)")
        ends = [p.until for p in v]
        if any(b <= a for a, b in zip(ends, ends[1:])):
            raise ValueError(f"phases: 'until' must increase strictly, got {ends}")
        if ends[-1] != 1.0:
            raise ValueError(f"phases: the last phase's 'until' must be 1.0 (the phases cover the run), got {ends[-1]}")
        return v

    @field_validator("aggregation")
    @classmethod
    def _aggregation(cls, v):
        known = aggregation_names()
        if v not in known:
            extra = " (the calibrated estimators need a reference target: the recovery benchmark has one)" \
                if v in ESTIMATORS else ""
            raise ValueError(f"unknown aggregation {v!r}{extra}; known: {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _gram_recorded(self):
        est = aggregation_estimator(self.aggregation)
        if "gram" in est.needs and not self.record_gram:
            raise ValueError(f"aggregation {self.aggregation!r} needs pass 1's Gram matrices: set record_gram: true")
        if self.max_epochs is not None and (self.phases or est.phases is not None):
            raise ValueError("max_epochs: caps one-mixture recipes only, not phased ones (lld.phases, a phased aggregation)")
        return self

    @property
    def taus(self) -> tuple[Tau, ...]:
        """The τ settings in the spec's order, as the one τ type (lldmix_core/tau.py). `tau` itself stays the
        field as written (a number, "auto" or a list of them): the spec's hash is computed from it."""
        return tuple(Tau.of(t) for t in (self.tau if isinstance(self.tau, tuple) else (self.tau,)))


class DistillSpec(_Strict):
    """Knowledge distillation from the target (the paper's §4.4 baselines and neighbouring objectives).

    `mixture` chooses the domain weights the distillation batches are drawn from: uniform, or the
    aggregated-LLD recipe of the same seed. `params` go to the objective (e.g. alpha, lam for amid;
    teacher_temperature for ttm/wttm; ce_weight for kl+ce)."""

    mixture: Literal["uniform", "aggregated-lld"] = "uniform"
    params: dict[str, float] = Field(default_factory=dict)


class SampledKLSpec(_Strict):
    """KL(target ‖ model) estimated by sampling: `n_samples` texts of `n_tokens` tokens drawn from the
    target once per seed (temperature 1) and scored under every evaluated model, so method
    differences are paired. `steps`: "final-third" = the KL steps in the last third of the run and the
    last step; "final" = the last step only; or a list of steps (each also a KL step). 0 samples: off."""

    n_samples: int = Field(256, ge=0, le=100_000)
    n_tokens: int = Field(256, ge=1, le=1_000_000)
    steps: Literal["final-third", "final"] | tuple[int, ...] = "final-third"

    @field_validator("n_samples")
    @classmethod
    def _enough(cls, v):
        if v == 1:
            raise ValueError("a standard error needs at least 2 samples (0 turns the sampled KL off)")
        return v


class KLSpec(_Strict):
    clip: float = Field(0.0, ge=0.0, lt=0.5)  # model-map clipping of the bottom fraction
    sampled: SampledKLSpec = SampledKLSpec()  # the judge of closeness; the model-map figure stands beside it


class DownstreamSpec(_Strict):
    """The paper's §4.6: evaluate each run's final model and the target on lm-evaluation-harness
    tasks (accuracy) and correlate their per-task profiles (Pearson r). Needs `pip install .[eval]`."""

    tasks: tuple[str, ...] = ()
    include_path: str | None = None  # a folder of local task YAMLs (no hub access needed)
    include_defaults: bool = True  # index lm-eval's built-in tasks too (a few seconds)
    limit: int | None = Field(None, ge=1)  # documents per task (for quick trials)
    num_fewshot: int = Field(0, ge=0)


class TrackingSpec(_Strict):
    mlflow: bool = True
    experiment: str | None = None  # default: the spec's name


class RunSpec(_Strict):
    name: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = (0,)
    tokenizer: str = "bytes"
    corpus: CorpusSpec = CorpusSpec()
    arch: ArchSpec = ArchSpec()
    target: ModelRef
    base: ModelRef = ModelRef(init="random")
    training: OptimSpec
    methods: tuple[Method, ...] = ("uniform", "iterative-lld", "aggregated-lld")
    lld: LLDSpec = LLDSpec()
    distill: DistillSpec = DistillSpec()
    kl: KLSpec = KLSpec()
    downstream: DownstreamSpec = DownstreamSpec()
    eval_steps: Literal["schedule"] | tuple[int, ...] = "schedule"  # default: the LLD schedule + final step
    tracking: TrackingSpec = TrackingSpec()

    @model_validator(mode="after")
    def _check(self):
        if not self.methods:
            raise ValueError("methods: give at least one")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("methods: listed twice")
        if self.lld.recipe and self.lld.phases:
            raise ValueError("lld: give recipe or phases, not both")
        if any(REGISTRY[m].needs_teacher for m in self.methods) and self.target.init is not None:
            raise ValueError("distillation needs a target model")
        for m in self.methods:
            problem = REGISTRY[m].behaviour.spec_problem(m, self)
            if problem:
                raise ValueError(problem)
        if self.base.train is not None and self.base.train.twin:
            raise ValueError("base.train.twin: only a target can be a twin (of each seed's base)")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ValueError("seeds: give distinct seeds")
        if self.eval_steps != "schedule":
            outside = [s for s in self.eval_steps if not 0 <= s <= self.training.steps]
            if outside:
                raise ValueError(f"eval_steps: {outside} outside the run (steps 0 to {self.training.steps})")
        return self

    # --- identity -----------------------------------------------------------------------------
    @property
    def spec_hash(self) -> str:
        dump = self.model_dump(mode="json", exclude={"description", "tracking"})
        dump["training"].pop("group")  # the training path keys the runs instead (run_keys.run_key)
        if not self.downstream.tasks:
            dump.pop("downstream")  # an option at its default leaves existing specs' hashes (and caches) alone
        if self.corpus.eval_total is None:
            dump["corpus"].pop("eval_total")  # likewise: per-domain evaluation corpora keep their hashes
        if not self.lld.record_gram:
            dump["lld"].pop("record_gram")  # likewise
        if self.lld.phases is None:
            dump["lld"].pop("phases")  # likewise
        if self.lld.max_epochs is None:
            dump["lld"].pop("max_epochs")  # likewise
        if self.lld.domain_manifest is None:
            dump["lld"].pop("domain_manifest")  # likewise
        for role in ("target", "base"):
            strip_twin_default(dump[role].get("train"))  # likewise
        return content_hash({"spec": dump})

    def to_yaml(self) -> str:
        """The whole spec, defaults included, so a saved file does not depend on future defaults."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)


def strip_twin_default(train_dump: dict | None) -> dict | None:
    """A trained model's dumped settings as before `twin` existed when it is off (in place): the hashes
    that key specs and trained targets stay what they were."""
    if train_dump is not None and not train_dump.get("twin", False):
        train_dump.pop("twin", None)
    return train_dump


def content_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {path}: {msg}"


def parse_spec(data: object, source: str = "spec", base_dir: Path | None = None) -> RunSpec:
    """Validate a spec; `base_dir`: the folder relative `mixture_file` paths start from (the spec file's)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a run spec is a YAML mapping, got {type(data).__name__}")
    try:
        return RunSpec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise UserError(_format_error(e, source)) from None




def load_spec_text(text: str, source: str = "spec", base_dir: Path | None = None) -> RunSpec:
    try:
        data = yaml.load(text, Loader=_NoDuplicatesLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise UserError(f"{source}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_spec(data, source, base_dir)


def load_spec(path: str | Path) -> RunSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"run spec {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"run spec {p} is not UTF-8 text") from None
    return load_spec_text(text, str(p), p.parent)
