"""Evaluations of a model found again by its weights' fingerprint, so identical models are evaluated once.

Models with the same fingerprint (models/base.fingerprint_module: every parameter's bytes, the config and
the tokenizer identity) are the same function, so the same evaluation of them gives the same numbers. In a
spec they recur:

- step 0 of every run of a seed is that seed's base: iterative-LLD and adjusted-LLD (and pass 1 at each τ
  of a τ ablation) score it on the same subsample, and with `lld.record_gram` compute the same Gram matrix;
- a run that trains exactly like another (aggregated-LLD at τ = ∞ is uniform's mixture, from the same base
  and data order) makes the very same model at every step;
- the oracle of a twin target reproduces the target bit for bit at the last step.

`EvalMemo` keeps what was computed under (kind, fingerprint, key) — `key` names everything else the
evaluation depends on (the texts, the corpus, the settings, the device) — and hands it back instead of
computing it again. Pure: no torch, no I/O; the caller computes the fingerprint and the value.
Bounded: the least recently used entries go first beyond `max_entries`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

SUBSAMPLE_SCORES = "Δ scores"  # scoring.TextScores of the estimation subsample (nats/text, tokens)
GRAM = "Gram"  # the domain Gram matrix [K, K] (float64)
MODEL_MAP = "model map"  # the stored (float32-read) log-likelihood vector on the evaluation corpus
SAMPLED = "sampled"  # the stored log-likelihoods of the target's draws


class EvalMemo:
    """Evaluations keyed by (kind, model fingerprint, key); `enabled=False` computes every time."""

    def __init__(self, enabled: bool = True, max_entries: int = 256):
        self.enabled, self.max_entries = enabled, max_entries
        self._entries: OrderedDict[tuple, object] = OrderedDict()
        self.hits: dict[str, int] = {}  # kind → evaluations handed back instead of computed
        self.misses: dict[str, int] = {}  # kind → evaluations computed (and kept)

    def find(self, kind: str, fingerprint: str, key: Hashable):
        """The value kept under (kind, fingerprint, key), or None (always None when disabled)."""
        if not self.enabled:
            return None
        k = (kind, fingerprint, key)
        if k not in self._entries:
            return None
        self._entries.move_to_end(k)
        self.hits[kind] = self.hits.get(kind, 0) + 1
        return self._entries[k]

    def keep(self, kind: str, fingerprint: str, key: Hashable, value: object) -> None:
        """Remember `value` (not None) under (kind, fingerprint, key)."""
        if not self.enabled or value is None:
            return
        k = (kind, fingerprint, key)
        self._entries[k] = value
        self._entries.move_to_end(k)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, kind: str, fingerprint: str, key: Hashable, compute: Callable[[], T]) -> T:
        """The kept value, or `compute()` (then kept)."""
        found = self.find(kind, fingerprint, key)
        if found is not None:
            return found  # type: ignore[return-value]
        value = compute()
        self.misses[kind] = self.misses.get(kind, 0) + 1
        self.keep(kind, fingerprint, key, value)
        return value

    def summary(self) -> str:
        """"Δ scores 1, Gram 1" (the evaluations reused so far), or "" when none was."""
        return ", ".join(f"{k} {n}" for k, n in self.hits.items() if n)
