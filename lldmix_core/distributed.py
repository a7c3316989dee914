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

import os
from dataclasses import asdict

import torch

from lldmix_core.procgroup import broadcast_object, init_from_env, is_leader, world  # noqa: F401  (re-exported)


def broadcast_task(task: dict | None) -> None:
    """Rank 0: tell the followers what to train next (None: the spec is done)."""
    if world()[1] > 1:
        broadcast_object(task)


def describe_task(*, model: dict, streams: str, domains, cfg, weights, eval_steps, checkpoint_path,
                  teacher: dict | None = None, objective: str | None = None, params: dict | None = None) -> dict:
    """A picklable description of one training, enough for a follower to rebuild it."""
    return {"model": model, "streams": str(streams), "domains": list(domains), "cfg": asdict(cfg),
            "weights": [float(w) for w in weights], "eval_steps": list(eval_steps),
            "checkpoint_path": None if checkpoint_path is None else str(checkpoint_path),
            "teacher": teacher, "objective": objective, "params": params or {}}


def build_model(desc: dict):
    """A LanguageModel from {"init": {config, tokenizer, seed}} or {"kind", "source", "tokenizer"}."""
    from lldmix_core.models import NanoGPTConfig, load_model, new_nanogpt

    if "init" in desc:
        init = desc["init"]
        return new_nanogpt(NanoGPTConfig(**init["config"]), init["tokenizer"], init["seed"])
    return load_model(desc["kind"], desc["source"], tokenizer=desc.get("tokenizer"))


def follow() -> int:
    """Ranks > 0: train whatever rank 0 announces until it says stop; returns the number of tasks."""
    from pathlib import Path

    from lldmix_core.corpus.streams import DomainStreams
    from lldmix_core.distill import distill_loss_fn
    from lldmix_core.train import TrainConfig, train

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    n = 0
    while (task := broadcast_object()) is not None:
        lm = build_model(task["model"])
        lm.module.to(device)
        loss_fn = None
        if task["teacher"] is not None:
            teacher = build_model(task["teacher"])
            teacher.module.to(device)
            loss_fn = distill_loss_fn(teacher, task["objective"], task["params"])
        cfg = dict(task["cfg"])
        cfg["betas"] = tuple(cfg["betas"])
        train(lm, DomainStreams.open(Path(task["streams"])), task["domains"], TrainConfig(**cfg), task["weights"],
              eval_steps=task["eval_steps"], loss_fn=loss_fn,
              checkpoint_path=None if task["checkpoint_path"] is None else Path(task["checkpoint_path"]))
        n += 1
    return n


def shard(items: list, rank: int, size: int) -> list:
    """Every size-th item starting at rank: contiguous ranks get interleaved, balanced shares."""
    return items[rank::size]
