"""Iterative-LLD as a Hugging Face Trainer callback (lldmix_core/integrations/hf_trainer.py) under
2 processes (torchrun; the Trainer's accelerate joins a gloo group): a tiny GPT-2 (2 layers × 32) trains 12 steps on a
3-domain corpus the test writes. Checked against expectations computed here, not by lldmix:
every rank decided the same weights at every schedule step; the stored weights are softmax(Δ/τ)·prior
of the stored Δ; Δ at step 0 is the target minus the initial model's per-domain log-likelihood from a
plain HF forward pass; and the items the Trainer actually drew follow the weights in force."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("code", "digits", "prose")
TRAIN = {
    "code": ["def f(x):\n    return x + 1\n", "for i in range(10):\n    print(i)\n", "class A:\n    pass\n"] * 6,
    "digits": ["3141592653 5897932384 6264338327", "2718281828 4590452353 6028747135"] * 6,
    "prose": ["The cat sat on the mat and looked out of the window.", "Rain fell softly over the quiet town."] * 6,
}
EVAL = [("code", "def g(y):\n    return y * 2\n"), ("code", "while True:\n    break\n"),
        ("digits", "1414213562 3730950488"), ("digits", "1732050807 5688772935"),
        ("prose", "A dog ran across the green field."), ("prose", "The sun rose over the hills.")]
TARGET = {"code": -2.0, "digits": -3.5, "prose": -4.0}  # ℓ_target, nats/token (bytes here)
TAU, STEPS = 0.5, 12  # τ in nats/token
SCHEDULE = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]  # 0, powers of two below 12/10, then round(i · 1.2) for i = 1..9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _initial_means(model_dir: Path) -> np.ndarray:
    """ℓ_k of the initial model, nats/token: [BOS] + bytes, every byte predicted, plain HF forward."""
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(model_dir, local_files_only=True).eval()
    tot, n = dict.fromkeys(DOMAINS, 0.0), dict.fromkeys(DOMAINS, 0)
    for d, t in EVAL:
        ids = torch.tensor([[256, *t.encode()]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[:, :-1]).logits.double(), -1)
        tot[d] += float(logp[0].gather(-1, ids[0, 1:, None]).sum())
        n[d] += ids.shape[1] - 1
    return np.array([tot[d] / n[d] for d in DOMAINS])


def test_callback_in_two_gloo_processes_under_the_trainer(tmp_path, store, home):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=257, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "model")
    (tmp_path / "data.json").write_text(json.dumps({"train": TRAIN, "eval": EVAL, "target": TARGET, "tau": TAU,
                                                    "steps": STEPS, "per_device": 4, "block": 32}))
    out = tmp_path / "out"
    out.mkdir()
    # torchrun starts the 2 processes (`accelerate launch --cpu` starts only one: its local multi-CPU mode
    # is mpirun's); the Trainer's accelerate state reads their environment and joins a gloo group
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           str(ROOT / "tests/fixtures/hf_trainer_worker.py"), str(tmp_path), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]

    # (a) every rank decided the same weights, Δ and τ at the same schedule steps
    h0, h1 = ranks[0]["history"], ranks[1]["history"]
    assert [h["step"] for h in h0] == SCHEDULE
    assert h0 == h1
    assert ranks[0]["final_weights"] == ranks[1]["final_weights"] == h0[-1]["weights"]

    # (b) the stored run: weights per step = softmax(Δ/τ) · uniform prior from the stored Δ and τ
    run_id = ranks[0]["run_id"]
    assert ranks[1]["run_id"] is None  # rank 1 wrote nothing
    run = store.get_run(run_id)
    assert run.method == "iterative-lld" and run.tau == pytest.approx(TAU) and run.status == "finished"
    weights = store.get_weights(run_id)
    metrics = store.get_metrics(run_id)
    assert sorted(weights) == SCHEDULE
    for step in SCHEDULE:
        delta = np.array([next(m["value"] for m in metrics if m["step"] == step and m["key"] == f"delta/{d}")
                          for d in DOMAINS])
        e = np.exp((delta - delta.max()) / TAU) / 3
        np.testing.assert_allclose([weights[step][d] for d in DOMAINS], e / e.sum(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(delta, h0[SCHEDULE.index(step)]["delta"], rtol=1e-12)
    assert any(m["key"] == "train_loss" for m in metrics)
    # Δ at step 0 is ℓ_target − ℓ of the initial model, computed here without lldmix's scoring
    d0 = np.array(h0[0]["delta"])
    np.testing.assert_allclose(d0, np.array([TARGET[d] for d in DOMAINS]) - _initial_means(tmp_path / "model"),
                               atol=1e-4)
    # the weights moved away from the prior (else (b) would hold trivially for any Δ near 0)
    assert max(h0[0]["weights"]) > 0.8

    # the dataset the Trainer drew from followed the weights: items fetched while version v ≥ 1 was in
    # force, per rank, against the share the weights in force promise (uniform would give 1/3 each)
    for r in ranks:
        drawn = {int(v): np.array(c) for v, c in r["drawn"].items()}
        assert sorted(drawn) == list(range(len(SCHEDULE) + 1))
        n = sum(drawn[v].sum() for v in drawn if v >= 1)
        assert n >= 30
        code_share = sum(drawn[v][0] for v in drawn if v >= 1) / n
        expected = sum(drawn[v].sum() * h0[v - 1]["weights"][0] for v in drawn if v >= 1) / n
        assert expected > 0.6 and abs(code_share - expected) < 0.2

    # MLflow got Δ per schedule step
    from mlflow.tracking import MlflowClient

    from lldmix_core.config import get_settings
    client = MlflowClient(get_settings().mlflow_uri)
    assert sorted(m.step for m in client.get_metric_history(ranks[0]["mlflow_id"], "delta/code")) == SCHEDULE


def _tiny_lm_module():
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(1)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=257, n_embd=32, n_layer=2, n_head=2,
                                                                n_positions=128))


def _callback(method="iterative-lld", **kw):
    from lldmix_core.integrations.hf_trainer import LLDCallback, MixtureDataset
    from lldmix_core.tokenizers import get_tokenizer

    ds = MixtureDataset({d: [d] for d in DOMAINS}, length=1000, seed=3)
    args = dict(tokenizer=get_tokenizer("bytes"), target=TARGET, method=method, tau=TAU)
    return ds, LLDCallback(ds, [t for _, t in EVAL], [d for d, _ in EVAL], **{**args, **kw})


def test_one_process_iterative_and_adjusted_reweight_the_dataset():
    """Without a process group: the Trainer's events called by hand; iterative = softmax(Δ/τ)/3 computed
    here; adjusted-LLD (the registry's Adjusted, G⁻¹Δ) moves the dataset to other weights on the simplex."""
    from types import SimpleNamespace

    model = _tiny_lm_module()
    ds, cb = _callback()
    cb.on_train_begin(None, SimpleNamespace(max_steps=20), None, model=model)
    cb.on_step_end(None, SimpleNamespace(global_step=1), None, model=model)
    cb.on_step_end(None, SimpleNamespace(global_step=3), None, model=model)  # not a schedule step of 20 (0, 1, 2, 4, 6, …)
    assert [r.step for r in cb.history] == [0, 1] and cb.on_epoch_begin(None, None, None) is None
    e = np.exp(cb.history[-1].delta / TAU)
    np.testing.assert_allclose(ds.weights, e / e.sum(), rtol=1e-9)
    assert ds.version == 2
    # the drawn domain is a function of (seed, index) and the weights only; a zero-weight domain is never drawn
    ds.set_weights(np.array([0.0, 1.0, 1.0]))
    assert [ds[i] for i in range(40)] == [ds[i] for i in range(40)] and "code" not in {ds[i] for i in range(200)}

    ds2, adj = _callback("adjusted-lld")
    adj.on_train_begin(None, SimpleNamespace(max_steps=5), None, model=model)
    w = adj.history[0].weights
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    e0 = np.exp(adj.history[0].delta / TAU)
    assert np.abs(w - e0 / e0.sum()).max() > 1e-3  # not plain softmax(Δ/τ): the Gram entered


@pytest.mark.parametrize("kw, field", [({"method": "uniform"}, "method:"), ({"tau": 0}, "tau:"),
                                       ({"unit": "word"}, "unit:"), ({"target": {"code": -1.0}}, "target:"),
                                       ({"prior": {"nope": 1.0}}, "prior:")])
def test_bad_settings_end_in_one_line_naming_the_field(kw, field):
    from types import SimpleNamespace

    from lldmix_core.errors import UserError

    with pytest.raises(UserError) as e:
        _, cb = _callback(**kw)
        cb.on_train_begin(None, SimpleNamespace(max_steps=5), None, model=_tiny_lm_module())
    assert str(e.value).startswith(field) and "\n" not in str(e.value)
