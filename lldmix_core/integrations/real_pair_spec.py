"""The real-pair file (`runs/real-pair.yaml`): a top-level `real_pair:` mapping, read strictly.

    real_pair:
      name: real-pair
      base: {packaged: smollm2-135m-instruct}   # or {path: FOLDER}: a local Hugging Face folder
      target: {packaged: gemma3-270m}
      corpus: {eval_per_domain: 4, eval_seed: 42}   # the frozen mini-Pile's evaluation texts
      recipe: {tau: auto}                          # the one-shot recipe, nats/byte (two vocabularies)
      sampled_kl: {n: 16, n_tokens: 48, seed: 0}   # texts drawn from each model, both directions
      training: {methods: [uniform, iterative-lld], steps: 20, ...}   # continued pretraining of the base

A model is either `packaged:` (a key of models/packaged.py, registered by `lldmix model add-packaged
KEY` under that name) or `path:` (a Hugging Face folder, absolute or relative to LLDMIX_HOME, inside the
allowed roots). Nothing here loads a model or touches the store: `resolve_model` only checks that the
checkpoint is there and says in one line how to get it when it is not.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lldmix_core.errors import UserError
from lldmix_core.methods import METHODS

TOP_KEY = "real_pair"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    packaged: str | None = None  # a key of lldmix_core.models.packaged.PACKAGED
    path: str | None = None  # a local Hugging Face folder (config.json, weights, tokenizer)

    @model_validator(mode="after")
    def _one(self):
        if (self.packaged is None) == (self.path is None):
            raise ValueError("give exactly one of `packaged` (a packaged model's key) or `path` (a Hugging Face folder)")
        if self.packaged is not None:
            from lldmix_core.models.packaged import PACKAGED

            if self.packaged not in PACKAGED:
                raise ValueError(f"packaged: unknown model {self.packaged!r} (one of {', '.join(PACKAGED)})")
        return self


class PairCorpus(_Strict):
    """The frozen mini-Pile's evaluation texts (lldmix_core/data/minipile-v1/eval.jsonl.zst), sampled per domain."""

    eval_per_domain: int = Field(4, ge=2, le=256)
    eval_seed: int = Field(42, ge=0)
    max_bytes: int = Field(1024, ge=64, le=4096)


def _tau(v):
    if v == "auto":
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (float(v) > 0) or math.isinf(float(v)):
        raise ValueError(f"τ must be a number > 0 (nats/byte) or 'auto', got {v!r}")
    return float(v)


class PairRecipe(_Strict):
    tau: float | Literal["auto"] = "auto"  # nats/byte; auto = the spread of Δ

    _t = field_validator("tau", mode="before")(classmethod(lambda cls, v: _tau(v)))


class PairSampled(_Strict):
    n: int = Field(16, ge=2, le=4096)  # texts drawn from each model
    n_tokens: int = Field(48, ge=4, le=4096)  # tokens per drawn text (the drawing model's tokenizer)
    seed: int = Field(0, ge=0)


class PairTraining(_Strict):
    """Continued pretraining of the base with the Hugging Face Trainer on the mini-Pile's training split."""

    methods: tuple[str, ...] = ("uniform", "iterative-lld")
    steps: int = Field(20, ge=1, le=100_000)  # optimiser steps per method
    batch_size: int = Field(2, ge=1, le=1024)  # sequences per step
    block: int = Field(128, ge=8, le=8192)  # tokens per sequence (the base's tokenizer)
    blocks_per_domain: int = Field(32, ge=1)  # training sequences kept per domain (the first of the split)
    lr: float = Field(2e-5, gt=0, le=1.0)
    warmup_steps: int = Field(0, ge=0)
    tau: float | Literal["auto"] = "auto"  # iterative-LLD's τ, nats/byte
    lld_texts_per_domain: int = Field(2, ge=1)  # evaluation texts the callback scores at each schedule step
    seed: int = Field(0, ge=0)

    _t = field_validator("tau", mode="before")(classmethod(lambda cls, v: _tau(v)))

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError("methods: give each method once, at least one")
        ok = [n for n in METHODS if trainer_method(n)]
        for m in v:
            if m not in ok:
                raise ValueError(f"methods: {m!r} cannot run inside the Trainer (one of: {', '.join(ok)})")
        return v


def trainer_method(name: str) -> bool:
    """The registry's methods this pipeline runs in the Trainer: the prior mixture (uniform), held fixed,
    and every method that re-weights during training (through LLDCallback)."""
    from lldmix_core.behaviours import Prior

    m = METHODS.get(name)
    return m is not None and (m.behaviour.iterative or (type(m.behaviour) is Prior and not m.privileged
                                                         and not m.distill_objective))


class RealPairSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str = ""
    base: ModelRef
    target: ModelRef
    corpus: PairCorpus = PairCorpus()
    recipe: PairRecipe = PairRecipe()
    sampled_kl: PairSampled = PairSampled()
    training: PairTraining = PairTraining()

    def content_hash(self) -> str:
        """sha256 of everything that changes a number (the description does not)."""
        data = self.model_dump(mode="json", exclude={"description"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def is_real_pair_text(text: str) -> bool:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and TOP_KEY in data


def load_real_pair(path: str | Path) -> RealPairSpec:
    """The spec in `path`; any problem is one line naming the file and the field."""
    from lldmix_core.yaml_strict import NoDuplicatesLoader

    p = Path(path)
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=NoDuplicatesLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or set(data) != {TOP_KEY}:
        raise UserError(f"{p}: a real-pair file has one top-level key, `{TOP_KEY}:`")
    try:
        return RealPairSpec.model_validate(data[TOP_KEY])
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or TOP_KEY
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise UserError(f"{p}: {TOP_KEY}.{where}: {msg}") from None


def resolve_model(ref: ModelRef, role: str, settings, store) -> tuple[str, Path]:
    """(the model's name in the store, its folder) for `ref`; a missing checkpoint is one line
    naming the folder looked for and how to obtain it. Reads only: nothing is registered here."""
    from lldmix_core.config import confine_path

    if ref.path is not None:
        folder = confine_path(ref.path, settings, f"{role}.path")
        if not (folder / "config.json").is_file():
            raise UserError(f"{role}.path: checkpoint folder {folder} is missing or has no config.json "
                            "(a Hugging Face folder saved with save_pretrained: config.json, weights, tokenizer)")
        return f"{role}-{folder.name}", folder
    from lldmix_core.models.packaged import PACKAGED

    p = PACKAGED[ref.packaged]
    have = next((m for m in store.list_models() if m.name == p.key), None) if store is not None else None
    if have is not None and (Path(have.source) / "config.json").is_file():
        return p.key, Path(have.source)
    want = settings.home / "models" / f"{p.key}-fp32-<hash>"
    raise UserError(f"{role}: checkpoint {p.key} is not in this home (no folder {want}): obtain it with "
                    f"`{p.install}` and `lldmix model add-packaged {p.key}`")
