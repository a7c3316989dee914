"""Several processes, one training run: `torchrun --nproc-per-node N -m lldmix_core.cli run SPEC`.

PyTorch's DistributedDataParallel does the gradient all-reduce (NCCL on GPUs, gloo on CPUs). Rank 0
runs the engine as usual — it alone reads and writes the database and MLflow, scores models and
decides what to train. Before each training it broadcasts a *task* (how to build the model, the
data folder, the weights, the config); the other ranks build the same model and join `train()`,
which splits every global batch across ranks (see train.py). After the spec, rank 0 broadcasts
None and everyone exits. Sharded scoring (`lldmix score` under torchrun) splits a model list or a
corpus across ranks instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from lldmix_core.procgroup import broadcast_object, init_from_env, is_leader, world  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild a model in another process: a random NanoGPT from (config, tokenizer, seed), or a
    model loaded from a file or folder (kind "nanogpt" | "hf", source, tokenizer)."""

    kind: str  # "random" | "nanogpt" | "hf"
    source: str | None = None
    tokenizer: str | None = None
    config: dict | None = None  # NanoGPTConfig fields, for "random"
    seed: int | None = None

    @classmethod
    def random(cls, config: dict, tokenizer: str, seed: int) -> "ModelRecipe":
        return cls("random", None, tokenizer, dict(config), int(seed))

    @classmethod
    def load(cls, kind: str, source, tokenizer: str | None = None) -> "ModelRecipe":
        return cls(kind, str(source), tokenizer)

    def build(self):
        from lldmix_core.models import NanoGPTConfig, load_model, new_nanogpt

        if self.kind == "random":
            return new_nanogpt(NanoGPTConfig(**self.config), self.tokenizer, self.seed)
        return load_model(self.kind, self.source, tokenizer=self.tokenizer)


@dataclass(frozen=True)
class TrainTask:
    """One training, as rank 0 announces it: enough for a follower to rebuild the model and join train()."""

    model: ModelRecipe
    streams: str
    domains: tuple[str, ...]
    cfg: dict  # TrainConfig fields
    weights: tuple[float, ...]
    eval_steps: tuple[int, ...]
    checkpoint_path: str | None
    teacher: ModelRecipe | None = None
    objective: str | None = None
    params: dict = field(default_factory=dict)

    @classmethod
    def of(cls, *, model: ModelRecipe, streams, domains, cfg, weights, eval_steps, checkpoint_path,
           teacher: ModelRecipe | None = None, objective: str | None = None, params: dict | None = None) -> "TrainTask":
        return cls(model, str(streams), tuple(domains), asdict(cfg), tuple(float(w) for w in weights),
                   tuple(eval_steps), None if checkpoint_path is None else str(checkpoint_path), teacher, objective,
                   dict(params or {}))


def broadcast_task(task: TrainTask | None) -> None:
    """Rank 0: tell the followers what to train next (None: the spec is done)."""
    if world()[1] > 1:
        broadcast_object(task)


def follow() -> int:
    """Ranks > 0: train whatever rank 0 announces until it says stop; returns the number of tasks."""
    from pathlib import Path

    from lldmix_core.corpus.streams import DomainStreams
    from lldmix_core.distill import distill_loss_fn
    from lldmix_core.train import TrainConfig, train

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    n = 0
    while (task := broadcast_object()) is not None:
        lm = task.model.build()
        lm.module.to(device)
        loss_fn = None
        if task.teacher is not None:
            teacher = task.teacher.build()
            teacher.module.to(device)
            loss_fn = distill_loss_fn(teacher, task.objective, task.params)
        cfg = dict(task.cfg)
        cfg["betas"] = tuple(cfg["betas"])
        train(lm, DomainStreams.open(Path(task.streams)), list(task.domains), TrainConfig(**cfg), list(task.weights),
              eval_steps=list(task.eval_steps), loss_fn=loss_fn,
              checkpoint_path=None if task.checkpoint_path is None else Path(task.checkpoint_path))
        n += 1
    return n


def shard(items: list, rank: int, size: int) -> list:
    """Every size-th item starting at rank: contiguous ranks get interleaved, balanced shares."""
    return items[rank::size]
