"""Write a pass-2 benchmark file: for chosen truths of one or more cells of a finished benchmark, train
uniform, the oracle (the target's true mixture: a reference that measures the headroom), the paper's
aggregated-LLD and a fixed recipe from one estimator, and judge them by the sampled KL to the target
(paired on the same draws).

    LLDMIX_HOME=... python scripts/recovery_pass2.py --benchmark runs/recovery.yaml --cell S-r1[,CELL...] \\
        --truths dir-a2-s1,paper-x2 --estimator calibrated-auto --out runs/recovery-pass2.yaml
    lldmix run runs/recovery-pass2.yaml && lldmix results runs/recovery-pass2.yaml --out FILE

The recipe comes from the database (the estimator applied to the benchmark's stored pass 1), so the
written file says which command and which runs produced it. Targets are the benchmark's own (same
truths list, seeds and settings), found in the database rather than retrained. An estimator whose
recipe differs by seed gets one cell per (truth, seed); a base-independent one (calibrated) one per truth.
Each pass-2 cell keeps its cell's size, budget (`steps`), base and targets (`twin` targets stay twins), so
the benchmark's uniform, oracle and target models are found rather than retrained; a truth a cell does not
train is skipped for that cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from lldmix_core.benchmark.leaderboard import collect
from lldmix_core.benchmark.suite import expand, load_benchmark
from lldmix_core.config import get_settings
from lldmix_core.db.store import Store
from lldmix_core.errors import UserError
from lldmix_core.estimators import ESTIMATORS
from lldmix_core.methods import baseline_method, recipe_method
from lldmix_core.pass1 import pass1_of


def on_simplex(w: np.ndarray, domains) -> dict[str, float]:
    """Weights rounded to 6 decimals that sum to 1 exactly (the spec refuses anything else)."""
    r = np.round(np.asarray(w, dtype=np.float64), 6)
    r[np.argmax(r)] += 1.0 - r.sum()
    return {d: float(x) for d, x in zip(domains, r)}


def fixed_recipe(store, spec, pair, estimator: str) -> dict:
    """The `lld` entries of method `fixed` for one pass-1 pair: `recipe` (the estimator's mixture) or, for a
    phased estimator (two-stage), `phases` recomputed from the pair's stored pass 1."""
    est = ESTIMATORS[estimator]
    if est.phases is None:
        return {"recipe": on_simplex(pair.estimates[estimator], pair.domains)}
    p = pass1_of(store, store.get_run(pair.run_id), spec, list(pair.domains))
    return {"phases": [{"until": round(float(u), 6), "weights": on_simplex(w, pair.domains)} for u, w in est.phases(p)]}


def pass2_cells(store, cell, expanded, pairs, wanted: list[str], methods: list[str], lld: dict, a):
    """Pass-2 cells (and their provenance lines) for one cell of the benchmark: per truth of `wanted` that
    this cell trains, one cell per seed (or one for all seeds when the estimator's recipe is the same
    for every seed), keeping the cell's size, budget, base, target budget and twin targets."""
    trains = set(expanded_truths(expanded, cell.name))
    mine_truths = [t for t in wanted if t in trains]
    if not mine_truths:
        raise UserError(f"--truths: cell {cell.name} trains none of {wanted} (it trains {sorted(trains)})")
    done = [p for p in pairs if p.cell == cell.name and p.truth in mine_truths]
    missing = sorted(set(mine_truths) - {p.truth for p in done})
    if missing:
        raise UserError(f"--truths: no finished pass 1 for {missing} in cell {cell.name} of {a.benchmark}")
    cell_spec = next(c.spec for c in expanded if c.cell == cell.name and not c.is_reference)
    keep = {k: v for k, v in (("steps", cell.steps), ("twin", cell.twin or None)) if v is not None}
    cells, sources = [], []
    for t in mine_truths:
        mine = sorted((p for p in done if p.truth == t), key=lambda p: p.seed)
        est = [p.estimates[a.estimator] for p in mine]
        same = all(np.allclose(e, est[0], atol=1e-9) for e in est)
        groups = [(None, mine)] if same else [(p.seed, [p]) for p in mine]
        for seed, ps in groups:
            name = f"{cell.name}-p2-{t}" + (f"-s{seed}" if seed is not None else "")
            override = {"methods": methods,
                        "lld": {**lld, **fixed_recipe(store, cell_spec, ps[0], a.estimator)},
                        "kl": {"sampled": {"n_samples": a.n_samples, "n_tokens": a.n_tokens, "steps": "final"}}}
            cells.append({"name": name, "case": cell.case or cell.name, "size": cell.size, **keep,
                          "target_ratio": cell.target_ratio,
                          "base": cell.base, "truths": [t], "seeds": [p.seed for p in ps], "spec": override})
            sources.append(f"{name}: {a.estimator} from pass-1 run(s) {[p.run_id for p in ps]}")
    return cells, sources


def expanded_truths(expanded, cell_name: str) -> list[str]:
    """The truths a cell of the expanded benchmark trains (its `truths`, or all of them)."""
    return [c.truth for c in expanded if c.cell == cell_name and not c.is_reference]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", type=Path, required=True)
    ap.add_argument("--cell", required=True, help="a cell name, or several comma-separated")
    ap.add_argument("--truths", required=True, help="comma-separated truth names")
    ap.add_argument("--estimator", required=True, choices=sorted(ESTIMATORS))
    ap.add_argument("--methods", default="uniform,oracle,iterative-lld,aggregated-lld,fixed",
                    help="pass-2 methods (uniform is always needed: every figure is paired against it)")
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--n-tokens", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    methods = a.methods.split(",")
    if baseline_method() not in methods or recipe_method() not in methods:
        raise UserError(f"--methods {a.methods}: needs {baseline_method()} (the paired reference) and "
                        f"{recipe_method()} (the estimator's recipe)")
    b = load_benchmark(a.benchmark)
    wanted = a.truths.split(",")
    names = a.cell.split(",")
    unknown = [n for n in names if n not in {c.name for c in b.cells}]
    if unknown:
        raise UserError(f"--cell {','.join(unknown)}: not a cell of {a.benchmark} ({[c.name for c in b.cells]})")
    store = Store.open(get_settings().db_url)
    expanded = expand(b)
    pairs = collect(store, expanded)
    shared = dict(b.spec)
    lld = dict(shared.get("lld", {}))
    lld.pop("recipe", None)
    cells, sources = [], []
    for cell in (c for c in b.cells if c.name in names):
        cs, ss = pass2_cells(store, cell, expanded, pairs, wanted, methods, lld, a)
        cells += cs
        sources += ss
    out = {"benchmark": a.out.stem, "description": f"Pass 2 of {b.benchmark}, cell {a.cell}: {', '.join(methods)} "
           f"(fixed: the {a.estimator} recipe), by the sampled KL.",
           "domains": list(b.domains), "truths": [t.model_dump(mode="json", exclude_none=True) for t in b.truths],
           "sizes": {k: v.model_dump(mode="json", exclude_none=True) for k, v in b.sizes.items()},
           "bases": {k: v.model_dump(mode="json", exclude_none=True) for k, v in b.bases.items()},
           "cells": cells, "reference": False, "target_seed": b.target_seed, "spec": shared}
    header = (f"# Generated by: python scripts/recovery_pass2.py --benchmark {a.benchmark} --cell {a.cell} "
              f"--truths {a.truths} --estimator {a.estimator} --methods {a.methods} --n-samples {a.n_samples} --n-tokens {a.n_tokens} --out {a.out}\n"
              "# from the database's pass-1 runs of that benchmark; do not edit the recipes by hand.\n"
              + "".join(f"#   {s}\n" for s in sources))
    tmp = a.out.with_name(f".{a.out.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(out, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        load_benchmark(tmp)  # it validates, or this fails loudly and nothing is left at --out
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(a.out)
    print(f"wrote {a.out}: {len(cells)} cells")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
