"""Downstream evaluation: the lm-eval adapter equals a slow full-forward reference; task accuracy
through lm-eval equals accuracy computed by hand; the profile correlation equals numpy's."""

import json
import os
import subprocess
import sys

os.environ["HF_DATASETS_OFFLINE"] = "1"  # the local JSON task must never touch the hub
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lldmix_core.downstream import GenerationNotSupported, pearson_profile  # noqa: E402
from lldmix_core.errors import UserError  # noqa: E402
from lldmix_core.models import NanoGPTConfig, new_nanogpt, save_nanogpt  # noqa: E402
from lldmix_core.models.base import LanguageModel  # noqa: E402
from lldmix_core.scoring import score_texts  # noqa: E402
from lldmix_core.tokenizers import get_tokenizer  # noqa: E402

CONTEXT = 32  # max_context of the tiny models


def tiny_lm(seed=0):
    cfg = NanoGPTConfig(vocab_size=320, block_size=CONTEXT, n_layer=1, n_head=2, n_embd=16)
    return new_nanogpt(cfg, "bytes", seed=seed)


@torch.inference_mode()
def ref_loglik(lm, context, continuation):
    """Slow reference: one plain full forward over [BOS] + context + continuation (left-truncated)."""
    n_space = len(context) - len(context.rstrip())  # lm-eval's rule: trailing spaces join the continuation
    if n_space:
        context, continuation = context[:-n_space], context[-n_space:] + continuation
    cont = lm.tokenizer.encode(continuation)
    ids = ([lm.tokenizer.bos_id] + lm.tokenizer.encode(context) + cont)[-(lm.max_context + 1):]
    logp = torch.log_softmax(lm.logits(torch.tensor([ids[:-1]])).double(), dim=-1)[0]
    first = len(ids) - 1 - len(cont)  # position predicting the first continuation token
    total = sum(float(logp[j, ids[j + 1]]) for j in range(first, len(ids) - 1))
    greedy = all(int(logp[j].argmax()) == ids[j + 1] for j in range(first, len(ids) - 1))
    return total, greedy


def instances(kind, args_list):
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args_list)]


PAIRS = [
    ("The capital of France is", " Paris"),
    ("Q: 2+2=?\nA:", " 4"),
    ("", "hello"),  # empty context: conditioned on BOS only
    ("trailing space ", "moves"),  # the space is scored as part of the continuation
    ("a much longer context that does not fit in thirty-two tokens at all", " so it is cut"),
    ("x", "twenty-nine byte continuation"),
]


def test_loglikelihood_matches_reference():
    pytest.importorskip("lm_eval")
    from lldmix_core.downstream import LldmixLM

    lm = tiny_lm(1)
    assert len(PAIRS[4][0]) + len(PAIRS[4][1]) + 1 > CONTEXT + 1  # left truncation is exercised
    adapter = LldmixLM(lm, batch_tokens=70)  # several batches of different widths
    got = adapter.loglikelihood(instances("loglikelihood", PAIRS))
    for (ctx, cont), (value, greedy) in zip(PAIRS, got):
        want, want_greedy = ref_loglik(lm, ctx, cont)
        assert abs(value - want) < 1e-4, (ctx, cont, value, want)
        assert greedy == want_greedy and value < 0
    with pytest.raises(UserError, match="does not fit"):
        adapter.loglikelihood(instances("loglikelihood", [("a", "b" * (CONTEXT + 1))]))
    with pytest.raises(GenerationNotSupported) as err:
        adapter.generate_until(instances("generate_until", [("a", {"until": ["\n"]})]))
    assert isinstance(err.value, UserError) and isinstance(err.value, NotImplementedError)


def test_loglikelihood_rolling_is_score_texts():
    pytest.importorskip("lm_eval")
    from lldmix_core.downstream import LldmixLM

    lm = tiny_lm(2)
    texts = ["short text", "a text that is well over thirty-two bytes long, so it is scored in windows", ""]
    got = LldmixLM(lm).loglikelihood_rolling(instances("loglikelihood_rolling", [(t,) for t in texts]))
    for text, value in zip(texts[:2], got):
        want = float(score_texts(lm, [text]).loglik[0])
        assert abs(value - want) < 1e-5 * max(1.0, abs(want))
    assert got[2] == 0.0


class Successor(torch.nn.Module):
    """A model whose next-token argmax is always (token + 1) mod V, with a little noise."""

    def __init__(self, vocab=257):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, vocab)
        self.lm_head = torch.nn.Linear(vocab, vocab, bias=False)
        with torch.no_grad():
            self.emb.weight.copy_(torch.eye(vocab))
            w = 0.3 * torch.rand(vocab, vocab, generator=g)
            w[(torch.arange(vocab) + 1) % vocab, torch.arange(vocab)] = 5.0
            self.lm_head.weight.copy_(w)

    def hidden(self, idx):
        return self.emb(idx)


def test_is_greedy_on_constructed_model():
    pytest.importorskip("lm_eval")
    from lldmix_core.downstream import LldmixLM

    lm = LanguageModel(kind="nanogpt", module=Successor(), tokenizer=get_tokenizer("bytes"), max_context=8)
    cases = [("abc", "def", True), ("abc", "deg", False), ("abc", "xef", False), ("0123456789", "ab", False),
             ("0123456789", ":;<=>?@A", True), ("", "\x00\x01", True), ("abc", "d", True)]
    got = LldmixLM(lm).loglikelihood(instances("loglikelihood", [(c, k) for c, k, _ in cases]))
    for (ctx, cont, want), (value, greedy) in zip(cases, got):
        assert greedy is want, (ctx, cont)
        assert abs(value - ref_loglik(lm, ctx, cont)[0]) < 1e-4


def _write_task(folder, rows):
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        f"  cache_dir: {json.dumps(str(folder / 'hf_cache'))}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Q: {{question}}\\nA:"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: label\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )


QUESTIONS = [
    ("Which is a colour?", ["red", "seven", "table"]),
    ("Pick the animal.", ["dog", "spoon", "blue sky", "ten"]),
    ("2 + 3 = ?", ["5", "six", "23"]),
    ("Opposite of up?", ["down", "sideways", "up"]),
    ("A fruit?", ["apple", "chair", "carpet"]),
    ("Largest?", ["mountain", "pebble"]),
    ("Which is liquid?", ["water", "stone", "iron bar"]),
    ("Day after Monday?", ["Tuesday", "Sunday", "Friday", "Monday"]),
]


def test_evaluate_tasks_accuracy_equals_reference(tmp_path):
    pytest.importorskip("lm_eval")
    import lm_eval

    from lldmix_core.downstream import evaluate_tasks

    lm = tiny_lm(3)
    rows = []
    for i, (q, choices) in enumerate(QUESTIONS):
        best = int(np.argmax([ref_loglik(lm, f"Q: {q}\nA:", " " + c)[0] for c in choices]))
        # the first 5 labels are the reference's pick, the last 3 are not: reference accuracy is exactly 5/8
        rows.append({"question": q, "choices": choices, "label": best if i < 5 else (best + 1) % len(choices)})
    _write_task(tmp_path, rows)
    state = torch.get_rng_state()
    scores = evaluate_tasks(lm, ["tiny_mc"], include_path=tmp_path, include_defaults=False)
    assert scores == {"tiny_mc": 5 / 8}
    assert torch.equal(torch.get_rng_state(), state)  # lm-eval's seeding does not leak out

    # the registered name works straight through lm-eval, loading the model from a checkpoint
    save_nanogpt(lm, tmp_path / "tiny.pt")
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(model="lldmix", model_args=f"kind=nanogpt,source={tmp_path / 'tiny.pt'}",
                                  tasks=["tiny_mc"], bootstrap_iters=0, log_samples=True,
                                  random_seed=None, numpy_random_seed=None, torch_random_seed=None,
                                  task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False))
    assert out["results"]["tiny_mc"]["acc,none"] == 5 / 8
    samples = sorted(out["samples"]["tiny_mc"], key=lambda s: s["doc_id"])
    assert len(samples) == len(QUESTIONS)
    for (q, choices), sample in zip(QUESTIONS, samples):  # each request, and its score, is the reference's
        assert [tuple(a) for a in sample["arguments"]] == [(f"Q: {q}\nA:", " " + c) for c in choices]
        for (ctx, cont), (value, _) in zip(sample["arguments"], sample["filtered_resps"]):
            assert abs(value - ref_loglik(lm, ctx, cont)[0]) < 1e-4

    with pytest.raises(UserError, match="unknown lm-eval task"):
        evaluate_tasks(lm, ["no_such_task"], include_path=tmp_path, include_defaults=False)


def test_pearson_profile():
    rng = np.random.default_rng(0)
    tasks = [f"t{i}" for i in range(6)]
    a = dict(zip(tasks, rng.random(6)))
    b = dict(zip(tasks, rng.random(6)))
    b["only_target"] = 0.9  # tasks not shared are ignored
    want = np.corrcoef([a[t] for t in tasks], [b[t] for t in tasks])[0, 1]
    assert abs(pearson_profile(a, b) - want) < 1e-12
    assert pearson_profile(a, a) == pytest.approx(1.0)
    assert pearson_profile(a, {t: -v for t, v in a.items()}) == pytest.approx(-1.0)
    with pytest.raises(UserError, match="at least 2 shared"):
        pearson_profile({"t0": 0.1, "x": 0.2}, {"t0": 0.3, "y": 0.4})
    with pytest.raises(UserError, match="zero variance"):
        pearson_profile(a, dict.fromkeys(tasks, 0.1))
    with pytest.raises(UserError, match="finite"):
        pearson_profile({**a, "t0": float("nan")}, b)


def test_import_does_not_need_lm_eval():
    code = "import sys, lldmix_core.downstream; assert 'lm_eval' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_spec_downstream_option_stores_profiles_and_pearson(tmp_path):
    """§4.6 through the engine: every final model and the target get task accuracies in run_metrics,
    and each run's Pearson r equals numpy's on the stored profiles."""
    pytest.importorskip("lm_eval")
    import sqlite3

    from conftest import run_cli

    home = tmp_path / "home"
    tasks = home / "tasks"
    tasks.mkdir(parents=True)
    names = []
    for k in range(3):  # three tasks with different answer keys, so profiles vary across models
        sub = tasks / f"t{k}"
        sub.mkdir()
        rows = [{"question": q, "choices": c, "label": (i * (k + 1)) % len(c)} for i, (q, c) in enumerate(QUESTIONS)]
        _write_task(sub, rows)
        text = (sub / "tiny_mc.yaml").read_text().replace("task: tiny_mc", f"task: tiny_mc{k}")
        (sub / "tiny_mc.yaml").write_text(text)
        names.append(f"tiny_mc{k}")
    spec = tmp_path / "ds.yaml"
    spec.write_text(f"""name: ds
seeds: [0, 1]
tokenizer: bytes
corpus: {{local: true, eval_per_domain: 2}}
arch: {{n_layer: 1, n_head: 2, n_embd: 16, block_size: 64}}
target: {{train: {{steps: 6, seed: 1234, multipliers: {{Python: 2.0}}}}}}
training: {{steps: 4, batch_size: 2, warmup_steps: 1}}
methods: [uniform]
kl: {{sampled: {{n_samples: 16, n_tokens: 32}}}}
downstream: {{tasks: {names}, include_path: {tasks}, include_defaults: false}}
""")
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": "",
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    run_cli("db", "upgrade", env=env)
    out = run_cli("run", str(spec), "--no-mlflow", env=env)
    assert "downstream (target)" in out.stdout
    con = sqlite3.connect(home / "lldmix.db")
    rows = con.execute("SELECT r.method, r.name, m.key, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id "
                       "WHERE m.key LIKE 'downstream%'").fetchall()
    target = {k.split("/")[1]: v for meth, _, k, v in rows if meth == "spec" and k.startswith("downstream/")}
    assert sorted(target) == names
    runs = {}
    for meth, name, k, v in rows:
        if meth != "spec":
            runs.setdefault(name, {})[k] = v
    assert len(runs) == 2
    for name, metrics in runs.items():
        profile = [metrics[f"downstream/{t}"] for t in names]
        assert all(0 <= a <= 1 for a in profile)
        if "downstream_pearson" in metrics:
            want = np.corrcoef(profile, [target[t] for t in names])[0, 1]
            assert abs(metrics["downstream_pearson"] - want) < 1e-9
