"""Known mixtures as data (issue 25 item 4): the YAML mixture file round-trips, bad files are one-line errors
naming the file and the field, and specs and benchmark truths load their mixtures from such a file with the
same hashes as the same weights written inline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from lldmix_core.errors import UserError
from lldmix_core.mixture_file import Mixture, load_mixture, mixture_text, write_mixture

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("C++", "Cython", "JSON", "Legal", "Markdown", "Math", "PyDocs", "Python", "READMEs")


def _write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


GOOD = {"schema_version": 1, "name": "code-x2", "unit": "percent",
        "weights": {"Python": 20, "C++": 20, "JSON": 10, "Legal": 10, "Markdown": 10, "Math": 10, "PyDocs": 5,
                    "Cython": 5, "READMEs": 10},
        "description": "code domains doubled", "source": "made up for this test"}


@pytest.mark.parametrize("unit,weights", [
    ("fraction", {"Python": 0.1, "C++": 0.2, "JSON": 0.7}),  # 0.1 + 0.2 is not 0.3 in floating point: exact repr
    ("percent", {"Python": 33.3, "C++": 33.3, "JSON": 33.4}),
])
def test_a_mixture_round_trips_through_its_file(tmp_path, unit, weights):
    # mutation tried: mixture_text dropping `description` -> the read-back differs and this fails
    m = Mixture("mix-1", unit, weights, description="a test mixture", source="test")
    p = write_mixture(tmp_path / "m.yaml", m)
    back = load_mixture(p)
    assert back == m
    assert back.weights == weights  # every float bit for bit
    assert [x.name for x in tmp_path.iterdir()] == ["m.yaml"]  # the temp file was renamed, nothing else left
    write_mixture(tmp_path / "again.yaml", back)
    assert (tmp_path / "again.yaml").read_bytes() == p.read_bytes()  # a second round trip writes the same bytes


def test_percent_and_fraction_files_give_the_same_shares(tmp_path):
    # independent expectation: a percentage is a hundredth of a fraction
    # mutation tried: `fractions` not dividing by the sum (percentages passed through) -> fails
    pct = load_mixture(_write(tmp_path / "p.yaml", GOOD))
    frac = load_mixture(_write(tmp_path / "f.yaml", {**GOOD, "unit": "fraction",
                                                      "weights": {d: w / 100 for d, w in GOOD["weights"].items()}}))
    assert pct.fractions == pytest.approx(frac.fractions, abs=1e-15)
    assert pct.fractions["Python"] == pytest.approx(0.2, abs=1e-15)
    assert sum(pct.fractions.values()) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("edit,field", [
    (lambda d: {**d, "colour": "red"}, "colour"),
    (lambda d: {k: v for k, v in d.items() if k != "name"}, "name"),
    (lambda d: {**d, "schema_version": 2}, "schema_version"),
    (lambda d: {**d, "unit": "permille"}, "unit"),
    (lambda d: {**d, "name": "has space"}, "name"),
    (lambda d: {**d, "weights": {**d["weights"], "Python": -20, "C++": 60}}, "weights.Python"),
    (lambda d: {**d, "weights": {**d["weights"], "Python": float("nan")}}, "weights.Python"),
    (lambda d: {**d, "weights": {**d["weights"], "Python": float("inf")}}, "weights.Python"),
    (lambda d: {**d, "weights": {**d["weights"], "Python": "twenty"}}, "weights.Python"),
    (lambda d: {**d, "weights": {**d["weights"], "Python": 19}}, "percentages sum to 99"),
    (lambda d: {**d, "unit": "fraction"}, "fractions sum to 100"),
    (lambda d: {**d, "weights": {}}, "weights"),
    (lambda d: {**d, "description": 3}, "description"),
])
def test_a_bad_mixture_file_is_one_line_naming_file_and_field(tmp_path, edit, field):
    # mutation tried: dropping the sum check -> the two "sum to" cases pass silently and fail here
    p = _write(tmp_path / "bad.yaml", edit(GOOD))
    with pytest.raises(UserError) as e:
        load_mixture(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and field in msg, msg


def test_a_domain_listed_twice_is_refused_with_its_line(tmp_path):
    p = _write(tmp_path / "dup.yaml", "schema_version: 1\nname: d\nunit: fraction\nweights:\n  Python: 0.5\n  Python: 0.5\n")
    with pytest.raises(UserError, match=r"dup\.yaml: line 6: .*'Python' given twice"):
        load_mixture(p)


def test_sums_are_checked_within_one_millionth(tmp_path):
    # boundary of the documented tolerance (1e-6 of the total): 1 + 5e-7 passes, 1 + 2e-6 does not
    ok = {**GOOD, "unit": "fraction", "weights": {"Python": 0.5, "JSON": 0.5 + 5e-7}}
    assert load_mixture(_write(tmp_path / "ok.yaml", ok)).weights["JSON"] == 0.5 + 5e-7
    bad = {**ok, "weights": {"Python": 0.5, "JSON": 0.5 + 2e-6}}
    with pytest.raises(UserError, match="fractions sum to"):
        load_mixture(_write(tmp_path / "bad.yaml", bad))
    pct = {**GOOD, "weights": {"Python": 50, "JSON": 50 + 5e-5}}  # 5e-7 of 100
    assert load_mixture(_write(tmp_path / "pct.yaml", pct)).unit == "percent"


def test_writing_an_invalid_mixture_writes_nothing(tmp_path):
    with pytest.raises(UserError, match="weights.Python"):
        write_mixture(tmp_path / "m.yaml", Mixture("m", "fraction", {"Python": -0.5, "JSON": 1.5}))
    assert list(tmp_path.iterdir()) == []


def test_the_file_is_the_documented_yaml():
    text = mixture_text(Mixture("m", "fraction", {"Python": 0.25, "JSON": 0.75}))
    assert yaml.safe_load(text) == {"schema_version": 1, "name": "m", "unit": "fraction",
                                    "weights": {"Python": 0.25, "JSON": 0.75}}


# ---------------------------------------------------------------- specs and benchmark truths

SPEC = """name: mf
seeds: [0]
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
training: {steps: 4}
methods: [uniform]
target:
  train:
    steps: 8
"""


def test_a_target_mixture_file_gives_the_spec_the_inline_weights_and_their_hash(tmp_path, monkeypatch):
    """The file's path is relative to the spec's folder, and the spec holds the file's fractions: the same
    hash as the same weights inline. Mutation tried: resolving the path from the current folder -> fails
    (the test runs elsewhere)."""
    from lldmix_core.spec import load_spec

    folder = tmp_path / "specs"
    (folder / "mixtures").mkdir(parents=True)
    _write(folder / "mixtures" / "m.yaml", GOOD)
    from_file = load_spec(_write(folder / "a.yaml", SPEC + "    mixture_file: mixtures/m.yaml\n"))
    inline = SPEC + "    weights: {" + ", ".join(f"{d!r}: {w / 100!r}" for d, w in GOOD["weights"].items()) + "}\n"
    monkeypatch.chdir(tmp_path)
    assert from_file.target.train.weights == pytest.approx({d: w / 100 for d, w in GOOD["weights"].items()}, abs=1e-15)
    assert load_spec(_write(folder / "b.yaml", inline)).spec_hash == from_file.spec_hash


def test_a_target_mixture_file_beside_weights_or_broken_is_one_line(tmp_path):
    from lldmix_core.spec import load_spec

    _write(tmp_path / "m.yaml", GOOD)
    with pytest.raises(UserError, match=r"both\.yaml: target\.train: give mixture_file or weights, not both"):
        load_spec(_write(tmp_path / "both.yaml", SPEC + "    mixture_file: m.yaml\n    weights: {Python: 1.0}\n"))
    with pytest.raises(UserError, match=r"gone\.yaml: target\.train: mixture_file: mixture file .*nope\.yaml does not exist"):
        load_spec(_write(tmp_path / "gone.yaml", SPEC + "    mixture_file: nope.yaml\n"))
    _write(tmp_path / "neg.yaml", {**GOOD, "weights": {"Python": -1, "JSON": 101}})
    with pytest.raises(UserError, match=r"s\.yaml: target\.train: mixture_file: .*neg\.yaml: weights\.Python"):
        load_spec(_write(tmp_path / "s.yaml", SPEC + "    mixture_file: neg.yaml\n"))


def test_a_benchmark_truth_loads_from_a_mixture_file_with_unchanged_hashes(tmp_path):
    """A truth given as a mixture file expands into the same specs (same hashes) as the same truth written
    inline; and the shipped benchmark files expand to the hashes they had before mixture files existed
    (computed at commit a3d8557). Mutation tried: validating the benchmark without its folder as the
    base of relative paths -> the mixture file is not found and this fails."""
    from lldmix_core.benchmark.suite import expand, load_benchmark

    def cells_hash(path):
        return hashlib.sha256(" ".join(c.spec.spec_hash for c in expand(load_benchmark(path))).encode()).hexdigest()

    assert cells_hash(ROOT / "runs/recovery-smoke.yaml") == "62d490ab87e9bbcfe0e403ffc4a0e6891042a9403563b5a38ee93d8611c29da3"
    assert cells_hash(ROOT / "runs/recovery.yaml") == "e77ed8a31a3b60073008b486774ed48ad3cc0c5611265ab17d542e9d6e2e3f5a"

    text = (ROOT / "runs/recovery-smoke.yaml").read_text(encoding="utf-8")
    inline = text.replace("  - {name: dir-a2-s1, dirichlet: {concentration: 2.0, seed: 1}}",
                          "  - {name: dir-a2-s1, weights: {" + ", ".join(f"{d!r}: {w / 100!r}" for d, w in GOOD["weights"].items()) + "}}")
    from_file = text.replace("  - {name: dir-a2-s1, dirichlet: {concentration: 2.0, seed: 1}}",
                             "  - {name: dir-a2-s1, mixture_file: truths/code.yaml}")
    assert inline != text and from_file != text
    (tmp_path / "truths").mkdir()
    _write(tmp_path / "truths" / "code.yaml", GOOD)
    a = expand(load_benchmark(_write(tmp_path / "inline.yaml", inline)))
    b = expand(load_benchmark(_write(tmp_path / "file.yaml", from_file)))
    assert [c.spec.spec_hash for c in a] == [c.spec.spec_hash for c in b]
    truth = next(c for c in b if c.truth == "dir-a2-s1")
    assert truth.weights["Python"] == pytest.approx(0.2, abs=1e-6) and truth.weights["PyDocs"] == pytest.approx(0.05, abs=1e-6)
    with pytest.raises(UserError, match=r"truths\.0: give mixture_file or dirichlet, not both"):
        load_benchmark(_write(tmp_path / "both.yaml", text.replace(
            "{name: dir-a2-s1, dirichlet", "{name: dir-a2-s1, mixture_file: truths/code.yaml, dirichlet")))


def test_enqueue_stores_the_mixture_not_the_path(home, tmp_path):
    """A queued spec holds the file's weights: the worker, in another folder and later, trains what the file
    held when the job was queued. Mutation tried: enqueueing the file's text (as before) -> its relative
    mixture_file is looked up from the current folder and this fails."""
    from conftest import run_cli

    from lldmix_core.config import get_settings
    from lldmix_core.db.store import Store
    from lldmix_core.spec import load_spec, load_spec_text

    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    (tmp_path / "specs").mkdir()
    _write(tmp_path / "specs" / "m.yaml", GOOD)
    spec_path = _write(tmp_path / "specs" / "a.yaml", SPEC + "    mixture_file: m.yaml\n")
    run_cli("enqueue", str(spec_path), env=env)
    (tmp_path / "specs" / "m.yaml").unlink()  # the file is gone by the time a worker runs the job
    text = Store.open(get_settings().db_url).list_jobs()[-1].spec_yaml
    assert "mixture_file" not in text
    spec = load_spec_text(text, "job")
    assert spec.target.train.weights == pytest.approx({d: w / 100 for d, w in GOOD["weights"].items()}, abs=1e-15)
    _write(tmp_path / "specs" / "m.yaml", GOOD)
    assert spec.spec_hash == load_spec(spec_path).spec_hash

