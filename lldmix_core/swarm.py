"""Swarm export (`lldmix export-swarm`): a spec's (or a benchmark's cells') finished runs as the three files
swarm-style mixture tools exchange (the Olmix layout), so a regression-based mixture method can read them:

    ratios.csv     run_id, then one column per domain: the run's mixture (shares of training steps, sum 1)
    metrics.csv    run_id, then per domain the final model's mean log-likelihood (nats/token) and
                   cross-entropy (bits/byte), then the final sampled KL(target ‖ model) and its standard error
                   (bits/byte; empty where the spec measured none)
    metadata.json  spec names and hashes, corpus hashes, seeds, git commits, units, what each column means,
                   and one entry per run (name, spec, method, seed, τ, commit)

A run's mixture is its stored intended weights (`store.get_weights`: the weights in force from each stored
step on) averaged over its training steps, each vector counted by the steps it was in force
(`mathcore.time_averaged_weights`): the recipe itself for a fixed-mixture run. Reads the store only; every
file is built before any is written, and each is written atomically (metadata.json last).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.atomic import atomic_write_bytes
from lldmix_core.errors import UserError
from lldmix_core.kl_rows import SAMPLED, last_kl
from lldmix_core.methods import is_parent_row

RATIOS, METRICS, METADATA = "ratios.csv", "metrics.csv", "metadata.json"
FORMAT = "lldmix swarm v1 (Olmix-style ratios.csv / metrics.csv / metadata.json)"


def loglik_column(domain: str) -> str:
    return f"loglik_nats_per_token/{domain}"


def bpb_column(domain: str) -> str:
    return f"bits_per_byte/{domain}"


KL_COLUMN, KL_SE_COLUMN = "sampled_kl_bits_per_byte", "sampled_kl_stderr_bits_per_byte"


@dataclass(frozen=True)
class SwarmSpec:
    """One spec whose runs are exported; `truth`: the target's true mixture where lldmix trained it."""

    spec: object  # RunSpec
    cell: str | None = None  # the benchmark cell (None for a plain spec)
    truth: dict[str, float] | None = None


@dataclass(frozen=True)
class SwarmRun:
    """One finished run: its mixture [K] and the final model's per-domain numbers, in `domains` order."""

    run_id: int
    name: str
    spec_name: str
    spec_hash: str
    method: str
    seed: int | None
    tau_setting: str | None
    git_commit: str | None
    corpus_hash: str
    domains: tuple[str, ...]
    mixture: np.ndarray  # [K] shares of training steps, sum 1
    loglik_nats_per_token: np.ndarray  # [K] final model's mean log-likelihood per domain (≤ 0)
    bits_per_byte: np.ndarray  # [K] final model's cross-entropy per domain, −ℓ_byte / ln 2
    sampled_kl_bits_per_byte: float  # the last sampled KL(target ‖ model) of the run; NaN: none measured
    sampled_kl_stderr_bits_per_byte: float
    sampled_kl_step: int | None


def _parent(store, spec):
    for r in store.list_runs(spec_hash=spec.spec_hash):
        if is_parent_row(r.method) and r.parent_id is None:
            return r
    return None


def collect_swarm(store, specs: list[SwarmSpec]) -> list[SwarmRun]:
    """Every finished run (with a final model) of the specs, in spec then run order."""
    out = []
    corpora: dict[int, object] = {}
    for s in specs:
        parent = _parent(store, s.spec)
        if parent is None:
            continue
        for run in store.list_runs(parent_id=parent.id):
            if run.status != "finished" or run.final_model_id is None or run.corpus_id is None:
                continue
            corpus = corpora.setdefault(run.corpus_id, store.get_corpus(run.corpus_id))
            domains = tuple(corpus.domains)
            out.append(_one_run(store, s.spec, run, corpus, domains))
    return out


def _one_run(store, spec, run, corpus, domains) -> SwarmRun:
    stored = store.get_weights(run.id)
    if not stored:
        raise UserError(f"run {run.id} ({run.name}): no stored weights; the database is incomplete")
    steps = sorted(stored)
    W = np.array([[stored[t].get(d, 0.0) for d in domains] for t in steps])
    try:
        mixture = mc.time_averaged_weights(steps, W, spec.training.steps)
    except ValueError as e:
        raise UserError(f"run {run.id} ({run.name}): stored weights: {e}") from None
    rows = {r.domain: r for r in store.get_domain_logliks(run.final_model_id, corpus.id)}
    missing = [d for d in domains if d not in rows]
    if missing:
        raise UserError(f"run {run.id} ({run.name}): final model {run.final_model_id} has no score on domain "
                        f"{missing[0]!r} of corpus {corpus.name}")
    ll_token = np.array([rows[d].nats_per_token for d in domains])
    bpb = np.array([-rows[d].nats_per_byte / math.log(2) for d in domains])
    sampled = last_kl(store.get_kl(run.id), SAMPLED)
    kl = sampled.bits_per_byte if sampled is not None else math.nan
    se = sampled.stderr_bits_per_byte if sampled is not None and sampled.stderr_bits_per_byte is not None else math.nan
    return SwarmRun(run.id, run.name, spec.name, spec.spec_hash, run.method, run.seed, run.tau_setting, run.git_commit,
                    corpus.content_hash, domains, mixture, ll_token, bpb, float(kl), float(se),
                    None if sampled is None else int(sampled.step))


def _csv(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:  # floats as repr: they read back bit for bit; NaN as an empty cell (pandas reads NaN)
        w.writerow(["" if isinstance(x, float) and math.isnan(x) else repr(x) if isinstance(x, float) else x for x in r])
    return buf.getvalue().encode("utf-8")


def swarm_files(runs: list[SwarmRun], specs: list[SwarmSpec], source: str) -> dict[str, bytes]:
    """The three files' bytes ({file name: content}); a UserError if there is nothing to export or the runs'
    domains differ (one table needs one set of columns)."""
    if not runs:
        names = ", ".join(s.spec.name for s in specs[:3]) + (" …" if len(specs) > 3 else "")
        raise UserError(f"{source}: no finished runs of {names} in the database (run it first: lldmix run {source})")
    domains = runs[0].domains
    other = next((r for r in runs if r.domains != domains), None)
    if other is not None:
        raise UserError(f"{source}: run {other.run_id} ({other.name}) has domains {list(other.domains)}, others "
                        f"{list(domains)}: one swarm needs one set of domains")
    ratios = _csv(["run_id", *domains], [[r.run_id, *map(float, r.mixture)] for r in runs])
    metric_cols = [c for d in domains for c in (loglik_column(d), bpb_column(d))] + [KL_COLUMN, KL_SE_COLUMN]
    metrics = _csv(["run_id", *metric_cols],
                   [[r.run_id, *[float(x) for pair in zip(r.loglik_nats_per_token, r.bits_per_byte) for x in pair],
                     r.sampled_kl_bits_per_byte, r.sampled_kl_stderr_bits_per_byte] for r in runs])
    meta = _metadata(runs, specs, source, domains)
    return {RATIOS: ratios, METRICS: metrics, METADATA: (json.dumps(meta, indent=2, allow_nan=False) + "\n").encode()}


def _metadata(runs: list[SwarmRun], specs: list[SwarmSpec], source: str, domains) -> dict:
    used = {r.spec_hash for r in runs}

    def spec_entry(s: SwarmSpec) -> dict:
        e = {"name": s.spec.name, "spec_hash": s.spec.spec_hash, "seeds": list(s.spec.seeds),
             "methods": list(s.spec.methods), "training_steps": s.spec.training.steps}
        if s.cell is not None:
            e["cell"] = s.cell
        if s.truth is not None:
            e["target_true_mixture"] = s.truth
        return e

    return {
        "format": FORMAT,
        "source": source,
        "domains": list(domains),
        "specs": [spec_entry(s) for s in specs if s.spec.spec_hash in used],
        "corpus_hashes": sorted({r.corpus_hash for r in runs}),
        "seeds": sorted({r.seed for r in runs if r.seed is not None}),
        "git_commits": sorted({r.git_commit for r in runs if r.git_commit}),
        "units": {"ratios": "share of the run's training steps (each step draws one domain); a row sums to 1",
                  "loglik": "nats/token (mean log-likelihood of the evaluation corpus's texts of the domain; ≤ 0)",
                  "bits_per_byte": "bits/byte (cross-entropy: −log-likelihood per UTF-8 byte / ln 2)",
                  "sampled_kl": "bits/byte (KL(target ‖ model) on texts drawn from the target)"},
        "columns": {
            RATIOS: {"run_id": "the run's id in lldmix's database (`runs.id`; `runs` below)",
                     "<domain>": "the run's intended weights (store weight_estimates), averaged over its training "
                                 "steps, each stored vector counted by the steps it was in force"},
            METRICS: {"run_id": "as in ratios.csv",
                      "loglik_nats_per_token/<domain>": "the final model's mean log-likelihood on the domain, nats/token",
                      "bits_per_byte/<domain>": "the final model's cross-entropy on the domain, bits/byte",
                      KL_COLUMN: "the run's last sampled KL(target ‖ model), bits/byte; empty: not measured",
                      KL_SE_COLUMN: "its standard error over the draws, bits/byte; empty: not measured"}},
        "runs": [{"run_id": r.run_id, "name": r.name, "spec": r.spec_name, "spec_hash": r.spec_hash, "method": r.method,
                  "seed": r.seed, "tau": r.tau_setting, "git_commit": r.git_commit, "corpus_hash": r.corpus_hash,
                  "sampled_kl_step": r.sampled_kl_step} for r in runs],
    }


def write_swarm(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write the files into `out_dir` (created), each atomically, metadata.json last (its presence marks a
    complete export); a folder that cannot be one is a UserError before anything is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot create the folder ({e.strerror or e})") from None
    order = [n for n in files if n != METADATA] + [METADATA]
    written = []
    for name in order:
        atomic_write_bytes(out_dir / name, files[name])
        written.append(out_dir / name)
    return written


def swarm_specs(path: Path) -> list[SwarmSpec]:
    """The specs a file names: a run spec itself, or every expanded cell of a benchmark file (with its truth)."""
    from lldmix_core.benchmark.suite import expand, is_benchmark_text, load_benchmark
    from lldmix_core.spec import load_spec

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        text = None  # load_spec names the problem
    if text is not None and is_benchmark_text(text):
        return [SwarmSpec(c.spec, c.cell, dict(c.weights)) for c in expand(load_benchmark(path))]
    spec = load_spec(path)
    return [SwarmSpec(spec)]


def export_swarm(store, path: Path, out_dir: Path) -> tuple[list[Path], list[SwarmRun]]:
    """`lldmix export-swarm PATH --out DIR`: the finished runs of PATH's specs as DIR/ratios.csv, metrics.csv and
    metadata.json. Returns (files written, runs exported)."""
    specs = swarm_specs(path)
    runs = collect_swarm(store, specs)
    files = swarm_files(runs, specs, str(path))
    return write_swarm(out_dir, files), runs
