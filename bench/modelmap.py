"""The model map at scale: 1,000 models × 10,000 texts of synthetic log-likelihood vectors.

    python bench/modelmap.py [--models 1000] [--texts 10000] [--url sqlite:///...|postgresql://...]

Times: inserting every vector through the store (one transaction each, as scoring does), loading the
whole matrix back, and computing all pairwise KLs. Targets on SQLite: ≤ 30 s, ≤ 1 s, ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.db.engine import upgrade
from lldmix_core.db.store import Store
from timing import load  # noqa: E402  (bench/ is on sys.path when run as a script)


def main() -> None:
    load_before = os.getloadavg()  # figures taken on busy cores are noise-bound: say the load
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--texts", type=int, default=10000)
    ap.add_argument("--url", default=None)
    args = ap.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'map.db'}"
    upgrade(url)
    st = Store.open(url)
    rng = np.random.default_rng(0)
    domains = [f"d{k:02d}" for k in range(17)]
    texts = [f"text {i}" for i in range(args.texts)]
    cid = st.save_corpus(name="bench", content_hash=f"{rng.integers(1 << 62):064x}", source="synthetic", settings={},
                         texts=texts, domains=[domains[i % 17] for i in range(args.texts)])
    base = rng.normal(-400, 60, size=args.texts)
    t0 = time.perf_counter()
    for m in range(args.models):
        mid = st.register_model(name=f"m{m}", kind="nanogpt", source="synthetic", tokenizer="gpt2", tokenizer_hash="t",
                                n_params=1, fingerprint=f"{m:064x}", config={})
        ll = base + rng.normal(0, 5, size=args.texts)
        st.save_scores(model_id=mid, corpus_id=cid, tokenizer_hash="t", logliks=ll, n_tokens=np.full(args.texts, 100))
    t_insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, L = st.loglik_matrix(cid)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    K = mc.kl_matrix(L)
    t_kl = time.perf_counter() - t0
    print(f"{args.models} models × {args.texts} texts on {url.split(':')[0]}")
    print(f"insert (store.save_scores, one transaction per model): {t_insert:7.2f} s (target ≤ 30 s)")
    print(f"load the matrix (store.loglik_matrix):                 {t_load:7.2f} s (target ≤ 1 s)")
    print(f"all pairwise KLs (mathcore.kl_matrix, {K.shape[0]}²):        {t_kl:7.2f} s (target ≤ 2 s)")
    print(load(load_before))


if __name__ == "__main__":
    main()
