"""Knowledge distillation from the target as a training objective (the paper's §4.4 baselines).

The trainer takes any `loss_fn(lm, x, y)`; this builds one that runs the teacher (the target) on the
same batch without gradients and applies an objective from `objectives.py` over the tokenizer's
vocabulary (padding rows of the output layer beyond it are ignored).
"""

from __future__ import annotations

import torch

from lldmix_core.errors import UserError
from lldmix_core.models.base import LanguageModel
from lldmix_core.objectives import distillation_loss


def check_same_tokenizer(student: LanguageModel, teacher: LanguageModel) -> None:
    if student.tokenizer.identity != teacher.tokenizer.identity:
        raise UserError(
            f"distillation needs the same tokenizer for base and target: base uses {student.tokenizer.name}, "
            f"target uses {teacher.tokenizer.name}"
        )


def distill_loss_fn(teacher: LanguageModel, objective: str, params: dict):
    """A `loss_fn(lm, x, y)` for train(): objective(student ‖ teacher) in nats/token."""
    V = teacher.tokenizer.vocab_size
    teacher.module.eval()
    for p in teacher.module.parameters():
        p.requires_grad_(False)

    def loss_fn(lm: LanguageModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The student's distribution is over ALL its output rows, padding included (NanoGPT pads the
        # vocabulary to a multiple of 64): sliced to the tokenizer's V, the loss would never push
        # mass off the padding rows, and scoring — which normalises over every row — would find it
        # leaking there. The teacher gives those rows ~zero probability (30 nats below its least
        # likely token: finite, so reverse KL and AMiD stay finite too).
        s = lm.logits(x).float()
        s = s.reshape(-1, s.size(-1))
        with torch.no_grad():
            t = teacher.logits(x)[..., :V].reshape(-1, V).float()
            if s.size(-1) > V:
                floor = t.amin(dim=-1, keepdim=True) - 30.0
                t = torch.cat([t, floor.expand(-1, s.size(-1) - V)], dim=-1)
        return distillation_loss(objective, s, t, y.reshape(-1), **params)

    return loss_fn
