"""The run time accounting (lldmix_core/stopwatch.py) on a fake clock: nested parts are charged to the
innermost one, so the parts add up to the wall time between the outermost start and end."""

import pytest

from lldmix_core.stopwatch import Stopwatch


def test_nested_parts_are_exclusive_and_add_up():
    now = [0.0]
    sw = Stopwatch(clock=lambda: now[0])
    with sw.part("training"):
        now[0] += 10.0
        with sw.part("model map"):
            now[0] += 3.0
            with sw.part("store + MLflow"):
                now[0] += 0.5
        now[0] += 2.0
        with sw.part("model map"):
            now[0] += 1.0
    assert sw.seconds == {"training": 12.0, "model map": 4.0, "store + MLflow": 0.5}
    assert sw.total == pytest.approx(now[0])  # 16.5 s of wall time, every second charged once
    assert sw.line() == "training 12.0 s (73%), model map 4.0 s (24%), store + MLflow 0.5 s (3%); total 16.5 s"
    other = Stopwatch(clock=lambda: 0.0)
    other.seconds = {"model map": 1.0, "sampled KL": 2.0}
    sw.add(other)
    assert sw.seconds == {"training": 12.0, "model map": 5.0, "store + MLflow": 0.5, "sampled KL": 2.0}


def test_a_part_that_raises_is_still_charged():
    now = [0.0]
    sw = Stopwatch(clock=lambda: now[0])
    with pytest.raises(RuntimeError), sw.part("training"):
        now[0] += 2.0
        raise RuntimeError("stop")
    assert sw.seconds == {"training": 2.0} and not sw._open


def test_a_run_prints_where_its_time_went(tmp_path, capsys):
    """The engine charges each run's wall time to its parts and prints them when the run closes; the
    parts of all runs add up to no more than the spec's wall time, and each run evaluated (model map)."""
    import re
    import time

    import yaml

    from conftest import fresh_home
    from lldmix_core.engine import Engine
    from lldmix_core.spec import RunSpec

    spec = RunSpec.model_validate(yaml.safe_load("""
name: timed
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 8, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [8]
methods: [uniform, iterative-lld]
lld: {unit: token, estimate_texts_per_domain: 1}
kl: {sampled: {n_samples: 4, n_tokens: 8}}
tracking: {mlflow: false}
"""))
    with fresh_home(tmp_path / "home") as (settings, store):
        t0 = time.perf_counter()
        Engine(store, settings, verbose=True).run(spec)
        wall = time.perf_counter() - t0
    out = capsys.readouterr().out
    # "  time: …" under a run trained alone, "<run name>: time: …" for each run of a group
    runs = re.findall(r"^(?:  |\S+: )time: (.*); total ([\d.]+) s$", out, flags=re.M)
    assert len(runs) == 2, out
    for parts, total in runs:
        seconds = {k: float(v) for k, v in re.findall(r"([^,]+?) ([\d.]+) s \(\d+%\)", parts)}
        assert {"training", "model map", "sampled KL", "store + MLflow"} <= {k.strip() for k in seconds}
        assert sum(seconds.values()) == pytest.approx(float(total), abs=0.2)
    iterative = dict((k.strip(), float(v)) for k, v in re.findall(r"([^,]+?) ([\d.]+) s \(\d+%\)", runs[1][0]))
    assert "Δ estimates" in iterative  # the iterative run re-weighted at its schedule steps
    spec_total = float(re.search(r"time of the runs trained now \(wall seconds\): .*; total ([\d.]+) s", out).group(1))
    assert spec_total == pytest.approx(sum(float(t) for _, t in runs), abs=0.2) and spec_total <= wall
