"""A fused output head: log p(observed token) without materialising the [N × V] logits.

The plain path computes the logits of N positions over a vocabulary of V, their log-softmax, and
picks the observed token's entry: for GPT-2's V = 50,257 that is 200 kB of float32 per position,
written and re-read several times, so on a CPU the memory traffic rather than the matmul sets the
pace. Here the positions are taken `row_block` at a time and the vocabulary `vocab_block` columns at
a time; each [row_block × vocab_block] tile of logits (≈ 2 MB at the defaults: it stays in cache)
is reduced at once to its per-row maximum and sum of exp(logit − maximum), which are merged into a
running log-sum-exp (float64), and the observed token's logit is gathered from the tile it falls
in. Then log p(y) = z_y − logsumexp(z). The [N × V] matrix never exists.

Exactness: every logit is the same float32 (or the head's dtype, then cast to float32) value the
plain path computes from the same tile of the same matmul; only the order in which the exp-sum is
accumulated differs, so results agree with `plain_logprobs` to float32 rounding (~1e-7 relative;
tests/test_fused_head.py checks 1e-6 against a float64 log_softmax).

A `Head` is what the output layer is, as tensors: logits = softcap(scale · (h Wᵀ + b)), with
softcap(z) = c·tanh(z / c) when `softcap` = c is set (Gemma-2 style). A model whose output layer is
not of that form has no `Head` (its `LanguageModel.head()` returns None) and the scorer falls back
to the plain path through `logits_from_hidden`.

Pure torch: imports nothing of lldmix.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Head:
    """An output layer as tensors: logits = softcap(scale · (h @ weight.T + bias))."""

    weight: torch.Tensor  # [V, d], the output matrix (rows: vocabulary entries)
    bias: torch.Tensor | None = None  # [V] or None
    scale: float = 1.0  # multiplies the logits after the bias (e.g. Cohere's logit_scale)
    softcap: float | None = None  # c: logits → c·tanh(logits / c), after `scale`

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits [..., V] (the head's dtype) for hidden states [..., d]: the plain definition."""
        z = torch.nn.functional.linear(h, self.weight, self.bias)
        return self._finish(z)

    def _finish(self, z: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            z = z * self.scale
        if self.softcap:
            z = torch.tanh(z / self.softcap) * self.softcap
        return z


def plain_logprobs(h: torch.Tensor, logits_fn: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor, *,
                   row_chunk: int = 1024) -> torch.Tensor:
    """The plain path: log p(targets) (float64 [N] on the CPU, nats/token) from the full logits
    `logits_fn(h)` ([rows, V], cast to float32) and their log-softmax, `row_chunk` rows at a time.
    h: [N, d]; targets: int64 [N] in [0, V). `logits_fn` is e.g. `Head.logits` or any model's
    `logits_from_hidden` (the fallback for output layers that have no `Head`)."""
    out = torch.empty(len(targets), dtype=torch.float64)
    for s in range(0, len(targets), row_chunk):
        logits = logits_fn(h[s : s + row_chunk]).float()
        nll = torch.nn.functional.cross_entropy(logits, targets[s : s + row_chunk], reduction="none")
        out[s : s + row_chunk] = -nll.double().cpu()
    return out


def observed_logprobs(h: torch.Tensor, head: Head, targets: torch.Tensor, *, row_block: int = 512,
                      vocab_block: int = 1024, threads: int | None = None) -> torch.Tensor:
    """log p(targets[i] | h[i]) in nats/token, float64 [N] on h's device, computed tile by tile.

    h: hidden states [N, d] (the head's dtype); targets: int64 [N], each in [0, V). No tile larger
    than [row_block × vocab_block] is ever held. Agrees with `plain_logprobs` to float32 rounding.
    No gradients (it runs under `no_grad`).

    On a CPU the row blocks are shared among `threads` workers (default: torch's intra-op thread
    count), each running its tiles single-threaded: a tile's half-dozen small operations parallelised
    inside torch would meet at a barrier each, and on cores shared with other work one descheduled
    thread stalls the other (measured: 10–30× slower at a load of 5 per core). A row's value does not
    depend on the worker count (the row blocks are the same). Elsewhere (CUDA) one stream of tiles, in
    the caller's thread."""
    n, v = len(targets), head.weight.shape[0]
    if h.dim() != 2 or h.shape[0] != n or h.shape[1] != head.weight.shape[1]:
        raise ValueError(f"hidden states {tuple(h.shape)} do not match targets [{n}] and weight "
                         f"{tuple(head.weight.shape)}")
    if row_block < 1 or vocab_block < 1:
        raise ValueError("row_block and vocab_block must be ≥ 1")
    out = torch.empty(n, dtype=torch.float64, device=h.device)
    if n == 0:
        return out
    if int(targets.min()) < 0 or int(targets.max()) >= v:
        raise ValueError(f"target ids must lie in [0, {v})")
    starts = list(range(0, n, row_block))
    if h.device.type != "cpu":
        with torch.no_grad():
            _blocks(h, head, targets, out, starts, row_block, vocab_block)
        return out
    workers = max(1, min(threads or torch.get_num_threads(), len(starts)))

    inference = torch.is_inference_mode_enabled()  # thread-local: the workers take the caller's mode

    def work(mine: list[int]) -> None:
        torch.set_num_threads(1)  # this worker thread only: its tiles run inline, no barrier to wait at
        with torch.inference_mode(inference), torch.no_grad():
            _blocks(h, head, targets, out, mine, row_block, vocab_block)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # torch releases the GIL inside each operation
        for f in [pool.submit(work, starts[i::workers]) for i in range(workers)]:
            f.result()  # re-raises a worker's exception
    return out


def _blocks(h: torch.Tensor, head: Head, targets: torch.Tensor, out: torch.Tensor, starts: list[int],
            row_block: int, vocab_block: int) -> None:
    """Fill out[r0 : r0 + row_block] for each r0 in `starts` (see `observed_logprobs`)."""
    v = head.weight.shape[0]
    in_place = h.dtype == torch.float32 and head.weight.dtype == torch.float32 and head.scale == 1.0 \
        and not head.softcap
    buf = torch.empty(min(row_block, len(targets)), min(vocab_block, v), dtype=torch.float32, device=h.device)
    for r0 in starts:
        hb, yb = h[r0 : r0 + row_block], targets[r0 : r0 + row_block]
        m = torch.full((len(yb),), -torch.inf, dtype=torch.float64, device=h.device)  # running max
        s = torch.zeros(len(yb), dtype=torch.float64, device=h.device)  # Σ exp(z − m)
        zy = torch.empty(len(yb), dtype=torch.float64, device=h.device)  # the observed token's logit
        for v0 in range(0, v, vocab_block):
            w = head.weight[v0 : v0 + vocab_block]
            b = None if head.bias is None else head.bias[v0 : v0 + vocab_block]
            tile = buf[: len(yb), : len(w)]
            if in_place:
                if b is None:
                    torch.mm(hb, w.t(), out=tile)
                else:
                    torch.addmm(b, hb, w.t(), out=tile)
            else:
                tile.copy_(head._finish(torch.nn.functional.linear(hb, w, b)))
            here = ((yb >= v0) & (yb < v0 + len(w))).nonzero().squeeze(1)
            if len(here):
                zy[here] = tile[here, yb[here] - v0].double()
            tm = tile.amax(dim=1)
            tile.sub_(tm[:, None]).exp_()
            ts, tm = tile.sum(dim=1).double(), tm.double()
            new_m = torch.maximum(m, tm)
            s = s * torch.exp(m - new_m) + ts * torch.exp(tm - new_m)
            m = new_m
        out[r0 : r0 + len(yb)] = zy - (m + torch.log(s))
