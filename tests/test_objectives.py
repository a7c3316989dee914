"""Distillation objectives against direct float64 references written with explicit probabilities."""

import math

import pytest
import torch

from lldmix_core.objectives import OBJECTIVES, alpha_mixture_log, distillation_loss

torch.manual_seed(0)
N, V = 5, 7
S = torch.randn(N, V, dtype=torch.float64) * 2
T = torch.randn(N, V, dtype=torch.float64) * 2
Y = torch.randint(V, (N,))


def probs(z, temp=1.0):
    e = [[math.exp(v / temp) for v in row] for row in z.tolist()]
    return [[v / sum(row) for v in row] for row in e]


def kl_ref(p, q):
    return sum(sum(pi * math.log(pi / qi) for pi, qi in zip(pr, qr) if pi > 0) for pr, qr in zip(p, q)) / len(p)


def test_forward_and_reverse_kl():
    p, q = probs(T), probs(S)
    assert float(distillation_loss("kl", S, T, Y)) == pytest.approx(kl_ref(p, q), rel=1e-5)
    assert float(distillation_loss("reverse-kl", S, T, Y)) == pytest.approx(kl_ref(q, p), rel=1e-5)
    # Hinton's softened KL with the T² factor
    assert float(distillation_loss("kl", S, T, Y, temperature=2.0)) == pytest.approx(4 * kl_ref(probs(T, 2), probs(S, 2)), rel=1e-5)


def test_kl_plus_ce():
    q = probs(S)
    ce = -sum(math.log(q[i][Y[i]]) for i in range(N)) / N
    kl = kl_ref(probs(T), q)
    assert float(distillation_loss("kl+ce", S, T, Y)) == pytest.approx(kl + ce, rel=1e-5)
    assert float(distillation_loss("kl+ce", S, T, Y, ce_weight=0.0)) == pytest.approx(kl, rel=1e-5)
    assert float(distillation_loss("ce", S, T, Y)) == pytest.approx(ce, rel=1e-5)


def test_ttm_is_kl_at_temperature_one_and_transforms_only_the_teacher():
    assert float(distillation_loss("ttm", S, T, Y, teacher_temperature=1.0)) == pytest.approx(float(distillation_loss("kl", S, T, Y)), rel=1e-6)
    ref = kl_ref(probs(T, 3.0), probs(S))  # teacher softened, student not
    assert float(distillation_loss("ttm", S, T, Y, teacher_temperature=3.0)) == pytest.approx(ref, rel=1e-5)


def test_wttm_weights_positions_by_the_teachers_power_sum():
    Tt = 2.0
    p = probs(T)
    w = [sum(pi ** (1 / Tt) for pi in row) for row in p]
    pt = probs(T, Tt)
    q = probs(S)
    per = [sum(a * math.log(a / b) for a, b in zip(pt[i], q[i])) for i in range(N)]
    ref = sum(wi * ki for wi, ki in zip(w, per)) / sum(w)
    assert float(distillation_loss("wttm", S, T, Y, teacher_temperature=Tt)) == pytest.approx(ref, rel=1e-5)
    # with identical weights per position WTTM would equal TTM: check at T = 1, where U(p) = 1 everywhere
    assert float(distillation_loss("wttm", S, T, Y, teacher_temperature=1.0)) == pytest.approx(float(distillation_loss("ttm", S, T, Y, teacher_temperature=1.0)), rel=1e-6)


def test_amid_limits():
    p, q = probs(T), probs(S)
    # λ = 0: the assistant is the student, plain forward KL
    assert float(distillation_loss("amid", S, T, Y, alpha=0.3, lam=0.0)) == pytest.approx(kl_ref(p, q), rel=1e-5)
    # α = −1: arithmetic mixture (DistiLLM's skew KL)
    lam = 0.3
    r = [[lam * a + (1 - lam) * b for a, b in zip(pr, qr)] for pr, qr in zip(p, q)]
    assert float(distillation_loss("amid", S, T, Y, alpha=-1.0, lam=lam)) == pytest.approx(kl_ref(p, r), rel=1e-5)
    # α = 1: geometric mixture, normalised
    g = [[a ** lam * b ** (1 - lam) for a, b in zip(pr, qr)] for pr, qr in zip(p, q)]
    g = [[v / sum(row) for v in row] for row in g]
    assert float(distillation_loss("amid", S, T, Y, alpha=1.0, lam=lam)) == pytest.approx(kl_ref(p, g), rel=1e-5)
    # α = 3: the power mean with exponent (1−α)/2 = −1 (a harmonic mixture)
    h = [[1 / (lam / a + (1 - lam) / b) for a, b in zip(pr, qr)] for pr, qr in zip(p, q)]
    h = [[v / sum(row) for v in row] for row in h]
    log_r = alpha_mixture_log(torch.log(torch.tensor(p)), torch.log(torch.tensor(q)), 3.0, lam)
    assert torch.allclose(log_r.exp(), torch.tensor(h), atol=1e-10)


@pytest.mark.parametrize("name", ["kl", "reverse-kl", "amid", "ttm", "wttm", "kl+ce"])
def test_zero_when_student_equals_teacher_and_nonnegative(name):
    extra = {"kl+ce": {"ce_weight": 0.0}, "ttm": {"teacher_temperature": 1.0}, "wttm": {"teacher_temperature": 1.0}}.get(name, {})
    assert float(distillation_loss(name, T, T, Y, **extra)) == pytest.approx(0.0, abs=1e-6)  # float32 round-off
    assert float(distillation_loss(name, S, T, Y, **extra)) >= 0


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_gradients_finite_for_near_zero_probabilities(name):
    s = torch.zeros(3, V)
    s[:, 0] = 200.0  # probabilities of the other tokens underflow to 0 in float32
    s.requires_grad_(True)
    t = torch.zeros(3, V)
    t[:, 1] = -150.0
    loss = distillation_loss(name, s, t, torch.tensor([1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(s.grad))


def test_mask_excludes_positions():
    mask = torch.tensor([True, False, True, False, True])
    full = distillation_loss("kl", S[mask], T[mask], Y[mask])
    assert float(distillation_loss("kl", S, T, Y, mask=mask)) == pytest.approx(float(full), rel=1e-6)


def test_unknown_names_and_params():
    with pytest.raises(ValueError, match="unknown objective 'js'"):
        distillation_loss("js", S, T, Y)
    with pytest.raises(ValueError, match="no parameter"):
        distillation_loss("kl", S, T, Y, alpha=1.0)


def test_distillation_pushes_student_mass_off_the_padded_vocabulary_rows():
    """NanoGPT pads its output to 320 rows for the 257 byte tokens: the distillation loss must see
    (and penalise) student mass on the padding, as scoring's log-softmax over all rows does."""
    from lldmix_core.distill import distill_loss_fn
    from lldmix_core.models import NanoGPTConfig, new_nanogpt

    cfg = NanoGPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=320)
    teacher, student = new_nanogpt(cfg, "bytes", 1), new_nanogpt(cfg, "bytes", 2)
    x = torch.randint(0, 257, (2, 8), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 257, (2, 8), generator=torch.Generator().manual_seed(1))
    for objective, params in [("kl", {}), ("reverse-kl", {}), ("kl+ce", {}), ("amid", {"alpha": 0.5, "lam": 0.5})]:
        student.module.zero_grad()
        loss = distill_loss_fn(teacher, objective, params)(student, x, y)
        assert torch.isfinite(loss), objective
        loss.backward()
        grad_pad = student.module.lm_head.weight.grad[257:].abs().sum()
        assert grad_pad > 0, objective  # zero before the fix: the padding rows were sliced away
    # forward KL equals the reference with the student normalised over all 320 rows
    with torch.no_grad():
        s = student.logits(x).reshape(-1, 320).double()
        t = teacher.logits(x)[..., :257].reshape(-1, 257).double()
        pt = torch.softmax(t, -1)
        ref = (pt * (torch.log(pt) - torch.log_softmax(s, -1)[:, :257])).sum(-1).mean()
        got = distill_loss_fn(teacher, "kl", {})(student, x, y)
    assert float(got) == pytest.approx(float(ref), rel=1e-4)
