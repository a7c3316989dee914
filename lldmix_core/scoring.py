"""Log-likelihood of texts under a `LanguageModel`: the text-level vector ξ(p) and domain sums.

Each text is scored as [BOS] + tokens: every token of the text is predicted and counted (see
models/base.py). A text longer than the model's context is scored in rolling windows: the first
window predicts the first `C` tokens, each later one predicts the next `C/2` tokens with the `C`
tokens before them as context, so every token is counted exactly once.

Speed without memory blow-up: windows are sorted by length and packed into batches of at most
`batch_tokens` tokens (length bucketing), the model runs under `inference_mode`, and the output
layer is applied only at the positions that are counted, by the fused head (models/fused_head.py:
tiles of rows × vocabulary reduced to a running log-sum-exp and the observed token's logit, never the
[positions × vocabulary] logits). A model whose output layer has no `Head` (LanguageModel.head() is
None), or `fused=False`, takes the plain path: logits + log-softmax of `row_chunk` positions at a time
(about 200 MB of logits for a 50k vocabulary). The two agree to float32 rounding (~1e-7 relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lldmix_core.faults import fault_point
from lldmix_core.models.base import LanguageModel
from lldmix_core.models.fused_head import observed_logprobs, plain_logprobs


@dataclass(frozen=True)
class TextScores:
    loglik: np.ndarray  # float64 [N], nats/text: sum of log p over each text's tokens
    n_tokens: np.ndarray  # int64 [N], tokens scored per text


@dataclass(frozen=True)
class _Window:
    text: int  # index of the text
    inputs: list[int]  # model input ids (≤ context)
    targets: list[int]  # next-token ids, same length as inputs
    count_from: int  # only targets[count_from:] are counted (earlier ones are context overlap)


def _windows(text_idx: int, ids: list[int], bos: int, context: int) -> list[_Window]:
    seq = [bos, *ids]
    n = len(ids)  # number of targets: seq[1:]
    if n <= context:
        return [_Window(text_idx, seq[:-1], seq[1:], 0)]
    out = [_Window(text_idx, seq[:context], seq[1 : context + 1], 0)]
    stride = max(1, context // 2)
    done = context  # targets seq[1 : done+1] are counted so far
    while done < n:
        end = min(done + stride, n)  # count targets seq[done+1 : end+1]
        start = end - context  # inputs seq[start : end], targets seq[start+1 : end+1]
        out.append(_Window(text_idx, seq[start:end], seq[start + 1 : end + 1], context - (end - done)))
        done = end
    return out


def plan_windows(lm: LanguageModel, texts: Sequence[str]) -> tuple[list[_Window], np.ndarray]:
    """Tokenise `texts` and cut them into windows; also returns the token count per text."""
    ids = lm.tokenizer.encode_batch(list(texts))
    windows: list[_Window] = []
    for i, t in enumerate(ids):
        windows.extend(_windows(i, t, lm.tokenizer.bos_id, lm.max_context))
    return windows, np.array([len(t) for t in ids], dtype=np.int64)


def _batches(windows: list[_Window], batch_tokens: int) -> list[list[_Window]]:
    order = sorted(windows, key=lambda w: len(w.inputs), reverse=True)
    batches, current = [], []
    for w in order:
        width = len(current[0].inputs) if current else len(w.inputs)  # longest comes first
        if current and (len(current) + 1) * width > batch_tokens:
            batches.append(current)
            current = []
        current.append(w)
    if current:
        batches.append(current)
    return batches


@torch.inference_mode()
def score_texts(
    lm: LanguageModel,
    texts: Sequence[str],
    *,
    batch_tokens: int = 8192,
    row_chunk: int = 1024,
    progress: bool = False,
    fused: bool = True,
) -> TextScores:
    """Text-level log-likelihoods (nats/text) and token counts of `texts` under `lm`."""
    return score_token_ids(lm, lm.tokenizer.encode_batch(list(texts)), batch_tokens=batch_tokens,
                           row_chunk=row_chunk, progress=progress, fused=fused)


@torch.inference_mode()
def score_token_ids(
    lm: LanguageModel,
    ids: Sequence[Sequence[int]],
    *,
    batch_tokens: int = 8192,
    row_chunk: int = 1024,
    progress: bool = False,
    fused: bool = True,
) -> TextScores:
    """Like `score_texts`, for texts given as token ids under `lm`'s tokenizer (each scored as
    [BOS] + ids, rolling windows past the context): nats/text and token counts. `fused=False` forces
    the plain head (full logits of `row_chunk` positions at a time); `row_chunk` only sizes that path."""
    was_training = lm.module.training
    lm.module.eval()
    device = lm.device
    head = lm.head() if fused else None
    windows: list[_Window] = []
    for i, t in enumerate(ids):
        windows.extend(_windows(i, list(t), lm.tokenizer.bos_id, lm.max_context))
    n_tokens = np.array([len(t) for t in ids], dtype=np.int64)
    totals = torch.zeros(len(ids), dtype=torch.float64)
    batches = _batches(windows, batch_tokens)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_tokens.sum()), unit="tok", desc="scoring", leave=False)
    try:
        for batch in batches:
            fault_point("score_batch")
            width = max(len(w.inputs) for w in batch)
            x = torch.zeros(len(batch), width, dtype=torch.long)
            y = torch.zeros(len(batch), width, dtype=torch.long)
            counted = torch.zeros(len(batch), width, dtype=torch.bool)
            owner = torch.tensor([w.text for w in batch])
            for r, w in enumerate(batch):  # right padding: causal models ignore what comes after
                x[r, : len(w.inputs)] = torch.tensor(w.inputs)
                y[r, : len(w.targets)] = torch.tensor(w.targets)
                counted[r, w.count_from : len(w.targets)] = True
            h = lm.hidden(x.to(device))
            rows = counted.nonzero(as_tuple=True)
            h_sel = h[rows[0].to(device), rows[1].to(device)]  # [M, d], only counted positions
            y_sel = y[rows].to(device)
            if head is not None:
                lp = observed_logprobs(h_sel, head, y_sel, **_tiles(h_sel.device)).cpu()
            else:
                lp = plain_logprobs(h_sel, lm.logits_from_hidden, y_sel, row_chunk=row_chunk).cpu()
            totals.index_add_(0, owner[rows[0]], lp)
            if bar is not None:
                bar.update(len(y_sel))
    finally:
        if bar is not None:
            bar.close()
        lm.module.train(was_training)
    return TextScores(loglik=totals.numpy(), n_tokens=n_tokens)


def _tiles(device: torch.device) -> dict[str, int]:
    """Fused-head tile sizes: on a CPU 512 rows × 1,024 vocabulary entries (2 MB of float32, within one
    core's L2 cache; among the fastest of 128–1,024 × 512–8,192 by one thread's CPU time here); on an
    accelerator larger tiles (256 MB), since there each tile costs a handful of kernel launches."""
    return {"row_block": 512, "vocab_block": 1024} if device.type == "cpu" else \
        {"row_block": 8192, "vocab_block": 8192}


@torch.inference_mode()
def score_texts_naive(lm: LanguageModel, texts: Sequence[str]) -> TextScores:
    """Slow reference: one text at a time, the full log-softmax over the vocabulary, and a Python
    loop over tokens. Texts must fit in the model's context. Used by tests and bench/score.py."""
    lm.module.eval()
    out, counts = [], []
    for text in texts:
        ids = lm.tokenizer.encode(text)
        seq = torch.tensor([[lm.tokenizer.bos_id, *ids]], device=lm.device)
        if seq.shape[1] - 1 > lm.max_context:
            raise ValueError("naive reference needs texts that fit in the context")
        logprobs = torch.log_softmax(lm.logits(seq[:, :-1]).double(), dim=-1)[0]
        total = 0.0
        for j, tok in enumerate(ids):
            total += float(logprobs[j, tok])
        out.append(total)
        counts.append(len(ids))
    return TextScores(loglik=np.array(out, dtype=np.float64), n_tokens=np.array(counts, dtype=np.int64))
