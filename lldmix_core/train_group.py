"""Training several NanoGPTs of one configuration together: one forward, one backward and one optimizer
step per training step for the whole group (lldmix_core/models/nanogpt_group.py stacks their parameters).

Each member keeps everything that makes it its own run, exactly as `train.train` does for one model:
its initial weights, its seed's domain and batch generators (so the i-th batch a member takes from a
domain is the one its method would take alone), its domain weights and re-weighting at its evaluation
steps, the learning-rate schedule (members share every setting but the seed), gradient clipping by its own gradient norm, its checkpoints and
resume, and its callbacks (the engine's Evaluator and StepLogger write its database and MLflow rows).

A member's numbers do not depend on which group it trains in (the same member alone through this path
gives bit-identical parameters: tests/test_train_group.py). They do differ in the last bits from the
one-model path (`train.train`: other matmul kernels), so a grouped run is keyed and labelled as such
(run_keys.run_key's `grouped`, provenance `train_path`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from lldmix_core.checkpoint import checkpoint_is_complete, load_checkpoint, save_checkpoint
from lldmix_core.faults import fault_point
from lldmix_core.models.base import LanguageModel
from lldmix_core.models.nanogpt import NanoGPT
from lldmix_core.models.nanogpt_group import GroupedNanoGPT, group_losses
from lldmix_core.outcomes import Cancelled
from lldmix_core.train import TrainConfig, TrainResult, lr_at

TRAIN_PATH = "grouped-v1"  # the path's name in run keys and provenance (bump when its numbers change)


@dataclass
class GroupMember:
    """One model of a group and what its run does while training (as the arguments of `train.train`)."""

    lm: LanguageModel
    cfg: TrainConfig
    weights: np.ndarray  # [K] the domain weights at the first step
    eval_steps: Sequence[int] = ()
    on_eval: Callable[[int, LanguageModel, np.ndarray], np.ndarray | None] | None = None
    on_step: Callable[[int, float, float, str], None] | None = None
    checkpoint_path: Path | None = None


def can_group(lm: LanguageModel) -> bool:
    """Whether `lm` can train in a group: a NanoGPT with dropout 0 and biases (what lldmix trains)."""
    m = lm.module
    return lm.kind == "nanogpt" and isinstance(m, NanoGPT) and m.config.dropout == 0.0 and m.config.bias


class _MemberState:
    """A member's random streams, weights and step: what its checkpoint restores."""

    def __init__(self, member: GroupMember, n_domains: int):
        seed = member.cfg.seed
        self.member = member
        self.weights = np.asarray(member.weights, dtype=np.float64)
        self.domain_gen = torch.Generator().manual_seed(seed)
        self.batch_gens = [torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (k + 1)) for k in range(n_domains)]
        self.start = 0
        self.moments: dict | None = None  # {param name: (exp_avg, exp_avg_sq)} from a checkpoint
        self.history: list[dict] = []
        self.loss: float | None = None
        path = member.checkpoint_path
        if path is not None and checkpoint_is_complete(path):
            state = load_checkpoint(path)
            if state.get("train_path") != TRAIN_PATH:
                raise ValueError(f"{path}: not a checkpoint of the grouped training path ({TRAIN_PATH})")
            member.lm.module.load_state_dict(state["model"])
            self.domain_gen.set_state(state["domain_gen"])
            for g, s in zip(self.batch_gens, state["batch_gens"]):
                g.set_state(s)
            self.weights = np.asarray(state["weights"], dtype=np.float64)
            self.start = int(state["step"])
            self.moments = state["moments"]


def _same_settings(members: Sequence[GroupMember]) -> None:
    first = dataclasses.replace(members[0].cfg, seed=0)
    for m in members[1:]:
        if dataclasses.replace(m.cfg, seed=0) != first:
            raise ValueError("a group's members must share every training setting but the seed")


def train_group(members: Sequence[GroupMember], streams, domains: Sequence[str], *,
                should_stop: Callable[[], bool] | None = None) -> list[TrainResult]:
    """Train every member in place for its cfg.steps steps, together; results in the members' order.

    Members resumed at different steps train in separate groups (results do not depend on grouping)."""
    if not members:
        return []
    _same_settings(members)
    states = [_MemberState(m, len(domains)) for m in members]
    results: dict[int, TrainResult] = {}
    for start in sorted({s.start for s in states}):
        idx = [i for i, s in enumerate(states) if s.start == start]
        for i, r in zip(idx, _train_together([states[i] for i in idx], streams, domains, should_stop)):
            results[i] = r
    return [results[i] for i in range(len(members))]


def _optimizer(group: GroupedNanoGPT, cfg: TrainConfig, states: Sequence[_MemberState]) -> torch.optim.AdamW:
    """AdamW over the stacked parameters (elementwise, so each member's update is its own): decay on the
    members' matrices (weights, embeddings), not on biases or LayerNorm gains, as `train.make_optimizer`."""
    named = group.named_stacked()
    decay = [p for _, p in named if p.dim() >= 3]
    no_decay = [p for _, p in named if p.dim() < 3]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)
    if states[0].moments is not None:  # resumed: every member of this group stopped at the same step
        for name, p in named:
            opt.state[p] = {"step": torch.tensor(float(states[0].start)),
                            "exp_avg": torch.stack([s.moments[name][0] for s in states]).to(p.device),
                            "exp_avg_sq": torch.stack([s.moments[name][1] for s in states]).to(p.device)}
    return opt


def _clip_per_member(group: GroupedNanoGPT, max_norm: float) -> None:
    """Scale each member's gradient so that its global L2 norm is at most `max_norm` (as
    torch.nn.utils.clip_grad_norm_ does for one model), member by member so the sums never mix."""
    grads = [p.grad for _, p in group.named_stacked() if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g[i]) for g in grads]))
                         for i in range(group.size)])
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


def _save(path: Path | None, lm: LanguageModel, group: GroupedNanoGPT, opt, g: int, state: _MemberState, step: int) -> None:
    if path is None:
        return
    group.copy_to(g, lm.module)
    moments = {}
    for name, p in group.named_stacked():
        s = opt.state.get(p)
        if s:
            moments[name] = (s["exp_avg"][g].detach().cpu().clone(), s["exp_avg_sq"][g].detach().cpu().clone())
    save_checkpoint(path, {"config": lm.config, "tokenizer": lm.tokenizer.name, "model": lm.module.state_dict(),
                           "moments": moments or None, "train_path": TRAIN_PATH,
                           "domain_gen": state.domain_gen.get_state(), "batch_gens": [b.get_state() for b in state.batch_gens],
                           "weights": torch.tensor(state.weights), "step": step})


def _train_together(states: Sequence[_MemberState], streams, domains, should_stop) -> list[TrainResult]:
    """The loop, top to bottom, for members that all start at the same step."""
    members = [s.member for s in states]
    cfg = members[0].cfg
    device = members[0].lm.device
    group = GroupedNanoGPT.from_members([m.lm.module for m in members])
    opt = _optimizer(group, cfg, states)
    start = states[0].start
    eval_sets = [set(m.eval_steps) for m in members]
    use_amp = device.type == "cuda"

    def save_all(step: int) -> None:
        for g, (m, s) in enumerate(zip(members, states)):
            _save(m.checkpoint_path, m.lm, group, opt, g, s, step)

    for step in range(start, cfg.steps):
        for g, (m, s) in enumerate(zip(members, states)):  # evaluation (and re-weighting) before the step
            if step in eval_sets[g] and m.on_eval is not None:
                group.copy_to(g, m.lm.module)
                new = m.on_eval(step, m.lm, s.weights)
                if new is not None:
                    s.weights = np.asarray(new, dtype=np.float64)
        if should_stop is not None and should_stop():
            save_all(step)
            raise Cancelled(f"stopped at step {step}")
        # each member draws its one domain for the step from its own weights and generator
        ks = [int(torch.multinomial(torch.tensor(s.weights), 1, generator=s.domain_gen)) for s in states]
        lr = lr_at(step, cfg)  # members share every setting but the seed, so one schedule serves all
        for pg in opt.param_groups:
            pg["lr"] = lr
        totals = torch.zeros(len(members), dtype=torch.float64)
        for _ in range(cfg.grad_accum):
            batches = [streams.get_batch(domains[k], cfg.batch_size, cfg.block_size, s.batch_gens[k]) for k, s in zip(ks, states)]
            x = torch.stack([b[0] for b in batches]).to(device)
            y = torch.stack([b[1] for b in batches]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = group_losses(group, x, y) / cfg.grad_accum
            losses.sum().backward()  # members share no parameter: each gets the gradient of its own loss
            totals += losses.detach().double().cpu()
        fault_point("train_step")
        if cfg.grad_clip > 0:
            _clip_per_member(group, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        for g, (m, s) in enumerate(zip(members, states)):
            loss = float(totals[g])
            s.loss = loss
            s.history.append({"step": step, "loss": loss, "lr": lr, "domain": domains[ks[g]]})
            if m.on_step is not None:
                m.on_step(step, loss, lr, domains[ks[g]])
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save_all(step + 1)

    for g, (m, s) in enumerate(zip(members, states)):
        group.copy_to(g, m.lm.module)
        if cfg.steps in eval_sets[g] and m.on_eval is not None:
            m.on_eval(cfg.steps, m.lm, s.weights)
        m.lm.module.eval()
    save_all(cfg.steps)
    return [TrainResult(steps_run=max(0, cfg.steps - s.start), final_loss=s.loss, weights=s.weights, history=s.history)
            for s in states]
