"""Recipes: fixed domain mixtures with their provenance, downloadable in every trainer format
lldmix exports, each with the snippet that uses it."""

import streamlit as st

import ui_data as data
from lldmix_core.errors import UserError
from lldmix_core.recipes import FILE_TYPES, FORMATS, LABELS, PHASED_FORMAT, download_name, phases_of, render, usage

st.title("Recipes")
recipes = data.recipes(data.version())
if not recipes:
    st.info("No recipes yet: an aggregated-LLD run writes one.")
    st.stop()
st.caption("Each format is read back by its library in the tests (docs/RECIPES.md). Trainer formats leave "
           "out zero-weight domains; the CSV is a plain `domain,weight` table, its provenance a separate download.")
for r in recipes:
    with st.expander(f"{r['name']} — {r['method']}", expanded=len(recipes) <= 3):
        st.dataframe([{"domain": d, "weight": w} for d, w in r["weights"].items()], hide_index=True)
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
