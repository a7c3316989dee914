"""The training loop, top to bottom.

Each step draws ONE domain from the current domain weights and takes the whole batch from that
domain (the paper's setup). AdamW, linear warmup then cosine decay to `min_lr`, gradient clipping,
resumable checkpoints. Two random streams keep runs comparable across methods: one generator
draws the domains, and each domain has its own generator for batch offsets, so the i-th batch a
method takes from a domain is the same batch for every method with the same seed.

The loop knows nothing of LLD: at each evaluation step it calls `on_eval(step, lm, weights)`,
which may return new weights (iterative/adjusted LLD) or None (keep them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from lldmix_core.procgroup import broadcast_object as _from_rank0, world as _world
from lldmix_core.errors import UserError
from lldmix_core.outcomes import Cancelled  # noqa: F401  (raised here; importable from train as before)
from lldmix_core.faults import fault_point
from lldmix_core.checkpoint import checkpoint_is_complete, load_checkpoint, save_checkpoint
from lldmix_core.models.base import LanguageModel


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 16
    grad_accum: int = 1
    block_size: int = 256
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    seed: int = 0


class _DDPView:
    """`lm` with its logits computed through DistributedDataParallel, so backward all-reduces the
    gradients; everything else (tokenizer, device, …) is the wrapped model's."""

    def __init__(self, lm: LanguageModel, world: int):
        self._lm = lm
        self._ddp = torch.nn.parallel.DistributedDataParallel(_LogitsModule(lm))

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self._ddp(idx)

    def __getattr__(self, name):
        return getattr(self._lm, name)


class _LogitsModule(torch.nn.Module):
    def __init__(self, lm: LanguageModel):
        super().__init__()
        self.inner = lm.module  # registered, so DDP sees (and syncs) exactly the model's parameters
        self._logits = lm.logits

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self._logits(idx)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to cfg.min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    # Decay matrices (weights, embeddings), not biases or LayerNorm gains, as nanoGPT does.
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lm_loss(lm: LanguageModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, nats/token."""
    logits = lm.logits(x)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))


@dataclass
class TrainResult:
    steps_run: int  # steps executed in this call (0 when resumed at the end)
    final_loss: float | None
    weights: np.ndarray  # [K], the weights in force at the end
    history: list[dict] = field(default_factory=list)


def train(
    lm: LanguageModel,
    streams,  # corpus.streams.DomainStreams
    domains: Sequence[str],
    cfg: TrainConfig,
    weights: np.ndarray,
    *,
    eval_steps: Sequence[int] = (),
    on_eval: Callable[[int, LanguageModel, np.ndarray], np.ndarray | None] | None = None,
    on_step: Callable[[int, float, float, str], None] | None = None,
    checkpoint_path: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    loss_fn: Callable[[LanguageModel, torch.Tensor, torch.Tensor], torch.Tensor] = None,
) -> TrainResult:
    """Train `lm` in place for cfg.steps steps; eval steps may include cfg.steps (after the last update).

    `loss_fn(lm, x, y)` is the objective (default: next-token cross-entropy on the data; the engine
    passes a distillation objective for the distill-* methods)."""
    loss_fn = loss_fn or lm_loss
    device = lm.device
    module = lm.module
    rank, world = _world()
    if cfg.batch_size % world:
        raise UserError(f"training.batch_size {cfg.batch_size} must be a multiple of the {world} processes")
    rows = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)  # this rank's share
    student = _DDPView(lm, world) if world > 1 else lm  # gradients all-reduced by DDP during backward
    optimizer = make_optimizer(module, cfg)
    weights = np.asarray(weights, dtype=np.float64)
    domain_gen = torch.Generator().manual_seed(cfg.seed)
    batch_gens = [torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7919 * (k + 1)) for k in range(len(domains))]
    start = 0

    # --- resume ---------------------------------------------------------------------------------
    if checkpoint_path is not None and checkpoint_is_complete(checkpoint_path):
        state = load_checkpoint(checkpoint_path)
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        domain_gen.set_state(state["domain_gen"])
        for g, s in zip(batch_gens, state["batch_gens"]):
            g.set_state(s)
        weights = np.asarray(state["weights"], dtype=np.float64)
        start = int(state["step"])

    def save(step: int) -> None:
        if checkpoint_path is None or rank != 0:
            return
        save_checkpoint(
            checkpoint_path,
            {
                "config": lm.config,
                "tokenizer": lm.tokenizer.name,
                "model": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "domain_gen": domain_gen.get_state(),
                "batch_gens": [g.get_state() for g in batch_gens],
                "weights": torch.tensor(weights),
                "step": step,
            },
        )

    eval_set = set(eval_steps)
    use_amp = device.type == "cuda"
    loss_value = None
    history: list[dict] = []
    module.train()
    for step in range(start, cfg.steps):
        if step in eval_set and (on_eval is not None or world > 1):
            new = on_eval(step, lm, weights) if on_eval is not None and rank == 0 else None
            if world > 1:  # rank 0 evaluated; every rank takes its new weights
                new = _from_rank0(new)
            module.train()
            if new is not None:
                weights = np.asarray(new, dtype=np.float64)
        stop = should_stop is not None and rank == 0 and should_stop()
        if world > 1:
            stop = _from_rank0(stop)
        if stop:
            save(step)
            raise Cancelled(f"stopped at step {step}")

        # one domain for the whole step, drawn from the current weights
        k = int(torch.multinomial(torch.tensor(weights), 1, generator=domain_gen))
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for _ in range(cfg.grad_accum):
            # every rank draws the same global batch (same generators) and keeps its rows of it,
            # so N processes see exactly the batches one process would
            x, y = streams.get_batch(domains[k], cfg.batch_size, cfg.block_size, batch_gens[k])
            x, y = x[rows].to(device), y[rows].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(student, x, y) / cfg.grad_accum
            loss.backward()
            total += float(loss.detach())
        if world > 1:  # report the global batch's mean loss, as one process would
            t = torch.tensor([total], dtype=torch.float64)
            torch.distributed.all_reduce(t)
            total = float(t) / world
        fault_point("train_step")
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = total
        history.append({"step": step, "loss": total, "lr": lr, "domain": domains[k]})
        if on_step is not None and rank == 0:
            on_step(step, total, lr, domains[k])
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save(step + 1)

    if cfg.steps in eval_set and on_eval is not None and rank == 0:
        on_eval(cfg.steps, lm, weights)
    module.eval()
    save(cfg.steps)
    return TrainResult(steps_run=max(0, cfg.steps - start), final_loss=loss_value, weights=weights, history=history)
