"""Run specs: strict validation with field paths, stable content hashes, the shipped specs parse."""

from pathlib import Path

import pytest

from lldmix_core.errors import UserError
from lldmix_core.spec import load_spec, load_spec_text

BASE = "name: t\ntarget: {train: {steps: 10}}\ntraining: {steps: 5}\n"


@pytest.mark.parametrize("extra,fragment", [
    ("training: {steps: 5, foo: 1}\n", "training.foo: unknown key"),
    ("lld: {tau: -1}\n", "lld.tau"),
    ("lld: {tau: 0}\n", "lld.tau"),
    ("methods: [uniform, magic]\n", "methods.1"),
    ("arch: {n_embd: 30, n_head: 4}\n", "arch"),
    ("seeds: [1, 1]\n", "seeds"),
    ("target: {train: {steps: 10, multipliers: {Python: -2}}}\n", "target.train.multipliers"),
    ("target: {init: random, model: x}\n", "target"),
    ("methods: [fixed]\n", "lld.recipe"),
    ("bogus: 1\n", "bogus: unknown key"),
])
def test_bad_specs_name_the_field(extra, fragment):
    text = "\n".join(l for l in BASE.splitlines() if not l.startswith(extra.split(":")[0] + ":")) + "\n" + extra
    with pytest.raises(UserError) as e:
        load_spec_text(text, "x.yaml")
    msg = str(e.value)
    assert fragment in msg and msg.startswith("x.yaml") and "\n" not in msg


def test_yaml_syntax_error_names_line():
    with pytest.raises(UserError, match=r"x.yaml: line 2: not valid YAML"):
        load_spec_text("name: t\n  bad: x\n", "x.yaml")


def test_hash_is_stable_and_content_sensitive():
    a = load_spec_text(BASE)
    assert a.spec_hash == load_spec_text(BASE).spec_hash
    assert a.spec_hash != load_spec_text(BASE.replace("steps: 5", "steps: 6")).spec_hash
    # the description does not change results, so it does not change the hash
    assert a.spec_hash == load_spec_text(BASE + "description: hello\n").spec_hash
    assert load_spec_text(a.to_yaml()).spec_hash == a.spec_hash  # YAML round trip


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].joinpath("runs").glob("*.yaml")))
def test_shipped_specs_are_valid(path):
    from lldmix_core.benchmark.suite import expand, is_benchmark_text, load_benchmark
    from lldmix_core.integrations.real_pair_spec import is_real_pair_text, load_real_pair

    if is_benchmark_text(path.read_text(encoding="utf-8")):
        assert all(c.spec.spec_hash for c in expand(load_benchmark(path)))  # every cell's spec validates
    elif is_real_pair_text(path.read_text(encoding="utf-8")):
        assert load_real_pair(path).content_hash()  # runs/real-pair.yaml: integrations/real_pair_spec.py
    else:
        load_spec(path)


def test_missing_spec_file():
    with pytest.raises(UserError, match="does not exist"):
        load_spec("/nonexistent/spec.yaml")
