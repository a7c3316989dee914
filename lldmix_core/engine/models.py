"""The models a spec needs: the target (trained with fixed weights, or loaded) and each seed's base,
plus the training call every stage goes through (it first tells torchrun's other ranks what to build).

A part of the engine, handed the store, settings, claims, log, progress and stop check (never the engine):
it writes models and their stages to the store, never to the tracker.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

import torch

from lldmix_core.config import Settings, confine_path
from lldmix_core.db.store import Store
from lldmix_core.distributed import ModelRecipe, TrainTask, broadcast_task
from lldmix_core.engine.claims import StageClaims
from lldmix_core.errors import UserError
from lldmix_core.evaluate import register_model
from lldmix_core.models import LanguageModel, load_model, load_nanogpt, new_nanogpt, save_nanogpt
from lldmix_core.prepare import PreparedCorpus, mixture, nanogpt_config
from lldmix_core.spec import ModelRef, RunSpec, content_hash, strip_twin_default
from lldmix_core.tokenizers import Tokenizer
from lldmix_core.procgroup import world
from lldmix_core.train import TrainConfig, train
from lldmix_core.train_group import TRAIN_PATH, GroupMember, train_group


class FixedJob(NamedTuple):
    """One fixed-weights NanoGPT to train (a target, a twin target, a pretrained base)."""

    role: str
    key: str  # the content key of its stage
    path: Path  # where the trained model is saved
    name: str
    init_lm: LanguageModel | None  # the initial model, trained in place (None: a random one, built to train)
    init: ModelRecipe  # how torchrun's other ranks rebuild it
    tcfg: TrainConfig
    weights: np.ndarray  # [K] its fixed training mixture
    truth: dict  # {domain: weight}, the same mixture by name
    grouped: bool  # trained on the grouped path (a twin whose runs train in groups)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ModelStages:
    """Builds, trains (once, by content key) and loads models; remembers how each role's model is
    rebuilt (`recipes`) for torchrun followers."""

    def __init__(self, store: Store, settings: Settings, claims: StageClaims, log: Callable[[str], None],
                 progress: Callable[[float, str], None], should_stop: Callable[[], bool] | None):
        self.store, self.settings, self.claims, self.log = store, settings, claims, log
        self.progress, self.should_stop = progress, should_stop
        self.recipes: dict[str, ModelRecipe] = {}  # role -> how to rebuild that model

    def _fixed_job(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer, ref: ModelRef, role: str,
                   seed: int | None) -> FixedJob:
        """What training `role`'s fixed-weights NanoGPT means: its content key, file, name, settings, initial model."""
        t = ref.train
        weights = mixture(corpus.domains, t.weights, t.multipliers, f"{role}.train.weights")
        truth = dict(zip(corpus.domains, map(float, weights)))
        cfg = nanogpt_config(spec.arch, tok)
        settings = {"role": role, "train": strip_twin_default(t.model_dump(mode="json")), "arch": cfg.to_dict(),
                    "tok": tok.identity, "data": corpus.train_identity,
                    "optim": spec.training.model_dump(mode="json", exclude={"steps", "group"})}  # group: keyed by train_path
        if t.twin:
            if seed is None:
                raise ValueError("a twin target is trained per seed")
            init_lm = self.base(spec, corpus, tok, seed)  # this seed's base, as its runs start from it
            init = self.recipes["base"]
            settings.update(init=init_lm.fingerprint(), seed=seed, steps=spec.training.steps)
            tcfg = self.train_config(spec, spec.training.steps, seed)
            if spec.training.group and world()[1] == 1:  # as its runs train: the oracle then reproduces it bit for bit
                settings["train_path"] = TRAIN_PATH
        else:
            init_lm, init = None, ModelRecipe.random(cfg.to_dict(), spec.tokenizer, t.seed)  # built only to train
            tcfg = self.train_config(spec, t.steps, t.seed, lr=t.lr, batch_size=t.batch_size)
        key = content_hash(settings)
        path = self.settings.home / "models" / f"{role}-{key[:16]}.pt"
        name = f"{spec.name}.{role}.{key[:8]}" if not t.twin else f"{spec.name}.{role}.twin-seed{seed}.{key[:8]}"
        return FixedJob(role, key, path, name, init_lm, init, tcfg, weights, truth, "train_path" in settings)

    def _trained(self, job: FixedJob) -> bool:
        return self.store.get_stage(job.key) is not None and job.path.is_file()

    def train_fixed(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer, ref: ModelRef, role: str,
                    seed: int | None = None) -> tuple[LanguageModel, int, dict]:
        """Train a NanoGPT with fixed weights (a target like CodeNanoGPT, or a pretrained base); cached by key.

        A twin target (`train.twin`) is trained for `seed` from that seed's base (its initial model, the
        run's seed and so the runs' per-domain batch order, the runs' training settings and budget)."""
        job = self._fixed_job(spec, corpus, tok, ref, role, seed)
        if not self._trained(job):
            with self.claims.exclusive(job.key, f"train-{role}") as mine:
                if mine:
                    [lm] = self._train_fixed_now(spec, corpus, tok, [job])
                    return lm, int(self.store.get_stage(job.key)["model_id"]), job.truth
        done = self.store.get_stage(job.key)  # trained earlier, or by another worker while we waited
        self.log(f"{role}: found trained model {done['model_name']} in the database (stage {job.key[:8]}), not retraining")
        self.recipes[role] = ModelRecipe.load("nanogpt", job.path)
        return load_nanogpt(job.path), int(done["model_id"]), job.truth

    def train_twins(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer, seeds) -> None:
        """Every seed's twin target not trained yet, trained together in one group (train_group.py; a
        member's numbers do not depend on its group, so each equals the twin trained alone)."""
        with ExitStack() as claims:
            todo = []
            for seed in seeds:
                job = self._fixed_job(spec, corpus, tok, spec.target, "target", seed)
                if job.grouped and not self._trained(job) and claims.enter_context(self.claims.exclusive(job.key, "train-target")):
                    todo.append(job)
            if todo:
                self._train_fixed_now(spec, corpus, tok, todo)

    def _train_fixed_now(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer,
                         jobs: list[FixedJob]) -> list[LanguageModel]:
        """Train `jobs` (one, or twins together on the grouped path), save, register and finish their stages;
        the trained models, in the jobs' order."""
        jobs = [j if j.init_lm is not None else j._replace(init_lm=new_nanogpt(
            nanogpt_config(spec.arch, tok), spec.tokenizer, j.tcfg.seed)) for j in jobs]
        for job in jobs:
            cfg, tcfg = job.init_lm.config, job.tcfg
            self.log(f"{job.role}: training NanoGPT ({cfg['n_layer']}×{cfg['n_embd']}) for {tcfg.steps} steps (seed "
                     f"{tcfg.seed}) with weights " + ", ".join(f"{d} {w:.3f}" for d, w in job.truth.items()))
            job.init_lm.module.to(_device())
        self.progress(0.0, f"training {jobs[0].role}" + (f" ({len(jobs)} twins together)" if len(jobs) > 1 else ""))

        def on_step_of(job: FixedJob):
            def on_step(s, loss, lr, d):
                self.claims.heartbeat(job.key)
                if (s + 1) % 50 == 0:
                    self.progress(0.0, f"training {job.role}: step {s + 1}/{job.tcfg.steps}, loss {loss:.3f} nats/token")
            return on_step

        ckpt = [self.settings.checkpoints_dir / f"{j.role}-{j.key[:16]}" / "last.pt" for j in jobs]
        if jobs[0].grouped:  # the path its twin runs train on (train_group.py)
            train_group([GroupMember(j.init_lm, j.tcfg, j.weights, on_step=on_step_of(j), checkpoint_path=c)
                         for j, c in zip(jobs, ckpt)], corpus.streams, corpus.domains, should_stop=self.should_stop)
        else:
            [job] = jobs
            self.train(job.init, job.init_lm, corpus, job.tcfg, job.weights, checkpoint_path=ckpt[0],
                       should_stop=self.should_stop, on_step=on_step_of(job))
        for job in jobs:
            lm = job.init_lm
            lm.module.to("cpu")
            save_nanogpt(lm, job.path, truth=job.truth)
            model_id = register_model(self.store, lm, job.name, source=str(job.path))
            self.recipes[job.role] = ModelRecipe.load("nanogpt", job.path)
            self.store.finish_stage(job.key, kind=f"train-{job.role}", spec_hash=spec.spec_hash,
                                    result={"model_id": model_id, "model_name": job.name, "path": str(job.path),
                                            "weights": job.truth})
        return [job.init_lm for job in jobs]

    def train(self, recipe: ModelRecipe, lm: LanguageModel, corpus: PreparedCorpus, cfg: TrainConfig, weights, *,
               teacher: ModelRecipe | None = None, objective: str | None = None, params: dict | None = None, **kw):
        """train(), after telling torchrun's other ranks (if any) how to build the same training."""
        broadcast_task(TrainTask.of(model=recipe, streams=corpus.streams.folder, domains=corpus.domains, cfg=cfg,
                                    weights=weights, eval_steps=kw.get("eval_steps", ()),
                                    checkpoint_path=kw.get("checkpoint_path"), teacher=teacher, objective=objective,
                                    params=params))
        return train(lm, corpus.streams, corpus.domains, cfg, weights, **kw)

    def target(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer,
               seed: int | None = None) -> tuple[LanguageModel, int, dict | None]:
        """The target (for a twin spec: seed `seed`'s), its model id and its training mixture (None: unknown)."""
        ref = spec.target
        if ref.train is not None:
            return self.train_fixed(spec, corpus, tok, ref, "target", seed)
        lm, model_id = self.load_ref(spec, ref, "target")
        return lm, model_id, None

    def load_ref(self, spec: RunSpec, ref: ModelRef, role: str) -> tuple[LanguageModel, int]:
        if ref.model is not None:
            info = self.store.get_model(ref.model)
            tok = info.tokenizer if info.kind == "hf" else None
            lm = load_model(info.kind, info.source, tokenizer=tok)
            self.recipes[role] = ModelRecipe.load(info.kind, info.source, tok)
            return lm, info.id
        if ref.path is not None:
            path = confine_path(ref.path, self.settings, f"{role}.path")
            lm = load_model(ref.kind, path, tokenizer=ref.tokenizer, trust_remote_code=ref.trust_remote_code)
            self.recipes[role] = ModelRecipe.load(ref.kind, path, ref.tokenizer)
            fp = lm.fingerprint()
            known = self.store.find_model(fp)
            model_id = known.id if known else register_model(self.store, lm, f"{role}-{path.name}-{fp[:8]}", source=str(path), fingerprint=fp)
            return lm, model_id
        raise UserError(f"{role}: init: random is only allowed for the base")

    def base(self, spec: RunSpec, corpus: PreparedCorpus, tok: Tokenizer, seed: int) -> LanguageModel:
        """Seed `seed`'s base: a random NanoGPT, a trained fixed-weights one, or a loaded model (`tok`: the spec's)."""
        ref = spec.base
        if ref.init == "random":
            cfg = nanogpt_config(spec.arch, tok)
            self.recipes["base"] = ModelRecipe.random(cfg.to_dict(), spec.tokenizer, seed)
            return new_nanogpt(cfg, spec.tokenizer, seed)
        if ref.train is not None:
            return self.train_fixed(spec, corpus, tok, ref, "base")[0]
        return self.load_ref(spec, ref, "base")[0]

    # ------------------------------------------------------------------ one method × seed
    def train_config(self, spec: RunSpec, steps: int, seed: int, lr: float | None = None, batch_size: int | None = None) -> TrainConfig:
        o = spec.training
        return TrainConfig(steps=steps, batch_size=batch_size or o.batch_size, grad_accum=o.grad_accum,
                           block_size=spec.arch.block_size, lr=lr or o.lr, min_lr=min(o.min_lr, lr or o.lr),
                           warmup_steps=min(o.warmup_steps, steps // 2), weight_decay=o.weight_decay, betas=o.betas,
                           eps=o.eps, grad_clip=o.grad_clip, checkpoint_every=o.checkpoint_every, seed=seed)
