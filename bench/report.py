"""Regenerate docs/BENCHMARKS.md: run bench/score.py and bench/gram.py once and write their tables, with
the machine, versions, date and load, in place of the old Scoring and Gram sections.

    python bench/report.py [--quick] [--allow-busy] [--out FILE]   (from the repository root; bench/run_all.sh
                                                                   does the same)

Sections of other benchmarks (first-pass overhead, training step, model map) are carried over as they
are, with the date they were measured; re-run their own commands to refresh them. `--quick` runs a
small configuration (2 repeats, 1 text per domain, 2 × 128) for trying the pipeline; the document then
says so.

Quiet cores: the 1-minute load average is taken before and after. Above 1.5 per core (bench/timing.py
`load_gate`) the figures are noise-bound, and docs/BENCHMARKS.md is not written (exit status 2; the
document goes to the bench log folder instead) unless `--allow-busy` is given, in which case the document
says, beside the figures, that they were taken on busy cores. A busy start is refused before anything is
measured. `--out FILE` writes elsewhere, at any load (the load is still recorded in it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from timing import LoadGate, load_gate, load_now  # noqa: E402

DOC = ROOT / "docs" / "BENCHMARKS.md"
OURS = ("Scoring (`bench/score.py`)", "Gram matrix (`bench/gram.py`)")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(script: str, args: list[str], out: Path) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "2"}
    log = out.with_suffix(".log")
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--markdown", str(out)],
                              cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"report: bench/{script} failed (exit {proc.returncode}); see {log}")
    return out.read_text().strip()


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for each `## ` section of the old document."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts), 2)]


CARRIED = "_Carried over from an earlier run of its own command (not re-run by bench/report.py)._"
SUMMARY = "Summary of the carried-over benchmarks"


def carried_sections(old: str) -> list[tuple[str, str]]:
    """The old document's sections that this run does not regenerate, as (heading, body), each body
    without its carried-over marker (written again once, not once per regeneration); the summary table
    first (from its own section, or from the preamble of older documents), less any score.py/gram.py rows."""
    def unmarked(body: str) -> str:
        return "\n".join(line for line in body.splitlines() if line.strip() != CARRIED).strip()

    sections = _sections(old)
    kept = [(h, unmarked(b)) for h, b in sections if h not in OURS and h != SUMMARY]
    preamble = re.split(r"^## ", old, maxsplit=1, flags=re.M)[0]
    summary = "\n".join([preamble, *(b for h, b in sections if h == SUMMARY)])
    rows = [r for r in summary.splitlines() if r.startswith("|") and "score.py" not in r and "gram.py" not in r]
    if len(rows) > 2:  # header, rule and at least one benchmark row
        kept.insert(0, (SUMMARY, "\n".join(rows)))
    return kept


def write_allowed(gate: LoadGate, out: Path, doc: Path = DOC) -> bool:
    """May the document go to `out`? Anywhere but docs/BENCHMARKS.md always; there only when the
    load gate passed (quiet cores, or busy ones with --allow-busy)."""
    return gate.ok or out.resolve() != doc.resolve()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--allow-busy", action="store_true",
                    help="write docs/BENCHMARKS.md even above a load of 1.5 per core (the document says so)")
    ap.add_argument("--out", type=Path, default=DOC, help="where to write the document (default docs/BENCHMARKS.md)")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    load_start = load_now()
    early = load_gate(load_start, load_start, cpus, allow_busy=args.allow_busy)
    if not write_allowed(early, args.out):
        print(f"report: 1-minute load average {load_start[0]:.2f} at the start on {cpus} CPUs ({early.per_core_before:.2f} "
              f"per core, limit {early.limit:g}): not measuring, docs/BENCHMARKS.md would be refused. Rerun on quiet "
              "cores, or pass --allow-busy (the document then says so) or --out FILE.", file=sys.stderr)
        sys.exit(2)
    tmp = Path(tempfile.mkdtemp(prefix="lldmix-bench-"))
    score_args = ["--per-domain", "1", "--repeats", "2", "--layers", "2", "--dims", "128"] if args.quick else []
    gram_args = ["--dims-sketch", "64", "1024"] if args.quick else []
    score = _run("score.py", score_args, tmp / "score.md")
    gram = _run("gram.py", gram_args, tmp / "gram.md")
    gate = load_gate(load_start, load_now(), cpus, allow_busy=args.allow_busy)
    old = DOC.read_text() if DOC.exists() else ""
    kept = carried_sections(old)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "lm_eval", "numpy"))
    out = [
        "# Benchmarks",
        "",
        f"Generated by `python bench/report.py{' --quick' if args.quick else ''}` on {now}: {_cpu()}, "
        f"{cpus} CPUs, Python {platform.python_version()}, {versions}. Timings are interleaved, medians are "
        "reported with their spread, and ratios compare peers measured in the same rounds, with the range of "
        "their per-round values." + (" **Quick configuration: not the reference figures.**" if args.quick else ""),
        "",
        gate.note,
        "",
        "## Scoring (`bench/score.py`)",
        "",
        "lldmix's scorer against the tools a user would otherwise use, on the same texts and the same weights, in one run.",
        "",
        score,
        "",
        "## Gram matrix (`bench/gram.py`)",
        "",
        "What matters is the adjusted-LLD weights, so the sketch is judged by how far it moves them (total-variation "
        "distance: the fraction of the mixture that changes domain).",
        "",
        gram,
    ]
    for heading, body in kept:
        out += ["", f"## {heading}", "", CARRIED, "", body]
    text = "\n".join(out).rstrip() + "\n"
    if not write_allowed(gate, args.out):
        (tmp / "BENCHMARKS.md").write_text(text)
        print(f"report: {gate.note} docs/BENCHMARKS.md left as it was; the document is in {tmp / 'BENCHMARKS.md'}")
        sys.exit(2)
    args.out.write_text(text)
    print(f"report: wrote {args.out} (bench logs in {tmp})")


if __name__ == "__main__":
    main()
