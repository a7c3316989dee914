"""New run: build a spec from the models in the database (validated like runs/*.yaml) and queue it."""

from pathlib import Path

import numpy as np
import streamlit as st
import yaml

import ui_data as data
from lldmix_core import mathcore as mc
from lldmix_core.enqueue import enqueue_spec
from lldmix_core.errors import UserError
from lldmix_core.integrations.real_pair_spec import is_real_pair_text
from lldmix_core.methods import METHODS, ordered
from lldmix_core.spec import RunSpec, load_spec_text, parse_spec
from ui_worker import ensure_worker

st.title("New run")
RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"


def start(spec_yaml: str) -> None:
    try:
        job = enqueue_spec(data.store(), spec_yaml)  # the CLI's path: validation, plausibility, identity
        spec = load_spec_text(spec_yaml, "spec")
        pid = ensure_worker()
    except UserError as e:
        st.error(str(e))
        return
    st.success(f"Queued job {job} ({spec.name}); worker pid {pid}. Follow it on the Runs page.")


def parse_multipliers(text: str, domains: list[str]) -> tuple[dict[str, float], str | None]:
    """`domain=factor, domain=factor` → ({domain: factor}, None), or ({}, a one-line error)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.count("=") != 1:
            return {}, f"Domain multipliers: `{part}` is not `domain=factor` (separate pairs with commas)"
        k, val = (x.strip() for x in part.split("="))
        if k not in domains:
            return {}, f"Domain multipliers: unknown domain `{k}`; the corpus has {', '.join(domains)}"
        try:
            out[k] = float(val)
        except ValueError:
            return {}, f"Domain multipliers: `{val}` (for {k}) is not a number"
        if not out[k] > 0:
            return {}, f"Domain multipliers: the factor for {k} must be > 0"
    return out, None


def parse_seeds(text: str) -> tuple[list[int], str | None]:
    """`0, 1, 2` → ([0, 1, 2], None); anything that is not an integer is an error, not dropped."""
    parts = [p.strip() for p in text.split(",")]
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if bad or not parts:
        return [], f"Seeds: {', '.join(repr(b) for b in bad) or 'nothing'} is not an integer (write e.g. `0, 1, 2`)"
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        return [], "Seeds: each seed once"
    return seeds, None


def provenance(row) -> str:
    """A model's provenance on one line: kind, source, size, tokenizer."""
    size = f"{int(row['n_params']):,} parameters" if row["n_params"] == row["n_params"] and row["n_params"] else "size unknown"
    return f"{row['kind']} · {row['source']} · {size} · tokenizer {row['tokenizer']}"


def separation_warnings(steps: int, multipliers: dict[str, float], domains: list[str]) -> list[str]:
    """Why this run may not separate the methods (the trainer draws ONE domain per step, from a generator
    shared by the methods, so mixtures close to uniform draw the same domains)."""
    out = []
    need = 10 * len(domains)
    if domains and steps < need:
        out.append(f"Too short: {steps} steps draw each of the {len(domains)} domains about {steps / len(domains):.1f} "
                   f"times (one domain per step); methods separate only with ≥ 10 draws per domain, i.e. ≥ {need} "
                   f"steps. The LLD schedule here re-weights at steps {mc.lld_schedule(steps)}.")
    if multipliers is not None and domains:
        w = np.array([multipliers.get(d, 1.0) for d in domains], float)
        tv = 0.5 * np.abs(w / w.sum() - 1 / len(w)).sum()
        if steps * tv < 10:
            out.append(f"Too close to uniform: the target's mixture is {tv:.3f} (total variation) from uniform, so over "
                       f"{steps} single-domain draws only about {steps * tv:.1f} draws differ; runs need ≥ 10 such "
                       "draws to separate methods. Raise the multipliers or the steps.")
    return out


tab_build, tab_file = st.tabs(["Build a spec", "From a spec file"])

with tab_build:
    v = data.version()
    models = data.models(v)
    finished = models[models["step"].isna()] if not models.empty else models
    domains = data.known_domains(v)
    errors: list[str] = []
    c1, c2 = st.columns(2)
    name = c1.text_input("Name", value="dashboard-run", help="Letters, digits, '.', '_' and '-'.")
    target_mode = c2.radio("Target", ["train a target with weights", "a model in the database"], horizontal=True)
    multipliers: dict[str, float] | None = None
    if target_mode == "a model in the database" and not finished.empty:
        target_id = c2.selectbox("Target model", list(finished["id"]), format_func=lambda i: finished.set_index("id").loc[i, "name"])
        c2.caption("Provenance: " + provenance(finished.set_index("id").loc[target_id]))
        target = {"model": finished.set_index("id").loc[target_id, "name"]}
    else:
        mult = c2.text_input("Domain multipliers (domain=factor, …)", value="Python=2, C++=2",
                             help="The target is trained with uniform weights times these factors (the paper's "
                                  "CodeNanoGPT idea). Domains: " + ", ".join(domains))
        c2.caption("Domains of the corpus: " + ", ".join(f"`{d}`" for d in domains))
        target_steps = c2.number_input("Target training steps", 10, 1_000_000, 30)
        multipliers, err = parse_multipliers(mult, domains)
        if err:
            errors.append(err)
        target = {"train": {"steps": int(target_steps), "seed": 1234, "multipliers": multipliers}}
    base_mode = c1.radio("Base", ["random NanoGPT per seed", "a model in the database"], horizontal=True)
    base = {"init": "random"}
    if base_mode == "a model in the database" and not finished.empty:
        base_id = c1.selectbox("Base model", list(finished["id"]), format_func=lambda i: finished.set_index("id").loc[i, "name"])
        c1.caption("Provenance: " + provenance(finished.set_index("id").loc[base_id]))
        base = {"model": finished.set_index("id").loc[base_id, "name"]}
    methods = c1.multiselect("Methods", ordered(METHODS),
                             default=list(RunSpec.model_fields["methods"].default))
    auto = c1.checkbox("τ = auto (the spread of Δ)", value=False)
    tau = "auto" if auto else c1.number_input("τ (temperature)", min_value=1e-4, value=1.0, format="%.4f")
    steps = c1.number_input("Training steps per run", 1, 1_000_000, 20)
    seed_list, err = parse_seeds(c1.text_input("Seeds (comma-separated)", value="0"))
    if err:
        errors.append(err)
    size = c2.selectbox("Model size", ["smoke: 1 layer × 32, context 64", "paper-2x128: 2 layers × 128, context 256"])
    arch = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64} if size.startswith("smoke") else \
        {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 256}
    per_domain = c2.number_input("Evaluation texts per domain", 1, 10_000, 4)
    smoke = size.startswith("smoke")
    n_draws = c2.number_input("Sampled KL: texts drawn from the target (0: off)", 0, 100_000, 64 if smoke else 256,
                              help="KL(target ‖ model) is estimated on these draws, the same for every run of a seed; "
                                   "each draw is one context window long.")
    raw = {
        "name": name, "seeds": seed_list or [0],
        "tokenizer": "bytes", "corpus": {"local": True, "eval_per_domain": int(per_domain)}, "arch": arch,
        "target": target, "base": base,
        "training": {"steps": int(steps), "batch_size": 4 if size.startswith("smoke") else 16,
                     "warmup_steps": max(1, int(steps) // 10), "checkpoint_every": max(1, int(steps) // 2)},
        "methods": methods, "lld": {"tau": tau},
        "kl": {"sampled": {"n_samples": int(n_draws), "n_tokens": arch["block_size"]}},
    }
    try:
        spec = parse_spec(raw, "new run")
        spec_yaml = spec.to_yaml()
    except UserError as e:
        errors.append(str(e))
        spec_yaml = yaml.safe_dump(raw, sort_keys=False)
    for e in errors:
        st.error(e)
    valid = not errors
    for w in separation_warnings(int(steps), multipliers, domains):
        st.warning(w)
    if st.toggle("Show as YAML", help="Save this as runs/<name>.yaml to run it with `lldmix run`."):
        st.code(spec_yaml, language="yaml")
    if st.button("Start", type="primary", disabled=not valid, key="start-built"):
        start(spec_yaml)

with tab_file:
    files = sorted(p.name for p in RUNS_DIR.glob("*.yaml") if p.name not in data.benchmark_files()  # specs only:
                   and not is_real_pair_text(p.read_text(encoding="utf-8")))  # a real pair runs from the CLI
    chosen = st.selectbox("Spec in runs/", files, index=files.index("smoke.yaml") if "smoke.yaml" in files else 0)
    text = (RUNS_DIR / chosen).read_text(encoding="utf-8") if chosen else ""
    st.code(text, language="yaml")
    if st.button("Start", type="primary", key="start-file"):
        start(text)
