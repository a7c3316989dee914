"""Scale-out paths on small stand-ins: the paper specs' dry run, and a Hugging Face target whose
tokenizer differs from the base's (per-byte Δ; a warning when per-token units would be mixed)."""

import json
import sqlite3
from pathlib import Path

import pytest
import zstandard

from conftest import run_cli

pytestmark = pytest.mark.slow


def _pile_standin(root: Path) -> None:
    """The Pile Uncopyrighted's layout (train/NN.jsonl.zst, val.jsonl.zst) with a few real-format records."""
    recs = [{"text": f"{d} text number {i}. " * 40, "meta": {"pile_set_name": d}}
            for i in range(6) for d in ("Github", "Pile-CC", "StackExchange", "Ubuntu IRC", "HackerNews")]
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    (root / "pile-uncopyrighted" / "train").mkdir(parents=True)
    for name in ("train/00.jsonl.zst", "train/01.jsonl.zst", "val.jsonl.zst"):
        (root / "pile-uncopyrighted" / name).write_bytes(zstandard.ZstdCompressor().compress(data))


def _tiny_hf_gpt2(folder: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50257, n_embd=32, n_layer=2, n_head=2, n_positions=256)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder)


def test_paper_specs_dry_run_against_standin_folders(home):
    _pile_standin(home)
    (home / "models" / "gemma-2b").mkdir(parents=True)
    (home / "models" / "gemma-2b" / "config.json").write_text("{}")
    env = {"LLDMIX_HOME": str(home)}
    for spec in ("paper-gemma2b", "paper-codenanogpt"):
        out = run_cli("run", "--dry-run", f"runs/{spec}.yaml", env=env).stdout
        assert "124," in out or "123," in out  # the 124M NanoGPT's parameter count is printed
        assert "524,288 tokens/step" in out and "FLOP" in out and "[0, 1, 2, 4" in out
    (home / "models" / "gemma-2b" / "config.json").unlink()
    bad = run_cli("run", "--dry-run", "runs/paper-gemma2b.yaml", env=env, check=False)
    assert bad.returncode == 2 and "config.json" in bad.stderr


def test_hf_target_with_another_tokenizer(home):
    _tiny_hf_gpt2(home / "models" / "tiny-gpt2")
    env = {"LLDMIX_HOME": str(home)}
    run_cli("db", "upgrade", env=env)
    spec = home / "hf.yaml"
    base = {"name": "hf-target", "tokenizer": "bytes", "corpus": {"local": True, "eval_per_domain": 2},
            "arch": {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64},
            "target": {"path": "models/tiny-gpt2", "kind": "hf", "tokenizer": "gpt2"},
            "training": {"steps": 4, "batch_size": 2, "warmup_steps": 1}, "methods": ["uniform", "iterative-lld"],
            "lld": {"unit": "byte"}, "tracking": {"mlflow": False},
            # few short draws: the sampled KL across tokenizers is tested in test_sampled_kl.py
            "kl": {"sampled": {"n_samples": 16, "n_tokens": 32}}}
    spec.write_text(json.dumps(base))
    out = run_cli("run", str(spec), env=env).stdout
    assert "mixes units" not in out
    con = sqlite3.connect(home / "lldmix.db")
    tokenizers = {r[0] for r in con.execute("SELECT tokenizer FROM models")}
    assert tokenizers == {"bytes", "gpt2"}
    assert con.execute("SELECT count(*) FROM kl_results").fetchone()[0] > 0
    spec.write_text(json.dumps({**base, "name": "hf-target-token", "lld": {"unit": "token"}}))
    assert "mixes units" in run_cli("run", str(spec), env=env).stdout


def test_paper_specs_are_the_papers_experiment():
    """Table 4's Code column as the CodeNanoGPT target's weights (not multipliers of uniform), and
    both paper specs evaluate on 10,000 texts in proportion to the corpus."""
    from lldmix_core.spec import load_spec

    code = load_spec("runs/paper-codenanogpt.yaml")
    w = code.target.train.weights
    assert len(w) == 17 and not code.target.train.multipliers
    assert w["Github"] == 0.202 and w["StackExchange"] == 0.137 and w["Pile-CC"] == 0.185
    share = sum(w[d] for d in ("Github", "StackExchange", "Ubuntu IRC", "HackerNews")) / sum(w.values())
    assert share == pytest.approx(0.379, abs=5e-4)  # the paper's 37.9 % code share
    for name in ("paper-codenanogpt", "paper-gemma2b"):
        c = load_spec(f"runs/{name}.yaml").corpus
        assert c.eval_total == 10000 and c.eval_seed == 42 and (c.min_bytes, c.max_bytes) == (256, 1024)
