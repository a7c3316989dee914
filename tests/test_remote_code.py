"""No code from a model folder runs (issue 24, item 1): a Hugging Face folder whose configs carry an
`auto_map` is refused in one line, even when "y" waits on stdin for transformers' prompt."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from lldmix_core.errors import UserError


def _hostile_folder(root: Path, marker: Path, model_type: str = "gpt2") -> Path:
    """A model folder whose config names its own Python classes; importing them writes `marker`."""
    folder = root / "hostile model"
    folder.mkdir()
    (folder / "evil_code.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    auto_map = {"AutoConfig": "evil_code.EvilConfig", "AutoModelForCausalLM": "evil_code.EvilModel",
                "AutoTokenizer": ["evil_code.EvilTokenizer", None]}
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "auto_map": auto_map}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": auto_map["AutoTokenizer"]},
                                                               "tokenizer_class": "EvilTokenizer"}))
    return folder


def test_cli_refuses_a_folder_with_custom_code_under_echo_y(tmp_path, store, monkeypatch):
    """Both CLI entry points that read a Hugging Face folder, with an unknown model type (which
    transformers could only resolve through the folder's code): one line, exit 2, no marker."""
    marker = tmp_path / "MARKER"
    folder = _hostile_folder(tmp_path, marker, model_type="no-such-model-type")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    for args in (["model", "add", "x", "--kind", "hf", "--path", str(folder)],
                 ["model", "init", "y", "--tokenizer", f"hf:{folder}"]):
        proc = _cli_with_stdin(args, "y\ny\ny\n")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: model folder ") and str(folder) in lines[0], lines
        assert "auto_map" in lines[0] and "does not run code" in lines[0]
        assert "[y/N]" not in proc.stdout + proc.stderr  # transformers never asked
        assert not marker.exists(), f"the folder's code ran for {args}"
    assert store.list_models() == []


def _cli_with_stdin(args, stdin_text):
    return subprocess.run([sys.executable, "-m", "lldmix_core.cli", *args], cwd=ROOT, env=dict(os.environ),
                          input=stdin_text, capture_output=True, text=True, timeout=300)


def test_transformers_itself_refuses_without_reading_stdin(tmp_path, monkeypatch):
    """Second line of defence: with our own check switched off, the explicit trust_remote_code=False
    still makes transformers refuse, and it never reads stdin."""
    import lldmix_core.tokenizers as toks

    marker = tmp_path / "MARKER"
    folder = _hostile_folder(tmp_path, marker, model_type="no-such-model-type")  # else transformers never asks
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    monkeypatch.setattr(toks, "refuse_custom_code", lambda *a, **k: None)

    reads = []

    class AnswersYes(io.StringIO):  # a hostile "echo y |" that records being read
        def read(self, *a):
            reads.append(a)
            return "y\n"

        readline = read

    monkeypatch.setattr(sys, "stdin", AnswersYes())
    with pytest.raises(UserError, match="cannot load a tokenizer"):
        toks.HFTokenizer(folder)
    assert reads == [] and not marker.exists()


def test_opt_in_passes_the_check(tmp_path):
    folder = _hostile_folder(tmp_path, tmp_path / "MARKER")
    from lldmix_core.tokenizers import refuse_custom_code

    refuse_custom_code(folder, trust_remote_code=True)  # a spec's explicit opt-in is not refused
    with pytest.raises(UserError, match="tokenizer_config.json has an auto_map"):
        (folder / "config.json").write_text("{}")
        refuse_custom_code(folder)


def test_unknown_model_type_without_code_is_a_refusal(tmp_path):
    from lldmix_core.models.hf import load_hf_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-model-type"}))
    with pytest.raises(UserError, match=r"model folder .*: cannot load a model \(.*no-such-model-type"):
        load_hf_model(tmp_path, tokenizer="bytes")


@pytest.mark.parametrize("field", ["tokenizer", "target"])
def test_a_spec_naming_the_folder_is_refused_before_any_work(tmp_path, store, monkeypatch, field):
    """The spec entry point (also the dashboard's: its jobs run the same spec through the engine)."""
    from lldmix_core.cli import app

    marker = tmp_path / "MARKER"
    folder = _hostile_folder(tmp_path, marker, model_type="no-such-model-type")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    monkeypatch.setenv("LLDMIX_MODEL_ROOTS", str(tmp_path))
    doc = yaml.safe_load((ROOT / "runs" / "smoke.yaml").read_text())
    if field == "tokenizer":
        doc["tokenizer"] = f"hf:{folder}"
    else:  # the target read from the folder, kind hf, no opt-in
        doc["target"] = {"path": str(folder), "kind": "hf"}
        doc["methods"] = ["uniform"]
    spec = tmp_path / "hostile.yaml"
    spec.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\ny\ny\n"))
    with pytest.raises(UserError, match=r"model folder .*hostile model: config.json has an auto_map"):
        app(["run", str(spec), "--no-mlflow"], standalone_mode=False)
    assert not marker.exists()
    assert sys.stdin.read() == "y\ny\ny\n"  # nothing was read from stdin
    with store.engine.connect() as c:  # refused before any run row was written
        from sqlalchemy import text as sql

        assert c.execute(sql("SELECT COUNT(*) FROM runs")).scalar() == 0
