"""Grouped training: the stacked model computes what NanoGPT computes, and a member's results do not
depend on its group (bit-identical to training it alone through the grouped path), resume included."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.models.nanogpt_group import GroupedNanoGPT, group_losses
from lldmix_core.outcomes import Cancelled
from lldmix_core.train import TrainConfig, train
from lldmix_core.train_group import GroupMember, train_group

from test_train import FakeStreams

CFG = NanoGPTConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=16)
TCFG = TrainConfig(steps=24, batch_size=3, block_size=16, checkpoint_every=5, warmup_steps=4, grad_clip=0.5)


def test_the_stacked_model_computes_each_members_nanogpt_logits_and_loss():
    lms = [new_nanogpt(CFG, "bytes", seed=s) for s in range(3)]
    group = GroupedNanoGPT.from_members([lm.module for lm in lms])
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 320, (3, 4, 16), generator=gen)
    y = torch.randint(0, 320, (3, 4, 16), generator=gen)
    logits = group.logits(x)
    for g, lm in enumerate(lms):
        ref = lm.logits(x[g])
        torch.testing.assert_close(logits[g], ref, rtol=1e-5, atol=1e-5)
    ref_loss = torch.stack([F.cross_entropy(lm.logits(x[g]).reshape(-1, 320), y[g].reshape(-1)) for g, lm in enumerate(lms)])
    torch.testing.assert_close(group_losses(group, x, y), ref_loss, rtol=1e-5, atol=1e-6)


def _reweight_every_eval(step, lm, weights):
    """An iterative member: new weights from its own parameters (so they differ by member)."""
    s = float(next(lm.module.parameters()).detach().sum())
    w = np.array([1.0 + abs(s) % 1.0, 1.0])
    return w / w.sum()


def _members(seeds, weights, iterative, ckpt_dir=None):
    out = []
    for s, w, it in zip(seeds, weights, iterative):
        out.append(GroupMember(new_nanogpt(CFG, "bytes", seed=100 + s), TrainConfig(**{**TCFG.__dict__, "seed": s}),
                               np.array(w), eval_steps=(0, 4, 8, 16) if it else (),
                               on_eval=_reweight_every_eval if it else None,
                               checkpoint_path=ckpt_dir / f"m{s}.pt" if ckpt_dir else None))
    return out


SEEDS, WEIGHTS, ITER = [1, 2, 3], [[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]], [False, False, True]


def test_a_members_results_do_not_depend_on_its_group():
    together = _members(SEEDS, WEIGHTS, ITER)
    res = train_group(together, FakeStreams(), ["a", "b"])
    for i in range(3):
        alone = _members(SEEDS[i:i + 1], WEIGHTS[i:i + 1], ITER[i:i + 1])
        res1 = train_group(alone, FakeStreams(), ["a", "b"])[0]
        assert res1.history == res[i].history
        np.testing.assert_array_equal(res1.weights, res[i].weights)
        for (n, p), (_, q) in zip(together[i].lm.module.named_parameters(), alone[0].lm.module.named_parameters()):
            assert torch.equal(p, q), (i, n)
    assert res[2].weights[0] != 0.5  # the iterative member was re-weighted, the others kept theirs
    assert not torch.equal(next(together[0].lm.module.parameters()), next(together[2].lm.module.parameters()))


def test_grouped_training_follows_the_one_model_path():
    """Same domain draws as train.train for the same seed and weights, and the same losses up to float
    rounding (other matmul kernels): the grouped path trains the same model, not an approximation."""
    [m] = _members([7], [[0.3, 0.7]], [False])
    single = new_nanogpt(CFG, "bytes", seed=107)
    r1 = train(single, FakeStreams(), ["a", "b"], TrainConfig(**{**TCFG.__dict__, "seed": 7}), np.array([0.3, 0.7]))
    [rg] = train_group([m], FakeStreams(), ["a", "b"])
    assert [h["domain"] for h in rg.history] == [h["domain"] for h in r1.history]
    np.testing.assert_allclose([h["loss"] for h in rg.history], [h["loss"] for h in r1.history], rtol=1e-4)
    assert rg.history[-1]["loss"] < rg.history[0]["loss"] - 0.1  # it learns (nats/token; the floor is ln 100)


def test_resume_after_stop_equals_uninterrupted(tmp_path):
    straight = _members(SEEDS, WEIGHTS, ITER)
    train_group(straight, FakeStreams(), ["a", "b"])
    stopped = _members(SEEDS, WEIGHTS, ITER, tmp_path)
    calls = {"n": 0}

    def stop_once():
        calls["n"] += 1
        return calls["n"] == 13  # stop at step 12, between checkpoints

    with pytest.raises(Cancelled):
        train_group(stopped, FakeStreams(), ["a", "b"], should_stop=stop_once)
    fresh = _members(SEEDS, WEIGHTS, ITER, tmp_path)  # a new process starts from the initial models
    res = train_group(fresh, FakeStreams(), ["a", "b"])
    assert [r.steps_run for r in res] == [12, 12, 12]
    for a, b in zip(straight, fresh):
        for (n, p), (_, q) in zip(a.lm.module.named_parameters(), b.lm.module.named_parameters()):
            assert torch.equal(p, q), n


def test_members_must_share_their_settings():
    a, b = _members([1, 2], WEIGHTS[:2], [False, False])
    b.cfg = TrainConfig(**{**TCFG.__dict__, "seed": 2, "lr": 1e-2})
    with pytest.raises(ValueError, match="every training setting but the seed"):
        train_group([a, b], FakeStreams(), ["a", "b"])
