"""New run: build a spec from the models in the database (validated like runs/*.yaml) and queue it."""

from pathlib import Path

import streamlit as st
import yaml

import ui_data as data
from lldmix_core.errors import UserError
from lldmix_core.methods import METHODS, ordered
from lldmix_core.spec import RunSpec, load_spec_text, parse_spec
from ui_worker import ensure_worker

st.title("New run")
RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"


def start(spec_yaml: str) -> None:
    try:
        spec = load_spec_text(spec_yaml, "spec")
        job = data.store().enqueue(name=spec.name, spec_yaml=spec_yaml, spec_hash=spec.spec_hash)
        pid = ensure_worker()
    except UserError as e:
        st.error(str(e))
        return
    st.success(f"Queued job {job} ({spec.name}); worker pid {pid}. Follow it on the Runs page.")


tab_build, tab_file = st.tabs(["Build a spec", "From a spec file"])

with tab_build:
    models = data.models(data.version())
    finished = models[models["step"].isna()] if not models.empty else models
    c1, c2 = st.columns(2)
    name = c1.text_input("Name", value="dashboard-run", help="Letters, digits, '.', '_' and '-'.")
    target_mode = c2.radio("Target", ["train a target with weights", "a model in the database"], horizontal=True)
    if target_mode == "a model in the database" and not finished.empty:
        target_name = c2.selectbox("Target model", list(finished["name"]))
        target = {"model": target_name}
    else:
        mult = c2.text_input("Domain multipliers (domain=factor, …)", value="Python=2, C++=2",
                             help="The target is trained with uniform weights times these factors (the paper's CodeNanoGPT idea).")
        target_steps = c2.number_input("Target training steps", 10, 1_000_000, 30)
        try:
            multipliers = {k.strip(): float(v) for k, v in (p.split("=") for p in mult.split(",") if p.strip())}
        except ValueError:
            st.error("Domain multipliers: write them as `domain=factor, domain=factor`")
            multipliers = {}
        target = {"train": {"steps": int(target_steps), "seed": 1234, "multipliers": multipliers}}
    base_mode = c1.radio("Base", ["random NanoGPT per seed", "a model in the database"], horizontal=True)
    base = {"init": "random"}
    if base_mode == "a model in the database" and not finished.empty:
        base = {"model": c1.selectbox("Base model", list(finished["name"]))}
    methods = c1.multiselect("Methods", ordered(METHODS),
                             default=list(RunSpec.model_fields["methods"].default))
    auto = c1.checkbox("τ = auto (the spread of Δ)", value=False)
    tau = "auto" if auto else c1.number_input("τ (temperature)", min_value=1e-4, value=1.0, format="%.4f")
    steps = c1.number_input("Training steps per run", 1, 1_000_000, 20)
    seeds = c1.text_input("Seeds (comma-separated)", value="0")
    size = c2.selectbox("Model size", ["smoke: 1 layer × 32, context 64", "quickstart: 2 layers × 128, context 256"])
    arch = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64} if size.startswith("smoke") else \
        {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 256}
    per_domain = c2.number_input("Evaluation texts per domain", 1, 10_000, 4)
    raw = {
        "name": name, "seeds": [int(s) for s in seeds.split(",") if s.strip().lstrip("-").isdigit()] or [0],
        "tokenizer": "bytes", "corpus": {"local": True, "eval_per_domain": int(per_domain)}, "arch": arch,
        "target": target, "base": base,
        "training": {"steps": int(steps), "batch_size": 4 if size.startswith("smoke") else 16,
                     "warmup_steps": max(1, int(steps) // 10), "checkpoint_every": max(1, int(steps) // 2)},
        "methods": methods, "lld": {"tau": tau},
    }
    try:
        spec = parse_spec(raw, "new run")
        spec_yaml = spec.to_yaml()
        valid = True
    except UserError as e:
        st.error(str(e))
        spec_yaml, valid = yaml.safe_dump(raw, sort_keys=False), False
    if st.toggle("Show as YAML", help="Save this as runs/<name>.yaml to run it with `lldmix run`."):
        st.code(spec_yaml, language="yaml")
    if st.button("Start", type="primary", disabled=not valid, key="start-built"):
        start(spec_yaml)

with tab_file:
    files = sorted(p.name for p in RUNS_DIR.glob("*.yaml"))
    chosen = st.selectbox("Spec in runs/", files, index=files.index("smoke.yaml") if "smoke.yaml" in files else 0)
    text = (RUNS_DIR / chosen).read_text(encoding="utf-8") if chosen else ""
    st.code(text, language="yaml")
    if st.button("Start", type="primary", key="start-file"):
        start(text)
