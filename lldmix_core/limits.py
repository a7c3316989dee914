"""Plausibility limits: settings far beyond what any machine this tool runs on can do are refused
with a clear error instead of running for years or exhausting memory. Set LLDMIX_NO_LIMITS=1 (the
`--yes-i-mean-it` flag of `lldmix run` does this) to pass them anyway."""

from __future__ import annotations

import os

from lldmix_core.errors import UserError

MAX_STEPS = 10_000_000  # optimizer steps per model
MAX_BLOCK_SIZE = 1 << 20  # tokens of context
MAX_PARAMS = 100_000_000_000  # parameters of a NanoGPT the spec would train
MAX_DESCRIPTION_CHARS = 10_000
MAX_SEED = 2**32 - 1  # torch/numpy seeds are 32/64-bit; keep every consumer safe


def limits_waived() -> bool:
    return os.environ.get("LLDMIX_NO_LIMITS", "") not in ("", "0")


def check_plausible(spec, source: str = "spec") -> None:
    """Refuse steps, context and model memory far beyond this machine (bytes, tokens, steps)."""
    if limits_waived():
        return
    hint = " (pass --yes-i-mean-it to run it anyway)"
    steps = [("training.steps", spec.training.steps)]
    if spec.target.train is not None and spec.target.train.steps is not None:  # (a twin trains training.steps)
        steps.append(("target.train.steps", spec.target.train.steps))
    for field, n in steps:
        if n > MAX_STEPS:
            raise UserError(f"{source}: {field}: {n:,} steps is beyond {MAX_STEPS:,}{hint}")
    a = spec.arch
    if a.block_size > MAX_BLOCK_SIZE:
        raise UserError(f"{source}: arch.block_size: {a.block_size:,} tokens of context is beyond {MAX_BLOCK_SIZE:,}{hint}")
    vocab = a.vocab_size or 50304
    params = 12 * a.n_layer * a.n_embd ** 2 + vocab * a.n_embd + a.block_size * a.n_embd
    if params > MAX_PARAMS:
        raise UserError(f"{source}: arch: about {params:,} parameters ({params * 16 / 1e12:.1f} TB of weights and "
                        f"optimizer state) is beyond {MAX_PARAMS:,}{hint}")
    mem = _memory_bytes()
    need = params * 16  # fp32 weights + grads + two AdamW moments, bytes
    if mem and need > 4 * mem:
        raise UserError(f"{source}: arch: training needs about {need / 1e9:,.1f} GB (weights, gradients, optimizer "
                        f"state), far beyond this machine's {mem / 1e9:,.1f} GB{hint}")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
