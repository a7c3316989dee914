"""Downstream evaluation (paper §4.6): lm-evaluation-harness tasks and score-profile correlation.

Final checkpoints and the target model are evaluated on a list of log-likelihood tasks
(`evaluate_tasks`, task → accuracy in [0, 1]); `pearson_profile` then correlates each model's
per-task accuracy vector with the target's.

`LldmixLM` adapts a `LanguageModel` to lm-eval's `LM` interface. lm-eval is imported only when the
adapter or `evaluate_tasks` is first used, so the rest of lldmix (and `pearson_profile`) works
without it. Accessing `LldmixLM` registers it as lm-eval model "lldmix", after which
`lm_eval.simple_evaluate(model="lldmix", model_args="kind=nanogpt,source=ckpt.pt")` works too.

Conventions (as in scoring.py): log-likelihoods are natural-log sums over tokens (nats), and every
sequence is fed as [BOS] + tokens, so the first token is conditioned on BOS and an empty context
is just [BOS]. A (context, continuation) pair has trailing whitespace of the context moved to the
start of the continuation (lm-eval's word-boundary rule), then each part is encoded separately
and the ids concatenated.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lldmix_core.errors import UserError
from lldmix_core.models.base import LanguageModel
from lldmix_core.scoring import score_texts


class GenerationNotSupported(UserError, NotImplementedError):
    """A generative (generate_until) task was asked of the log-likelihood-only adapter."""


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the front of the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


@torch.inference_mode()
def score_continuations(
    lm: LanguageModel,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_tokens: int = 8192,
    row_chunk: int = 1024,
) -> list[tuple[float, bool]]:
    """(log p(continuation | context) in nats, is_greedy) for each (context, continuation) pair.

    The ids [BOS] + context + continuation are left-truncated to the last `max_context + 1`
    tokens (the continuation must fit in `max_context` tokens), so the model sees up to
    `max_context` input tokens. `is_greedy` is True when every continuation token is the argmax of
    its next-token distribution. Pairs are sorted by length and right-padded into batches of at
    most `batch_tokens` input tokens, one forward pass per batch.
    """
    tok, context = lm.tokenizer, lm.max_context
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(s, str) for s in pair):
            raise UserError(f"request {i}: expected a (context, continuation) pair of strings, got {pair!r}")
    split = [split_pair(c, k) for c, k in pairs]
    ctx_ids = tok.encode_batch([c for c, _ in split]) if split else []
    cont_ids = tok.encode_batch([k for _, k in split]) if split else []
    rows = []  # (request index, model inputs, targets, number of counted continuation targets)
    for i, (c, k) in enumerate(zip(ctx_ids, cont_ids)):
        if len(k) > context:
            raise UserError(f"request {i}: continuation of {len(k)} tokens does not fit in the model's "
                            f"context of {context} tokens")
        if k:
            seq = [tok.bos_id, *c, *k][-(context + 1):]
            rows.append((i, seq[:-1], seq[1:], len(k)))
    totals = torch.zeros(len(pairs), dtype=torch.float64)  # empty continuation: log p = 0, greedy
    misses = torch.zeros(len(pairs), dtype=torch.long)  # continuation tokens that are not the argmax
    rows.sort(key=lambda r: len(r[1]), reverse=True)
    batches, current = [], []
    for r in rows:  # longest first, so the first row of a batch sets its width
        if current and (len(current) + 1) * len(current[0][1]) > batch_tokens:
            batches.append(current)
            current = []
        current.append(r)
    if current:
        batches.append(current)
    was_training = lm.module.training
    lm.module.eval()
    try:
        for batch in batches:
            width = len(batch[0][1])
            x = torch.zeros(len(batch), width, dtype=torch.long)
            y = torch.zeros(len(batch), width, dtype=torch.long)
            counted = torch.zeros(len(batch), width, dtype=torch.bool)
            owner = torch.tensor([r[0] for r in batch])
            for b, (_, inputs, targets, n) in enumerate(batch):  # right padding: causal, ignored
                x[b, : len(inputs)] = torch.tensor(inputs)
                y[b, : len(targets)] = torch.tensor(targets)
                counted[b, len(targets) - n : len(targets)] = True
            h = lm.hidden(x.to(lm.device))
            sel = counted.nonzero(as_tuple=True)
            h_sel = h[sel[0].to(lm.device), sel[1].to(lm.device)]
            y_sel = y[sel].to(lm.device)
            for s in range(0, len(y_sel), row_chunk):  # the full-vocabulary rows stay on the device
                logits = lm.logits_from_hidden(h_sel[s : s + row_chunk]).float()
                ys = y_sel[s : s + row_chunk]
                lp = torch.log_softmax(logits, dim=-1).gather(1, ys[:, None])[:, 0]
                who = owner[sel[0][s : s + row_chunk]]
                totals.index_add_(0, who, lp.double().cpu())
                misses.index_add_(0, who, (logits.argmax(dim=-1) != ys).long().cpu())
    finally:
        lm.module.train(was_training)
    return [(float(t), bool(m == 0)) for t, m in zip(totals.tolist(), misses.tolist())]


def rolling_loglik(lm: LanguageModel, texts: Sequence[str], *, batch_tokens: int = 8192) -> list[float]:
    """Whole-text log-likelihoods in nats: exactly `score_texts` (rolling windows); "" scores 0."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise UserError(f"request {i}: expected a string to score, got {type(t).__name__}")
    out = [0.0] * len(texts)
    keep = [i for i, t in enumerate(texts) if t]
    if keep:
        scores = score_texts(lm, [texts[i] for i in keep], batch_tokens=batch_tokens)
        for i, v in zip(keep, scores.loglik.tolist()):
            out[i] = float(v)
    return out


_ADAPTER: type | None = None


def _adapter_class() -> type:
    """Import lm-eval, define `LldmixLM` on its `LM` base and register it as "lldmix" (once)."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    try:
        from lm_eval.api.model import LM
        from lm_eval.api.registry import register_model
    except ImportError:
        raise UserError("downstream evaluation needs lm-eval: pip install lm-eval") from None

    class LldmixLM(LM):
        """lm-eval `LM` over an lldmix `LanguageModel`: log-likelihood requests only.

        Either wrap a loaded model, `LldmixLM(lm)`, or load one by `kind` ("nanogpt" | "hf") and
        `source` (checkpoint file / local folder), as lm-eval's `model_args` do. `batch_tokens`
        caps the input tokens per forward pass; lm-eval's `batch_size`/`max_batch_size` are accepted
        and ignored. `device`, when given, moves the model there.
        """

        def __init__(self, lm: LanguageModel | None = None, kind: str | None = None,
                     source: str | None = None, tokenizer: str | None = None,
                     trust_remote_code: bool = False, batch_tokens: int = 8192,
                     device: str | None = None, batch_size: Any = None,
                     max_batch_size: Any = None, **unknown: Any) -> None:
            super().__init__()
            if unknown:
                raise UserError(f"lldmix model: unknown argument(s) {', '.join(sorted(unknown))}; "
                                "use kind, source, tokenizer, trust_remote_code, batch_tokens, device")
            if lm is None:
                if not kind or not source:
                    raise UserError("lldmix model: give a LanguageModel, or both kind= and source=")
                from lldmix_core.models import load_model

                lm = load_model(str(kind), str(source), tokenizer=tokenizer,
                                trust_remote_code=bool(trust_remote_code))
            elif kind or source:
                raise UserError("lldmix model: give either a LanguageModel or kind=/source=, not both")
            if not isinstance(batch_tokens, int) or batch_tokens < 1:
                raise UserError(f"lldmix model: batch_tokens must be a positive integer, got {batch_tokens!r}")
            if device:
                lm.module.to(device)
            self.model, self.batch_tokens = lm, batch_tokens

        @property
        def device(self) -> torch.device:
            return self.model.device

        @property
        def max_length(self) -> int:
            return self.model.max_context

        @property
        def tokenizer_name(self) -> str:
            return self.model.tokenizer.name

        def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            out = score_continuations(self.model, [r.args for r in requests], batch_tokens=self.batch_tokens)
            for r, res in zip(requests, out):
                self.cache_hook.add_partial("loglikelihood", r.args, res)
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
            for i, r in enumerate(requests):
                if len(r.args) != 1:
                    raise UserError(f"request {i}: loglikelihood_rolling expects (text,), got {r.args!r}")
            out = rolling_loglik(self.model, [r.args[0] for r in requests], batch_tokens=self.batch_tokens)
            for r, res in zip(requests, out):
                self.cache_hook.add_partial("loglikelihood_rolling", r.args, res)
            return out

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            raise GenerationNotSupported(
                "the lldmix adapter does not support generation (generate_until tasks); use "
                "log-likelihood tasks (multiple_choice, loglikelihood, loglikelihood_rolling)")

    LldmixLM.__qualname__ = "LldmixLM"  # reachable as lldmix_core.downstream.LldmixLM (pickle, reprs)
    _ADAPTER = register_model("lldmix")(LldmixLM)
    return _ADAPTER


def __getattr__(name: str):
    if name == "LldmixLM":  # lazy: importing lm-eval only when the adapter is asked for
        return _adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate_tasks(lm: Any, tasks: Sequence[str], *, include_path: str | Path | Sequence[str | Path] | None = None,
                   limit: int | float | None = None, num_fewshot: int = 0, include_defaults: bool = True,
                   batch_tokens: int = 8192) -> dict[str, float]:
    """Accuracy in [0, 1] (lm-eval metric "acc") per task, via `lm_eval.simple_evaluate`.

    `lm` is a `LanguageModel` (wrapped in `LldmixLM`) or any lm-eval `LM` instance. `include_path`
    adds folders of local task YAMLs; `include_defaults=False` skips indexing lm-eval's ~15k
    built-in tasks (saves several seconds). `limit` caps documents per task (testing only).
    Standard-error bootstrapping is off; Python/NumPy/torch global RNG states are restored after.
    """
    adapter = _adapter_class()
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    tasks = list(tasks)
    if not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise UserError(f"evaluate_tasks: give a non-empty list of task names, got {tasks!r}")
    paths = [] if include_path is None else (
        list(include_path) if isinstance(include_path, (list, tuple)) else [include_path])
    for p in paths:
        if not Path(p).is_dir():
            raise UserError(f"task folder {p} does not exist")
    manager = TaskManager(include_path=[str(p) for p in paths] or None, include_defaults=include_defaults)
    unknown = [t for t in tasks if t not in manager.all_tasks and not Path(t).is_file()]
    if unknown:
        raise UserError(f"unknown lm-eval task(s): {', '.join(unknown)}")
    model = lm if isinstance(lm, LM) else adapter(lm, batch_tokens=batch_tokens)
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        out = simple_evaluate(model=model, tasks=tasks, task_manager=manager, num_fewshot=num_fewshot,
                              limit=limit, bootstrap_iters=0, log_samples=False)
    finally:
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
    scores = {}
    for t in tasks:
        metrics = out["results"].get(t, {})
        if "acc,none" not in metrics:
            raise UserError(f"task {t} reported no accuracy (acc); metrics: {sorted(metrics) or 'none'}")
        scores[t] = float(metrics["acc,none"])
    return scores


def pearson_profile(model_scores: dict[str, float], target_scores: dict[str, float]) -> float:
    """Pearson correlation in [-1, 1] of two per-task score vectors over the tasks both share."""
    shared = sorted(set(model_scores) & set(target_scores))
    if len(shared) < 2:
        raise UserError(f"pearson_profile needs at least 2 shared tasks, got {len(shared)}: {shared}")
    x = np.array([model_scores[t] for t in shared], dtype=np.float64)
    y = np.array([target_scores[t] for t in shared], dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise UserError("pearson_profile: scores must be finite numbers")
    for name, v in (("model", x), ("target", y)):
        if np.all(v == v[0]):
            raise UserError(f"pearson_profile: the {name} scores are equal on all {len(shared)} shared tasks "
                            "(zero variance), so the correlation is undefined")
    xc, yc = x - x.mean(), y - y.mean()
    r = float(np.dot(xc, yc) / np.sqrt(np.dot(xc, xc) * np.dot(yc, yc)))
    return min(1.0, max(-1.0, r))
