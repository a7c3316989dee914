"""torchrun on CPU (gloo, 2 processes): the same loss curve as one process with the same global batch,
and sharded scoring that stores the same vectors as unsharded scoring."""

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

SPEC = """name: ddp
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 32}
target:
  train: {steps: 10, seed: 1234, multipliers: {Python: 2.0}}
training: {steps: 12, batch_size: 4, lr: 3.0e-3, warmup_steps: 2, checkpoint_every: 5}
methods: [uniform, iterative-lld]
kl: {sampled: {n_samples: 16, n_tokens: 32}}
"""


def _torchrun(n, *args, env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "lldmix_core.cli", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _curves(home):
    con = sqlite3.connect(home / "lldmix.db")
    loss = con.execute("""SELECT r.method, m.step, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id
                          WHERE m.key = 'train_loss' ORDER BY r.method, m.step""").fetchall()
    kl = con.execute("""SELECT r.method, k.step, k.estimator, k.nats_per_text FROM kl_results k JOIN runs r ON r.id = k.run_id
                        ORDER BY r.method, k.step, k.estimator""").fetchall()
    w = con.execute("""SELECT r.method, w.step, w.domain_id, w.weight FROM weight_estimates w JOIN runs r ON r.id = w.run_id
                       ORDER BY r.method, w.step, w.domain_id""").fetchall()
    return loss, kl, w


def _home(tmp_path, name):
    home = tmp_path / name
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    return home, env


def _close(a, b, rtol):
    assert [r[:-1] for r in a] == [r[:-1] for r in b]  # same runs, steps (and domains)
    np.testing.assert_allclose([r[-1] for r in a], [r[-1] for r in b], rtol=rtol)


def test_two_gloo_processes_give_the_one_process_loss_curve(tmp_path):
    spec = tmp_path / "ddp.yaml"
    spec.write_text(SPEC)
    one, env1 = _home(tmp_path, "one")
    two, env2 = _home(tmp_path, "two")
    _torchrun(1, "run", str(spec), "--no-mlflow", env=env1)
    _torchrun(2, "run", str(spec), "--no-mlflow", env=env2)
    loss1, kl1, w1 = _curves(one)
    loss2, kl2, w2 = _curves(two)
    assert len(loss1) == 2 * 12  # both runs' 12 steps (the target's training logs no run metrics)
    # the same batches and the same averaged gradients: equal up to float reduction order
    _close(loss1, loss2, rtol=1e-4)
    _close(kl1, kl2, rtol=1e-3)
    _close(w1, w2, rtol=1e-4)  # iterative-LLD's weights, computed on rank 0 and broadcast


def test_sharded_scoring_matches_one_process(tmp_path):
    home, env = _home(tmp_path, "score")
    run_cli("corpus", "build-local", "--per-domain", "3", env=env)
    for name, seed in (("m1", 1), ("m2", 2)):
        run_cli("model", "init", name, "--tokenizer", "bytes", "--n-layer", "1", "--n-embd", "32", "--block-size",
                "64", "--seed", str(seed), env=env)
    # one model, its corpus split over two ranks; then two models, one per rank
    _torchrun(2, "score", "--model", "m1", "--corpus", "minipile-eval", env=env)
    _torchrun(2, "score", "--model", "m1", "--model", "m2", "--corpus", "minipile-eval", env=env)
    con = sqlite3.connect(home / "lldmix.db")
    got = {name: np.frombuffer(blob, dtype="<f4") for name, blob in con.execute(
        "SELECT m.name, v.logliks FROM loglik_vectors v JOIN models m ON m.id = v.model_id")}
    assert sorted(got) == ["m1", "m2"]

    from lldmix_core.db.store import Store
    from lldmix_core.models import load_model
    from lldmix_core.scoring import score_texts

    store = Store.open(f"sqlite:///{home / 'lldmix.db'}")
    texts = store.load_texts(store.get_corpus("minipile-eval").id)
    for name in ("m1", "m2"):
        info = store.get_model(name)
        ref = score_texts(load_model(info.kind, info.source), texts.texts).loglik
        np.testing.assert_allclose(got[name], ref.astype(np.float32), rtol=1e-5)


def _rank_rows(rank, size, init_file, out):
    """One rank of a bare train() call: record which batch rows this rank's loss saw."""
    import torch
    import torch.distributed as dist

    from lldmix_core.corpus.streams import DomainStreams
    from lldmix_core.models import NanoGPTConfig, new_nanogpt
    from lldmix_core.train import TrainConfig, lm_loss, train
    from lldmix_core.tokenizers import get_tokenizer

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    tok = get_tokenizer("bytes")
    streams = DomainStreams.build([("A", " ".join(str(i * i) for i in range(300))),
                                   ("B", " ".join(str(i ** 3) for i in range(300)))], tok, out.parent / "streams")
    lm = new_nanogpt(NanoGPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=320), "bytes", 0)
    seen = []

    def loss_fn(view, x, y):
        seen.append(x.clone())
        return lm_loss(view, x, y)

    train(lm, streams, ["A", "B"], TrainConfig(steps=3, batch_size=4, block_size=16, warmup_steps=1), [0.5, 0.5],
          loss_fn=loss_fn)
    torch.save({"x": seen, "params": [p.detach().clone() for p in lm.module.parameters()]}, out)
    dist.destroy_process_group()


def test_each_rank_takes_its_half_of_the_global_batch(tmp_path):
    import torch
    import torch.multiprocessing as mp

    procs = [mp.get_context("spawn").Process(target=_rank_rows, args=(r, 2, tmp_path / "init", tmp_path / f"r{r}.pt"))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    r0, r1 = (torch.load(tmp_path / f"r{r}.pt") for r in range(2))
    for x0, x1 in zip(r0["x"], r1["x"]):
        assert x0.shape[0] == x1.shape[0] == 2  # half of batch_size 4 each
        assert not torch.equal(x0, x1)  # different rows of the same global batch
    for p0, p1 in zip(r0["params"], r1["params"]):
        assert torch.equal(p0, p1)  # DDP kept the replicas identical
