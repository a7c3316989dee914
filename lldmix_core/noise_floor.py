"""The training-noise floor: how far apart two models trained alike from different seeds are.

For consecutive seeds (a, b) of a spec, the models of one method trained on the same mixture with the
same budget (the oracle's when the spec runs it, else the baseline's) differ only by their seed: the
initial model and the data order. Their sampled KL(model_a ‖ model_b) — texts drawn from model_a,
scored under both — is the distance that no mixture can remove, the scale against which a headroom
is read. Stored as `kl_results` rows with estimator "sampled-seed-pair" on run b (reference model:
a's final model, corpus: a's draws), found there on re-run.
"""

from __future__ import annotations

from pathlib import Path

from lldmix_core.evaluate import load_stored_model
from lldmix_core.headroom import SEED_PAIR, SeedPairKL, floor_method
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.sampled_eval import sampled_kl_of, target_samples


def seed_pair_kls(store, home: Path, checkpoints_dir: Path, outcome: SpecOutcome, *, n: int, n_tokens: int,
                  step: int) -> list[SeedPairKL]:
    """KL(model_a ‖ model_b) for consecutive seeds of the floor method, from the store or computed."""
    name = floor_method(r.method for r in outcome.runs)
    runs = sorted((r for r in outcome.runs if r.method == name and r.final_model_id), key=lambda r: r.seed)
    out = []
    for a, b in zip(runs, runs[1:]):
        row = next((k for k in store.get_kl(b.run_id)
                    if k.estimator == SEED_PAIR and k.reference_model_id == a.final_model_id), None)
        if row is None:
            lm_a = load_stored_model(store, checkpoints_dir, a.final_model_id)
            lm_b = load_stored_model(store, checkpoints_dir, b.final_model_id)
            sset = target_samples(store, home, lm_a, a.final_model_id, n=n, n_tokens=n_tokens, seed=a.seed)
            res = sampled_kl_of(store, sset, lm_a, lm_b, b.final_model_id)
            store.save_kl(run_id=b.run_id, step=step, model_id=b.final_model_id, reference_model_id=a.final_model_id,
                          corpus_id=sset.corpus_id, nats_per_text=res.nats_per_text, bits_per_byte=res.bits_per_byte,
                          gap_bits_per_byte=None, estimator=SEED_PAIR, stderr_bits_per_byte=res.stderr_bits_per_byte,
                          n_samples=res.n_samples)
            row = next(k for k in store.get_kl(b.run_id)
                       if k.estimator == SEED_PAIR and k.reference_model_id == a.final_model_id)
        out.append(SeedPairKL(name, a.seed, b.seed, row.bits_per_byte, row.stderr_bits_per_byte, row.n_samples))
    return out
