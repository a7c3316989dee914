"""The one narrow interface for "a model that scores text", and its NanoGPT implementation.

A `LanguageModel` turns token ids into final hidden states and hidden states into next-token
logits; `head()` describes that output layer as tensors for the fused scoring head (fused_head.py).
Keeping the two apart lets the scorer apply the output layer to a few rows at a time, so a
50k-vocabulary log-softmax is never held for a whole batch.

First-token convention: every text is scored as the sequence [BOS] + tokens(text), so the first
token is conditioned on the tokenizer's BOS/end-of-text token and every token of the text is
scored. A text's log-likelihood is the sum over all its tokens (nats/text).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch

from lldmix_core.models.fused_head import Head
from lldmix_core.models.nanogpt import NanoGPT
from lldmix_core.tokenizers import Tokenizer


def fingerprint_module(module: torch.nn.Module, config: dict, tokenizer_identity: str) -> str:
    """sha256 over the config, tokenizer identity and every parameter/buffer's bytes (by name)."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(tokenizer_identity.encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class LanguageModel:
    """A causal LM behind the narrow interface. `kind` is "nanogpt" or "hf"."""

    kind: str
    module: torch.nn.Module
    tokenizer: Tokenizer
    max_context: int  # tokens the model attends to at once
    config: dict = field(default_factory=dict)
    source: str = ""

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states [B, T, d] for ids [B, T]."""
        return self.module.hidden(idx)

    def logits_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Next-token logits [..., V] for hidden states [..., d]."""
        return self.module.lm_head(h)

    def head(self) -> Head | None:
        """The output layer as tensors (for the fused scoring head), or None when `logits_from_hidden`
        is not softcap(scale · (h Wᵀ + b)); the scorer then takes the plain path. A subclass that
        overrides `logits_from_hidden` without overriding `head` gets None too (its logits are its own)."""
        if type(self).logits_from_hidden is not LanguageModel.logits_from_hidden and type(self).head is LanguageModel.head:
            return None
        layer = getattr(self.module, "lm_head", None)
        if type(layer) is not torch.nn.Linear:
            return None
        return Head(layer.weight, layer.bias)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits_from_hidden(self.hidden(idx))

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def fingerprint(self) -> str:
        return fingerprint_module(self.module, self.config, self.tokenizer.identity)


def nanogpt_model(module: NanoGPT, tokenizer: Tokenizer, source: str = "") -> LanguageModel:
    if module.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"model vocab_size {module.config.vocab_size} < tokenizer {tokenizer.name} vocab {tokenizer.vocab_size}"
        )
    return LanguageModel(
        kind="nanogpt",
        module=module,
        tokenizer=tokenizer,
        max_context=module.config.block_size,
        config={"arch": "nanogpt", "tokenizer": tokenizer.name, **module.config.to_dict()},
        source=source,
    )
