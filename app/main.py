"""The lldmix dashboard: `lldmix app` serves it on 127.0.0.1:8501.

It reads the SQL database through the store and enqueues runs in the `jobs` table; a separate
`lldmix worker` process executes them. It never imports torch or the engine, so pages load fast.
"""

import streamlit as st

st.set_page_config(page_title="lldmix", page_icon=":material/science:", layout="wide")

pages = [
    st.Page("views/runs.py", title="Runs", icon=":material/list_alt:", default=True),
    st.Page("views/new_run.py", title="New run", icon=":material/play_circle:"),
    st.Page("views/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("views/model_map.py", title="Model map", icon=":material/scatter_plot:"),
    st.Page("views/recipes.py", title="Recipes", icon=":material/download:"),
    st.Page("views/benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
]
st.navigation(pages).run()
