"""Training data: each domain's documents tokenised once into a memory-mapped token file.

Layout of a streams folder: `manifest.json` (domains, token counts, dtype, tokenizer identity) and
one flat little-endian token file per domain (uint16, or uint32 for vocabularies over 65,535),
every document preceded by the tokenizer's BOS token. Built in a temp folder and renamed, so a
folder with a manifest is always complete. Batches are nanoGPT-style random windows of one domain.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from lldmix_core.atomic import file_lock, pid_alive
from lldmix_core.errors import UserError
from lldmix_core.faults import fault_point


def _write_token_files(records: Iterable[tuple[str, str]], tokenizer, folder: Path,
                       dtype: np.dtype) -> tuple[dict[str, str], dict[str, int]]:
    """Tokenise `records` into one file per domain in `folder`: ({domain: file name}, {domain: tokens})."""
    files, counts, handles, used = {}, {}, {}, set()
    try:
        for domain, text in records:
            if domain not in handles:
                name = _slug(domain)
                while name in used:
                    name += "_"
                used.add(name)
                files[domain] = f"{name}.bin"
                handles[domain] = open(folder / files[domain], "wb")
                counts[domain] = 0
            ids = np.asarray([tokenizer.bos_id, *tokenizer.encode(text)], dtype=dtype)
            handles[domain].write(ids.tobytes())
            fault_point("token_write")
            counts[domain] += len(ids)
    finally:
        for h in handles.values():
            h.close()
    return files, counts


def _remove_dead_temps(out_dir: Path) -> None:
    """Delete temp folders of `out_dir` left by builders that were killed (SIGKILL cleans nothing up);
    called under the build's lock, so no live builder of this folder can be in the way."""
    for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _slug(domain: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", domain)[:60] or "domain"


class DomainStreams:
    def __init__(self, folder: Path, manifest: dict):
        self.folder = Path(folder)
        self.manifest = manifest
        self.domains: tuple[str, ...] = tuple(manifest["domains"])
        dtype = np.dtype(manifest["dtype"])
        self._data = {d: np.memmap(self.folder / manifest["files"][d], dtype=dtype, mode="r") for d in self.domains}

    @classmethod
    def open(cls, folder: Path) -> "DomainStreams":
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError:
            raise UserError(f"token streams {folder} are missing (no manifest.json)") from None
        return cls(folder, manifest)

    @classmethod
    def build(cls, records: Iterable[tuple[str, str]], tokenizer, out_dir: Path) -> "DomainStreams":
        out_dir = Path(out_dir)
        with file_lock(out_dir.parent / f".{out_dir.name}.lock"):  # concurrent workers build it once
            return cls._build(records, tokenizer, out_dir)

    @classmethod
    def _build(cls, records: Iterable[tuple[str, str]], tokenizer, out_dir: Path) -> "DomainStreams":
        if (out_dir / "manifest.json").is_file():
            streams = cls.open(out_dir)
            if streams.manifest.get("tokenizer") == tokenizer.identity:
                return streams
        dtype = np.dtype("<u2" if tokenizer.vocab_size <= 65535 else "<u4")
        tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
        _remove_dead_temps(out_dir)
        shutil.rmtree(tmp, ignore_errors=True)
        try:  # every failure (full disk, bad record, Ctrl-C) removes the temp folder: nothing is left
            tmp.mkdir(parents=True)
            files, counts = _write_token_files(records, tokenizer, tmp, dtype)
            if not counts:
                raise UserError("training corpus has no records")
            manifest = {"domains": sorted(counts), "files": files, "n_tokens": counts,
                        "dtype": dtype.str, "tokenizer": tokenizer.identity,
                        "tokenizer_name": tokenizer.name}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            if out_dir.exists():
                shutil.rmtree(out_dir)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out_dir)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UserError(f"could not write the token files {out_dir}: no space left on the device "
                                "(nothing was changed; the partial files were removed)") from None
            raise
        return cls(out_dir, manifest)

    def n_tokens(self, domain: str) -> int:
        return int(self.manifest["n_tokens"][domain])

    def get_batch(self, domain: str, batch_size: int, block_size: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y int64 [B, T] from random offsets into `domain`'s tokens; y is x shifted by one."""
        data = self._data.get(domain)
        if data is None:
            raise UserError(f"no training tokens for domain {domain!r}")
        if len(data) < block_size + 1:
            raise UserError(f"domain {domain!r} has {len(data)} training tokens, fewer than a context of {block_size} + 1")
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
        x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in starts])
        return x, y
