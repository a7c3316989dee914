"""Which code, libraries and machine made a number: recorded with every run, printed under every table.

`NUMERICS_VERSION` is raised whenever a change alters the numbers a run produces (scoring, training,
KL estimators, corpus sampling). It enters the run keys, so the database never hands back results
computed by code whose numbers differ; provenance (commit, dirty tree) is recorded but does not key,
so a comment edit does not force a recomputation.

Floor 1: standard library only (torch is read if already importable, never required).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import lldmix_core

# 1: the first version (model-map KL only).
# 2: the method registry, sampled KL beside the model map, frozen default corpus.
# 3: the fused scoring head (models/fused_head.py): scores round differently from v2's full log-softmax,
#    ~1e-9 relative per text at a 320-byte vocabulary (1 of 216 stored float32 values moved by an ulp),
#    ~1e-7 at GPT-2's 50,257.
NUMERICS_VERSION = 3

_SOURCE_ROOT = Path(lldmix_core.__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_SOURCE_ROOT), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, object]:
    """lldmix's version, git commit (None outside a checkout) and whether tracked files differ from it."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"lldmix_version": lldmix_core.__version__, "git_commit": commit, "git_dirty": dirty,
            "numerics_version": NUMERICS_VERSION}


def runtime() -> dict[str, object]:
    """Python, torch, device and thread count of this process."""
    info: dict[str, object] = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811  (the engine has it; the dashboard never calls this)
        except ImportError:
            torch = None
    if torch is not None:
        cuda = torch.cuda.is_available()
        info.update(torch=torch.__version__, device=torch.cuda.get_device_name(0) if cuda else "cpu",
                    threads=torch.get_num_threads())
    else:
        info.update(torch=None, device="cpu", threads=os.cpu_count())
    return info


def collect(corpus_hash: str | None = None, tokenizer_hash: str | None = None) -> dict[str, object]:
    """Everything a stored number should say about where it came from."""
    return {**code_version(), **runtime(), "corpus_hash": corpus_hash, "tokenizer_hash": tokenizer_hash}


def short_commit(p: dict) -> str:
    c = p.get("git_commit")
    if not c:
        return "unknown commit"
    return f"{str(c)[:10]}{' (dirty)' if p.get('git_dirty') else ''}"


def footer(p: dict, seeds=None) -> str:
    """One line for the bottom of a results table."""
    parts = [f"lldmix {p.get('lldmix_version')} @ {short_commit(p)}", f"numerics v{p.get('numerics_version')}"]
    if p.get("corpus_hash"):
        parts.append(f"corpus {str(p['corpus_hash'])[:12]}")
    if p.get("tokenizer_hash"):
        parts.append(f"tokenizer {str(p['tokenizer_hash'])[:12]}")
    if seeds is not None:
        parts.append("seeds " + ",".join(map(str, seeds)))
    if p.get("torch"):
        parts.append(f"torch {p['torch']} on {p.get('device')} × {p.get('threads')} threads")
    return "Provenance: " + "; ".join(parts)


def mlflow_tags(p: dict) -> dict[str, str]:
    """The same, as MLflow tags (`mlflow.source.git.commit` is MLflow's own tag for the code version)."""
    tags = {f"lldmix.{k}": str(v) for k, v in p.items() if v is not None}
    if p.get("git_commit"):
        tags["mlflow.source.git.commit"] = str(p["git_commit"])
    return tags
