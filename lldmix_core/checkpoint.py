"""Checkpoints that are never half-written: temp file, fsync, rename, sha256 sidecar verified on load."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from lldmix_core.atomic import atomic_write_bytes, remove_stale_temps, sha256_file
from lldmix_core.errors import UserError


def save_checkpoint(path: Path, payload: dict) -> str:
    """Save a torch payload atomically; returns its sha256 (also written to `<path>.sha256`).

    The sidecar is written after the checkpoint, so a checkpoint without a matching sidecar is
    treated as incomplete.
    """
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if Path(path).parent.is_dir():
        remove_stale_temps(Path(path).parent)  # left by a writer killed mid-save
    atomic_write_bytes(Path(path), data)
    atomic_write_bytes(Path(f"{path}.sha256"), digest.encode())
    return digest


def checkpoint_is_complete(path: Path) -> bool:
    side = Path(f"{path}.sha256")
    return Path(path).is_file() and side.is_file() and side.read_text().strip() == sha256_file(Path(path))


def load_checkpoint(path: Path, *, verify: bool = True) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if verify:
        side = Path(f"{path}.sha256")
        if not side.is_file():
            raise UserError(f"checkpoint {path} has no checksum file {side.name}: it may be incomplete")
        if side.read_text().strip() != sha256_file(path):
            raise UserError(f"checkpoint {path} does not match its checksum: the file is corrupt")
    return torch.load(path, map_location="cpu", weights_only=True)
