"""Recipes: fixed domain mixtures with their provenance, downloadable in every trainer format
lldmix exports, each with the snippet that uses it."""

import streamlit as st

import ui_data as data
from lldmix_core.errors import UserError
from lldmix_core.repetition import format_cap, with_repetition
from lldmix_core.recipes import FILE_TYPES, FORMATS, LABELS, PHASED_FORMAT, download_name, phases_of, render, usage

st.title("Recipes")


def from_models() -> None:
    """`lldmix recipe from-models` on the page: softmax((ℓ_target − ℓ_base)/τ) from two registered models'
    stored scores (the page never loads a model: an unscored model is told the command that scores it)."""
    v = data.version()
    models, corpora = data.models(v), data.corpora(v)
    with st.expander("New recipe from two registered models", expanded=False):
        if len(models) < 2 or corpora.empty:
            st.caption("Needs two registered models and an evaluation corpus (`lldmix model add`, `lldmix corpus build-local`).")
            return
        names = models["name"].tolist()
        c1, c2, c3 = st.columns(3)
        base = c1.selectbox("Base", names, index=0, key="fm-base")
        target = c2.selectbox("Target", names, index=1, key="fm-target")
        corpus = c3.selectbox("Corpus", corpora["name"].tolist(), key="fm-corpus")
        c4, c5, c6 = st.columns(3)
        tau = c4.text_input("τ (a number > 0, auto or inf)", "1.0", key="fm-tau")
        unit = c5.radio("Unit of Δ", ["token", "byte"], horizontal=True, key="fm-unit",
                        help="nats/token (the paper's) or nats/byte (required when the tokenizers differ)")
        name = c6.text_input("Recipe name (optional)", "", key="fm-name")
        if not st.button("Compute recipe", key="fm-go"):
            return
        from lldmix_core.config import get_settings
        from lldmix_core.errors import UserError
        from lldmix_core.oneshot import EXPERIMENT, parse_tau, recipe_from_models
        from lldmix_core.tracking import make_tracker

        s = get_settings()
        try:
            r = recipe_from_models(data.store(), base, target, corpus, tau=parse_tau(tau), unit=unit, name=name or None,
                                   checkpoints_dir=s.checkpoints_dir, score_missing=False,
                                   tracker=make_tracker(True, s.mlflow_uri, EXPERIMENT, s.mlflow_artifact_root))
        except UserError as e:
            st.error(str(e))
            return
        st.success(f"recipe {r.name!r} " + ("stored" if r.stored_new else "already stored, unchanged")
                   + (f" (MLflow run {r.mlflow_run_id})" if r.mlflow_run_id else ""))
        u = "nats/token" if r.unit == "token" else "nats/byte"
        st.dataframe([{"domain": d, f"ℓ base ({u})": r.base_ll[k], f"ℓ target ({u})": r.target_ll[k],
                       f"Δ ({u})": r.delta[k], "weight": r.weights[k]} for k, d in enumerate(r.domains)], hide_index=True)
        st.caption(f"τ = {r.tau:.4g} {u}" + (" (auto: the spread of Δ)" if r.tau_setting == "auto" else ""))


from_models()
recipes = data.recipes(data.version())
if not recipes:
    st.info("No recipes yet: an aggregated-LLD run writes one, and so does the form above.")
    st.stop()
st.caption("Each format is read back by its library in the tests (docs/RECIPES.md). Trainer formats leave "
           "out zero-weight domains; the CSV is a plain `domain,weight` table, its provenance a separate download.")
for r in recipes:
    with st.expander(f"{r['name']} — {r['method']}", expanded=len(recipes) <= 3):
        try:  # implied epochs at the run's stored budget (aggregated recipes store it and the unique tokens)
            accounted, _ = with_repetition(r)
        except UserError:
            accounted = r
        rep = accounted["provenance"].get("repetition") or {}
        st.dataframe([{"domain": d, "weight": w, **({"epochs at the run's budget": round(rep["epochs"][d], 3),
                                                      "unique tokens": rep["unique_tokens"].get(d)} if rep else {})}
                      for d, w in r["weights"].items()], hide_index=True)
        if rep.get("warning"):
            st.warning(rep["warning"])
        if (r["provenance"] or {}).get("epoch_cap"):
            st.info(format_cap(r["provenance"]["epoch_cap"]))
        if phases_of(r):  # a two-stage recipe trains phase by phase; the weights above are its summary
            st.caption("Phased recipe: pass 2 trained these phases in turn (until = fraction of the run).")
            st.dataframe([{"until": p["until"], **p["weights"]} for p in phases_of(r)], hide_index=True)
            st.download_button("Download phases (JSON)", render(r, PHASED_FORMAT),
                               file_name=download_name(r, PHASED_FORMAT), mime=FILE_TYPES[PHASED_FORMAT][1],
                               key=f"dl-{r['id']}-{PHASED_FORMAT}")
        st.json(r["provenance"], expanded=False)
        for fmt, tab in zip(FORMATS, st.tabs([LABELS[f] for f in FORMATS])):
            with tab:
                try:
                    body = render(r, fmt)
                except UserError as e:  # e.g. two domains share a trainer's data folder name: say so, in one line
                    st.error(str(e))
                    continue
                lang, code = usage(r, fmt)
                st.code(code, language=lang)
                st.download_button(f"Download {LABELS[fmt]}", body, file_name=download_name(r, fmt),
                                   mime=FILE_TYPES[fmt][1], key=f"dl-{r['id']}-{fmt}")
