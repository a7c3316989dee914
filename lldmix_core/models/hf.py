"""Hugging Face causal LMs loaded from a local folder, behind the same interface as NanoGPT.

No hub access: `local_files_only=True` always. `trust_remote_code` stays off unless the caller
(a spec that says so explicitly) turns it on; the dashboard never does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from lldmix_core.errors import UserError
from lldmix_core.models.base import LanguageModel
from lldmix_core.models.fused_head import Head
from lldmix_core.tokenizers import Tokenizer, get_tokenizer, refuse_custom_code


class HFLanguageModel(LanguageModel):
    folder_hash: str | None = None  # hash of the weights on disk; cleared once the module is trained

    def fingerprint(self) -> str:
        if self.folder_hash is None:
            return super().fingerprint()
        return hashlib.sha256(f"{self.folder_hash}:{self.tokenizer.identity}".encode()).hexdigest()

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        # The base model (GPT2Model, LlamaModel, GemmaModel, ...) ends with its final norm; right
        # padding needs no attention mask for a causal model since padded positions come last.
        return self.module.base_model(input_ids=idx).last_hidden_state

    def logits_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        head = self.head()
        if head is not None:
            return head.logits(h)
        logits = self.module.get_output_embeddings()(h)  # an output layer we cannot describe
        cap = getattr(self.module.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def head(self) -> Head | None:
        """The output layer as softcap(scale · (h Wᵀ + b)): a plain `nn.Linear`, the logit scaling of
        the model types in `_LOGIT_SCALES` (applied after the layer, as their forward does) and
        Gemma-2 style `final_logit_softcapping`. None (the plain path, `logits_from_hidden` without
        any scaling) when the output layer is not an `nn.Linear` or the config carries a logit
        scaling of a model type not listed here."""
        layer = self.module.get_output_embeddings()
        if type(layer) is not torch.nn.Linear:
            return None
        cfg = self.module.config
        scale = 1.0
        rule = next((r for prefix, r in _LOGIT_SCALES.items() if str(cfg.model_type).startswith(prefix)), None)
        if rule is not None:
            attr, divide = rule
            value = float(getattr(cfg, attr))
            scale = 1.0 / value if divide else value
        elif any(getattr(cfg, a, None) not in (None, 1, 1.0) for a in ("logit_scale", "logits_scaling")):
            return None
        cap = getattr(cfg, "final_logit_softcapping", None)
        return Head(layer.weight, layer.bias, scale=scale, softcap=float(cap) if cap else None)


# model_type prefix → (config attribute, divide?): the logits are multiplied by (or divided by) it after
# the output layer in the model's own forward (transformers' Cohere, Granite and HyperCLOVA X models)
_LOGIT_SCALES = {"cohere": ("logit_scale", False), "granite": ("logits_scaling", True),
                 "hyperclovax": ("logits_scaling", False)}


def _fingerprint_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}:
            h.update(f.relative_to(folder).as_posix().encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def load_hf_model(
    folder: str | Path,
    *,
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> HFLanguageModel:
    """Load `AutoModelForCausalLM` from a local folder. `tokenizer` overrides the folder's own
    (e.g. "gpt2" for a folder that has weights only)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(folder)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise UserError(f"model folder {path} does not exist or has no config.json")
    refuse_custom_code(path.resolve(), trust_remote_code)  # before transformers reads anything
    tok: Tokenizer = get_tokenizer(tokenizer or f"hf:{path.resolve()}", trust_remote_code)
    try:  # trust_remote_code always explicit: left unset, transformers asks on stdin
        cfg = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        module = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code, dtype=dtype
        )
    except (ValueError, KeyError) as e:  # e.g. a model_type transformers does not know
        raise UserError(f"model folder {path.resolve()}: cannot load a model ({_first_line(e)})") from None
    module.eval()
    max_ctx = int(
        getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    )
    lm = HFLanguageModel(
        kind="hf",
        module=module,
        tokenizer=tok,
        max_context=max_ctx,
        config={"arch": "hf", "model_type": cfg.model_type, "tokenizer": tok.name},
        source=str(path.resolve()),
    )
    lm.folder_hash = _fingerprint_folder(path)  # the weights on disk are the model's identity
    return lm
