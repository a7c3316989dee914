"""`lldmix run runs/real-pair.yaml`: two real checkpoints of different families, end to end.

1. the frozen mini-Pile's evaluation texts stored as a corpus (prepare.prepare_eval_corpus);
2. the one-shot recipe from the two checkpoints (oneshot.recipe_from_models, per byte: the two
   tokenizers differ), stored with its provenance and logged to MLflow;
3. both models on the model map (per-text log-likelihoods, double-centred: ½·var of the difference,
   bits/byte) and the sampled KL both ways: texts drawn from the target scored under both
   (KL(target ‖ base)) and texts drawn from the base (KL(base ‖ target)), bits/byte ± se;
4. continued pretraining of the base with the Hugging Face Trainer on the mini-Pile's training split,
   once per method (uniform: the fixed uniform mixture; iterative-LLD: integrations.hf_trainer's
   LLDCallback re-weighting the MixtureDataset at lldmix's schedule steps, its run stored like any
   callback run), from the same initial weights, data seed and index order; each trained model scored on
   the corpus (the model map again) and on the target's draws (paired sampled KL(target ‖ model)).

The outcome (a JSON document, every number with its unit) is written atomically under
LLDMIX_HOME/real-pair/, keyed by the spec's content, both checkpoints' folder fingerprints, the
frozen corpus and the numerics version: a second run with the same inputs trains nothing and reads it.
Every check that can fail for a missing checkpoint runs before anything is written. Nothing here
reaches a model hub (HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set if unset; local files only).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core import provenance
from lldmix_core.errors import UserError
from lldmix_core.integrations.real_pair_spec import RealPairSpec, resolve_model
from lldmix_core.methods import METHODS

EXPERIMENT = "lldmix-real-pair"
SCHEMA = 1


def outcome_path(spec: RealPairSpec, settings, base_dir: Path, target_dir: Path) -> Path:
    """LLDMIX_HOME/real-pair/<name>-<key>.json; key = spec content × both folders' content × corpus × numerics."""
    from lldmix_core.corpus.local import FROZEN_CONTENT_HASH
    from lldmix_core.models.hf import _fingerprint_folder

    h = hashlib.sha256()
    for part in (spec.content_hash(), _fingerprint_folder(base_dir), _fingerprint_folder(target_dir),
                 FROZEN_CONTENT_HASH, str(provenance.NUMERICS_VERSION), str(SCHEMA)):
        h.update(part.encode() + b"\0")
    return settings.home / "real-pair" / f"{spec.name}-{h.hexdigest()[:16]}.json"


def training_blocks(tokenizer, domains, block: int, per_domain: int) -> dict[str, list[dict]]:
    """{domain: `per_domain` examples {"input_ids", "labels"} of `block` tokens} from the frozen mini-Pile's
    training split, documents joined in file order with the tokenizer's BOS between them."""
    import torch

    from lldmix_core.corpus.local import frozen_paths
    from lldmix_core.corpus.records import iter_records

    need = block * per_domain
    ids: dict[str, list[int]] = {d: [] for d in domains}
    for d, text in iter_records(frozen_paths()[0]):
        if d in ids and len(ids[d]) < need:
            ids[d].extend([tokenizer.bos_id, *tokenizer.encode(text)])
            if all(len(v) >= need for v in ids.values()):
                break
    out = {}
    for d, v in ids.items():
        if len(v) < block:
            raise UserError(f"training.block: domain {d!r} has {len(v)} training tokens, fewer than one block of {block}")
        out[d] = [{"input_ids": torch.tensor(v[i:i + block]), "labels": torch.tensor(v[i:i + block])}
                  for i in range(0, min(len(v), need) - block + 1, block)]
    return out


class _LossRecorder:
    """A duck-typed TrainerCallback keeping the Trainer's logged training loss per step (nats/token)."""

    def __init__(self):
        self.loss: list[tuple[int, float]] = []

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss.append((int(state.global_step), float(logs["loss"])))


def _kl(k) -> dict:
    """A SampledKL as JSON: mean and se (bits/byte) and the per-draw values [n] they come from."""
    return {"mean": k.mean, "se": k.se, "n": k.n, "same_tokenizer": k.same_tokenizer, "unit": "bits/byte",
            "per_sample": [float(x) for x in k.per_sample]}


def _per(domains, v) -> dict[str, float]:
    return {d: float(x) for d, x in zip(domains, v)}


def _train(method: str, spec: RealPairSpec, base_dir: Path, base_lm, examples, lld_eval, target_means,
           store, tracker, log) -> tuple:
    """Continued pretraining of a fresh copy of the base under `method`: (trained LanguageModel, record)."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from lldmix_core.integrations.hf_trainer import LLDCallback, MixtureDataset
    from lldmix_core.models.hf import HFLanguageModel

    tr = spec.training
    torch.manual_seed(tr.seed)
    module = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, trust_remote_code=False,
                                                  dtype=torch.float32)
    data = MixtureDataset(examples, length=tr.steps * tr.batch_size, seed=tr.seed)
    losses = _LossRecorder()
    callbacks, lld = [losses], None
    if METHODS[method].behaviour.iterative:  # else the prior, uniform, held fixed
        texts, tdomains = lld_eval
        lld = LLDCallback(data, texts, tdomains, tokenizer=base_lm.tokenizer, target=_per(data.domains, target_means),
                          method=method, tau=tr.tau, unit="byte", store=store, tracker=tracker,
                          name=f"{spec.name}.{method}", seed=tr.seed)
        callbacks.append(lld)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lldmix-real-pair-") as out:
        args = TrainingArguments(output_dir=out, max_steps=tr.steps, per_device_train_batch_size=tr.batch_size,
                                 learning_rate=tr.lr, warmup_steps=tr.warmup_steps, weight_decay=0.0,
                                 logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                                 dataloader_num_workers=0, seed=tr.seed, data_seed=tr.seed, disable_tqdm=True)
        trainer = Trainer(model=module, args=args, train_dataset=data, callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # the loss goes to the outcome, not to stdout per step
        trainer.train()
    wall = time.monotonic() - t0
    module.eval()
    lm = HFLanguageModel(kind="hf", module=module, tokenizer=base_lm.tokenizer, max_context=base_lm.max_context,
                         config={**base_lm.config, "continued": method})
    drawn = sum(data.drawn.values())
    rec = {
        "method": method, "train_wall_s": wall, "steps": tr.steps,
        "drawn_share": _per(data.domains, drawn / max(int(drawn.sum()), 1)),
        "drawn_items": int(drawn.sum()),
        "train_loss_nats_per_token": [[s, v] for s, v in losses.loss],
        "weights": ([{"step": r.step, "tau": r.tau, "weights": _per(data.domains, r.weights),
                      "delta": _per(data.domains, r.delta)} for r in lld.history] if lld else []),
        "run_id": lld.run_id if lld else None,
    }
    log(f"trained {method}: {tr.steps} steps in {wall:.0f} s; drawn "
        + ", ".join(f"{d} {v:.2f}" for d, v in rec["drawn_share"].items()))
    return lm, rec


def run_real_pair(spec: RealPairSpec, settings, store, *, mlflow: bool = True,
                  log: Callable[[str], None] = print) -> dict:
    """The whole pipeline (module docstring); returns the outcome document (also written to disk)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    base_name, base_dir = resolve_model(spec.base, "base", settings, store)
    target_name, target_dir = resolve_model(spec.target, "target", settings, store)
    path = outcome_path(spec, settings, base_dir, target_dir)
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        log(f"{spec.name}: found {path} (same spec, checkpoints, corpus and numerics): nothing recomputed")
        return {**doc, "found": True}
    # ---- every check passed: from here on things are stored --------------------------------------
    from lldmix_core.atomic import atomic_write_bytes
    from lldmix_core.evaluate import register_model
    from lldmix_core.models import load_model
    from lldmix_core.oneshot import EXPERIMENT as RECIPES, recipe_from_models
    from lldmix_core.prepare import prepare_eval_corpus
    from lldmix_core.sampled_kl import paired_difference, sample_texts, sampled_kl
    from lldmix_core.scoring import score_texts
    from lldmix_core.spec import CorpusSpec
    from lldmix_core.tracking import make_tracker

    t_start = time.monotonic()
    code = provenance.code_version()  # the code that runs (the tree may change while it does)
    lms = {}
    for role, ref, name, folder in (("base", spec.base, base_name, base_dir), ("target", spec.target, target_name, target_dir)):
        lm = load_model("hf", folder)
        if ref.path is not None:  # a folder the spec names: registered under its content
            name = f"{folder.name}-{lm.fingerprint()[:12]}"
            register_model(store, lm, name, source=str(folder))
        lms[role] = (name, lm)
    (base_name, base_lm), (target_name, target_lm) = lms["base"], lms["target"]
    c = spec.corpus
    corpus = prepare_eval_corpus(store, CorpusSpec(local=True, eval_per_domain=c.eval_per_domain, eval_seed=c.eval_seed,
                                                   max_bytes=c.max_bytes, min_bytes=min(256, c.max_bytes // 4)),
                                 settings, f"{spec.name}-eval")
    texts = store.load_texts(corpus.id)
    log(f"corpus {corpus.name}: {len(texts.texts)} evaluation texts in {len(corpus.domains)} domains")

    recipe = recipe_from_models(store, base_name, target_name, corpus.name, tau=spec.recipe.tau, unit="byte",
                                name=f"{spec.name}.recipe", checkpoints_dir=settings.checkpoints_dir,
                                tracker=make_tracker(mlflow, settings.mlflow_uri, RECIPES, settings.mlflow_artifact_root))
    domains = recipe.domains
    log(f"recipe {recipe.name!r} (id {recipe.recipe_id}): τ = {recipe.tau:.4g} nats/byte")
    vec = {}
    for role, (name, lm) in lms.items():
        info = store.get_model(name)
        vec[role] = store.get_loglik_vector(info.id, corpus.id, info.tokenizer_hash)[0].astype(np.float64)

    s = spec.sampled_kl
    draws_t = sample_texts(target_lm, s.n, s.n_tokens, s.seed)
    draws_b = sample_texts(base_lm, s.n, s.n_tokens, s.seed)
    kl_tb, kl_bt = sampled_kl(draws_t, target_lm, base_lm), sampled_kl(draws_b, base_lm, target_lm)
    log(f"sampled KL(target ‖ base) {kl_tb.mean:.4f} ± {kl_tb.se:.4f}, KL(base ‖ target) {kl_bt.mean:.4f} ± "
        f"{kl_bt.se:.4f} bits/byte")

    tr = spec.training
    examples = training_blocks(base_lm.tokenizer, domains, tr.block, tr.blocks_per_domain)
    pick = [i for d in domains for i in [j for j, td in enumerate(texts.domains) if td == d][: tr.lld_texts_per_domain]]
    lld_eval = ([texts.texts[i] for i in pick], [texts.domains[i] for i in pick])
    tinfo = store.get_model(target_name)
    ll_t, nt_t = store.get_loglik_vector(tinfo.id, corpus.id, tinfo.tokenizer_hash)
    target_means = mc.domain_means(ll_t[pick].astype(np.float64), nt_t[pick], texts.n_bytes[pick], lld_eval[1], domains, "byte")
    tracker = make_tracker(mlflow, settings.mlflow_uri, EXPERIMENT, settings.mlflow_artifact_root)
    trained, per_sample = {}, {}
    for m in tr.methods:
        lm, rec = _train(m, spec, base_dir, base_lm, examples, lld_eval, target_means, store, tracker, log)
        sc = score_texts(lm, texts.texts)
        vec[m] = sc.loglik.astype(np.float64)
        k = sampled_kl(draws_t, target_lm, lm)
        per_sample[m] = k
        rec["loglik_nats_per_byte"] = _per(domains, mc.domain_means(sc.loglik, sc.n_tokens, texts.n_bytes,
                                                                    texts.domains, domains, "byte"))
        rec["sampled_kl_target_to_model"] = _kl(k)
        trained[m] = rec
        del lm

    labels = list(vec)
    mean_bytes = float(texts.n_bytes.mean())
    kl_map = mc.nats_per_text_to_bits_per_byte(mc.kl_matrix(np.stack([vec[r] for r in labels])), mean_bytes)
    paired = {}  # each re-weighting method against the fixed prior mixture, on the same draws
    fixed = [m for m in tr.methods if not METHODS[m].behaviour.iterative]
    for ref in fixed[:1]:
        for m in tr.methods:
            if METHODS[m].behaviour.iterative:
                d, se = paired_difference(per_sample[m], per_sample[ref])
                paired[m] = {"mean": d, "se": se, "unit": "bits/byte", "reference": ref,
                             "of": f"KL(target ‖ {m}) − KL(target ‖ {ref})"}
    prov = {**provenance.collect(corpus.content_hash, None), **code, "transformers": _version("transformers"),
            "base_fingerprint": base_lm.fingerprint(), "target_fingerprint": target_lm.fingerprint(),
            "base_tokenizer": base_lm.tokenizer.identity, "target_tokenizer": target_lm.tokenizer.identity}
    doc = {
        "schema": SCHEMA, "name": spec.name, "description": spec.description, "spec": spec.model_dump(mode="json"),
        "base": {"name": base_name, "folder": str(base_dir), "n_params": base_lm.n_params,
                 "vocab": base_lm.tokenizer.vocab_size, "model_type": base_lm.config.get("model_type")},
        "target": {"name": target_name, "folder": str(target_dir), "n_params": target_lm.n_params,
                   "vocab": target_lm.tokenizer.vocab_size, "model_type": target_lm.config.get("model_type")},
        "corpus": {"name": corpus.name, "hash": corpus.content_hash, "n_texts": len(texts.texts), "domains": list(domains),
                   "mean_bytes": mean_bytes},
        "recipe": {"name": recipe.name, "id": recipe.recipe_id, "unit": "nats/byte", "tau": recipe.tau,
                   "tau_setting": recipe.tau_setting, "base_loglik": _per(domains, recipe.base_ll),
                   "target_loglik": _per(domains, recipe.target_ll), "delta": _per(domains, recipe.delta),
                   "weights": _per(domains, recipe.weights)},
        "model_map": {"models": labels, "kl_bits_per_byte": kl_map.tolist(),
                      "gap_to_target_bits_per_byte": {r: mc.loglik_gap_bits_per_byte(vec[r], vec["target"], texts.n_bytes)
                                                      for r in labels}},
        "sampled_kl": {"target_to_base": _kl(kl_tb), "base_to_target": _kl(kl_bt), "n_tokens": s.n_tokens,
                       "seed": s.seed, "mean_bytes_target_draws": draws_t.mean_bytes, "mean_bytes_base_draws": draws_b.mean_bytes,
                       "target_draws": list(draws_t.texts), "base_draws": list(draws_b.texts)},
        "training": trained, "paired_to_uniform": paired, "provenance": prov,
        "wall_s": time.monotonic() - t_start,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True).encode())
    log(f"{spec.name}: outcome written to {path}")
    return {**doc, "found": False, "path": str(path)}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cli_run(path: Path, settings, store_factory, *, mlflow: bool, dry_run: bool, echo) -> dict | None:
    """`lldmix run FILE` for a real-pair file: checks (both checkpoints present) before anything is written,
    then the pipeline and its report. `--dry-run` checks and prints what would run."""
    from lldmix_core.integrations.real_pair_doc import report_lines
    from lldmix_core.integrations.real_pair_spec import load_real_pair

    spec = load_real_pair(path)
    store = store_factory()
    if dry_run:
        for role, ref in (("base", spec.base), ("target", spec.target)):
            name, folder = resolve_model(ref, role, settings, store)
            echo(f"{role}: {name} ({folder})")
        tr = spec.training
        echo(f"recipe (τ {spec.recipe.tau}, nats/byte) on {spec.corpus.eval_per_domain} evaluation texts per domain; "
             f"sampled KL both ways ({spec.sampled_kl.n} × {spec.sampled_kl.n_tokens} tokens); then "
             + ", ".join(tr.methods) + f": {tr.steps} steps × {tr.batch_size} × {tr.block} tokens each")
        return None
    doc = run_real_pair(spec, settings, store, mlflow=mlflow, log=echo)
    for line in report_lines(doc):
        echo(line)
    return doc


def cli_results(path: Path, out: Path, settings, store_factory, echo) -> None:
    """`lldmix results FILE --out DOC` for a real-pair file: run (or find) the outcome, set its section of DOC."""
    from lldmix_core.atomic import atomic_write_bytes
    from lldmix_core.integrations.real_pair_doc import render_markdown
    from lldmix_core.integrations.real_pair_spec import load_real_pair
    from lldmix_core.results_doc import replace_section

    spec = load_real_pair(path)
    doc = cli_run(path, settings, store_factory, mlflow=True, dry_run=False, echo=echo)
    body = render_markdown(doc, command=f"lldmix results {path} --out {out}")
    try:
        existing = out.read_text(encoding="utf-8") if out.exists() else None
        atomic_write_bytes(out, replace_section(existing, spec.name, body).encode())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"--out {out}: {e}") from None
    echo(f"results: wrote section {spec.name!r} of {out}")
